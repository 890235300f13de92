"""ONNX Runtime for the frozen backbone's forward pass on a CPU.

The backbone is a PyTorch module; on a CPU, ONNX Runtime runs the same trunk faster than
torch's eager forward pass at batch 1 (efficientnet-lite0 cut at block 5, 160 px;
bench/results/embed_speed.json: 408 views/s on ONNX Runtime's network threads, 176 on
torch's), because it runs the whole graph in C++ with the convolutions, their padding and
activations fused. The trunk is exported once per (backbone, torch, exporter recipe)
and the file kept in the user's cache (``$FINGERTUI_CACHE``, else ``$XDG_CACHE_HOME/fingertui``,
else ``~/.cache/fingertui``), so later processes only load it.

Its vectors agree with torch's to float16 precision (after the float16 round trip most are
identical, the rest a step or so apart: tests/test_engine.py checks it), so a model
trained with one engine predicts with the other; the embedding cache still keys vectors by
engine, so one never mixes with the other.

``FINGERTUI_ENGINE=torch`` forces torch's own forward pass; so does a missing
``onnxruntime``/``onnx`` or a trunk that does not export (fingertui then runs on torch).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import nn

ENV_ENGINE = "FINGERTUI_ENGINE"
ENV_CACHE = "FINGERTUI_CACHE"
TORCH = "t1"  # single-threaded torch forward passes
ORT = "ort"
# The embedding cache's name for each engine's vectors: "t1" for torch's, "ort2" for ONNX
# Runtime's with numpy around it (``prepare``, ``pooled``). A cached vector is reused only
# under the tag of the code that made it, so vectors one float16 step apart never mix.
CACHE_TAG = {TORCH: "t1", ORT: "ort2"}
# What the export depends on besides the weights: change it and every cached file is remade.
EXPORT_RECIPE = "onnx-opset17-dynbatch-v1"
OPSET = 17


def cache_dir() -> Path:
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fingertui"


def unavailable_reason() -> str | None:
    """Why the backbone runs on torch instead, or None."""
    if os.environ.get(ENV_ENGINE, "").lower() == "torch":
        return f"{ENV_ENGINE}=torch"
    from importlib.util import find_spec

    # Found, not imported. (onnx is needed only to export a trunk fingertui does not ship:
    # should that fail, the backbone says so and stays on torch, see Backbone.use_onnxruntime.)
    if find_spec("onnxruntime") is None:
        return "onnxruntime is not installed"
    return None


class OrtTrunk:
    """A trunk's forward pass in ONNX Runtime: (N, 3, S, S) float32 → feature map.

    One session serves every network thread (``run`` is thread-safe in ONNX Runtime); each
    call runs on its caller's thread alone (no thread pool of its own), like the
    single-threaded torch passes, and releases the GIL while it runs."""

    def __init__(self, model: bytes | Path) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3  # errors only: no optimiser chatter on a terminal UI
        src = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: np.ascontiguousarray(x, dtype=np.float32)})[0]


_LOCK = threading.Lock()


def export_trunk(trunk: nn.Module, size: int) -> bytes:
    """The trunk as ONNX bytes (batch dimension dynamic, input ``size`` × ``size``)."""
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The TorchScript-based exporter: the trunk is a plain feed-forward network, and the
        # newer one needs onnxscript besides. Its deprecation and constant-folding notes are
        # not for the user.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            trunk,
            (torch.zeros(1, 3, size, size),),
            buf,  # type: ignore[arg-type]  # this exporter writes to a file object too; the stub names paths only
            dynamo=False,
            input_names=["x"],
            output_names=["features"],
            dynamic_axes={"x": {0: "n"}, "features": {0: "n"}},
            opset_version=OPSET,
        )
    return buf.getvalue()


def cached_trunk(backbone_id: str, trunk: nn.Module, size: int) -> OrtTrunk:
    """The trunk in ONNX Runtime, from the cache or exported now (and cached, atomically).
    A damaged cache file is exported again; an unwritable cache only costs the export."""
    got = cached_only(backbone_id, size)  # None too when damaged or half-written: remake it
    if got is not None:
        return got
    path = trunk_path(backbone_id, size)
    with _LOCK:
        model = export_trunk(trunk, size)
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".onnx-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(model)
                os.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return OrtTrunk(model)


def torch_version() -> str:
    """The installed torch's version, read without importing torch (seconds at start-up)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return "none"


def trunk_path(backbone_id: str, size: int) -> Path:
    """Where the trunk's ONNX file is cached: named by the backbone, its input size, the
    torch that exported it and the export recipe."""
    key = hashlib.sha256(f"{backbone_id}|{size}|torch-{torch_version()}|{EXPORT_RECIPE}".encode()).hexdigest()[:16]
    return cache_dir() / "onnx" / f"{backbone_id.split('@', 1)[0]}-{key}.onnx"


def shipped_path(backbone_id: str) -> Path:
    """Where fingertui's own package carries a backbone's exported trunk (efficientnet-lite0:
    its ImageNet weights are Apache-2.0, see trunks/NOTICE), so an install without PyTorch
    still has the image expert. ``make trunk`` writes it from the weights."""
    name = backbone_id.replace("@", "-").replace(":", "-")
    return Path(__file__).resolve().parents[1] / "trunks" / f"{name}.onnx"


def cached_only(backbone_id: str, size: int) -> OrtTrunk | None:
    """The trunk in ONNX Runtime if its exported file is already cached (and loads), else
    the one fingertui ships for it, else None: what lets a process skip importing torch."""
    path = trunk_path(backbone_id, size)
    if not path.is_file():
        path = shipped_path(backbone_id)
    if not path.is_file():
        return None
    with _LOCK, contextlib.suppress(Exception):
        return OrtTrunk(path)
    return None


# --- the numpy side of the network: no torch on ONNX Runtime's path -----------------------


def prepare(img: np.ndarray, size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """An (H, W, 3) uint8 RGB image → the network's (1, 3, size, size) float32 input: resized
    whole to size × size and normalised per channel (``(x / 255 − mean) / std``).

    The resize is PIL's bilinear filter with antialiasing on 32-bit float planes: the filter
    torch's ``interpolate(…, antialias=True)`` reproduces, so the pixels agree with
    ``torchnets.Preprocess`` (the torch path, and the exported model) to 1e-4
    (tests/test_engine.py); on uint8 planes PIL would round each pass. It runs in C
    without the GIL."""
    from PIL import Image

    std32 = np.asarray(std, dtype=np.float32)
    scale = 1.0 / (255.0 * std32)  # float32, as torch computes (x / 255 − mean) / std
    shift = np.asarray(mean, dtype=np.float32) / std32
    out = np.empty((1, 3, size, size), dtype=np.float32)
    for c in range(3):
        plane = Image.fromarray(np.ascontiguousarray(img[:, :, c])).convert("F")
        resized = np.asarray(plane.resize((size, size), Image.Resampling.BILINEAR))
        # normalised in place, channel by channel: no temporary arrays to allocate and fill
        np.multiply(resized, scale[c], out=out[0, c])
        out[0, c] -= shift[c]
    return out


@functools.lru_cache(maxsize=16)
def _pool_matrix(n_in: int, grid: int) -> np.ndarray:
    """(grid, n_in) averaging weights of adaptive average pooling (bins may overlap)."""
    m = np.zeros((grid, n_in), dtype=np.float32)
    for i in range(grid):
        lo, hi = (i * n_in) // grid, -((-(i + 1) * n_in) // grid)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def pooled(features: np.ndarray, grid: int) -> np.ndarray:
    """The (N, C, H, W) feature map average-pooled to ``grid`` × ``grid`` (adaptive pooling:
    it does not export to ONNX for sizes that do not divide, 10 → 4) and flattened to
    (N, C · grid²) in channel-major order, as torch's ``adaptive_avg_pool2d(…).flatten(1)``."""
    n, c, h, w = features.shape
    # rows then columns: two small matrix products per map (einsum would plan its path anew
    # on every call, a cost that counts at this size)
    out = _pool_matrix(h, grid) @ features @ _pool_matrix(w, grid).T
    return np.ascontiguousarray(out, dtype=np.float32).reshape(n, c * grid * grid)

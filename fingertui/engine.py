"""ONNX Runtime for the frozen backbone's forward pass on a CPU.

The backbone is a PyTorch module; on a CPU, ONNX Runtime runs the same trunk 2.5–2.7×
faster than torch's eager forward pass at batch 1 on one thread (efficientnet-lite0 cut at
block 5, 160 px, this 2-core machine: 3.8 ms against 9.6–11.2 ms a view; bench/embed_speed.py
reports both), because it runs the whole graph in C++ with the convolutions, their padding
and activations fused. The trunk is exported once per (backbone, torch, exporter recipe)
and the file kept in the user's cache (``$FINGERTUI_CACHE``, else ``$XDG_CACHE_HOME/fingertui``,
else ``~/.cache/fingertui``), so later processes load it in milliseconds.

Its vectors agree with torch's to float16 precision (99.5 % identical after the float16
round trip, the rest one step apart), so a model trained with one engine predicts with the
other; the embedding cache still keys vectors by engine, so one never mixes with the other.

``FINGERTUI_ENGINE=torch`` forces torch's own forward pass; so does a missing
``onnxruntime``/``onnx`` or a trunk that does not export (fingertui then runs as before).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

ENV_ENGINE = "FINGERTUI_ENGINE"
ENV_CACHE = "FINGERTUI_CACHE"
TORCH = "t1"  # single-threaded torch forward passes (the cache's older key)
ORT = "ort"
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

    # Found, not imported: onnx is imported only to export (once per backbone and version).
    for module in ("onnxruntime", "onnx"):
        if find_spec(module) is None:
            return f"{module} is not installed"
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
            buf,
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
    import torch

    key = hashlib.sha256(f"{backbone_id}|{size}|torch-{torch.__version__}|{EXPORT_RECIPE}".encode()).hexdigest()[:16]
    path = cache_dir() / "onnx" / f"{backbone_id.split('@', 1)[0]}-{key}.onnx"
    with _LOCK:
        if path.is_file():
            with contextlib.suppress(Exception):  # damaged or from a broken write: remake it
                return OrtTrunk(path)
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


def pooled(features: np.ndarray, grid: int) -> torch.Tensor:
    """The feature map average-pooled to ``grid`` × ``grid`` and flattened, exactly as
    ``backbones.Pooled`` does it (adaptive pooling does not export to ONNX for sizes that
    do not divide: 10 → 4)."""
    import torch
    from torch.nn import functional as F

    return F.adaptive_avg_pool2d(torch.from_numpy(features), grid).flatten(1)

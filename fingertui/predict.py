"""Checkpoints, the predictor that runs them, and the self-contained TorchScript export."""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fingertui import backbones
from fingertui.backbones import Backbone
from fingertui.errors import UserError
from fingertui.features import Embedder, image_tensor, load_rgb
from fingertui.labels import CLASSES
from fingertui.store import atomic_write
from fingertui.train import Head, logits, softmax

FORMAT = "fingertui.head/1"


def save_checkpoint(path: Path, ckpt: dict) -> None:
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    atomic_write(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint safely (``weights_only=True``) and check it is one of ours."""
    if not path.exists():
        raise UserError(f"checkpoint {path} is missing; retrain with `fingertui train` or pick another run")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle errors, …
        raise UserError(f"checkpoint {path} cannot be read ({type(e).__name__}); retrain with `fingertui train`") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path} is not a fingertui checkpoint ({FORMAT}); retrain with `fingertui train`")
    if list(ckpt.get("classes", [])) != list(CLASSES):
        raise UserError(
            f"checkpoint {path} predicts classes {ckpt.get('classes')}, this fingertui uses {list(CLASSES)}; retrain"
        )
    _check_fields(path, ckpt)
    return ckpt


def _check_fields(path: Path, ckpt: dict) -> None:
    """Every field the predictor reads, checked before use: one line, never a traceback."""
    import math

    def bad(what: str) -> UserError:
        return UserError(f"checkpoint {path} is damaged ({what}); retrain with `fingertui train`")

    head = ckpt.get("head")
    if not isinstance(head, dict) or head.get("kind") not in ("linear", "mlp"):
        raise bad("unknown head kind")
    for key, top in (("dim", 65536), ("hidden", 65536)):
        v = head.get(key, 256 if key == "hidden" else None)
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= top:
            raise bad(f"head {key} {v!r} out of range")
    for key, lo, hi in (("temperature", 1e-3, 1e3), ("unsure_threshold", 0.0, 1.0)):
        v = ckpt.get(key)
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
            raise bad(f"{key} {v!r} is not a number in [{lo}, {hi}]")
    if not isinstance(ckpt.get("backbone"), str) or not ckpt["backbone"]:
        raise bad("no backbone id")
    if not isinstance(ckpt.get("head_state"), dict):
        raise bad("no head weights")


@dataclass
class Prediction:
    label: int
    confidence: float
    probs: list[float]
    unsure: bool

    def as_json(self) -> dict:
        return {"label": self.label, "confidence": self.confidence, "probs": self.probs, "unsure": self.unsure}


class Predictor:
    """Backbone + trained head + temperature: images in, calibrated probabilities out."""

    def __init__(self, backbone: Backbone, head: Head, temperature: float, threshold: float, meta: dict) -> None:
        self.bb = backbone
        self.head = head
        self.temperature = temperature
        self.threshold = threshold
        self.meta = meta

    @classmethod
    def from_checkpoint(
        cls, path: Path, *, weights_file: str | None = None, warn: Callable[[str], None] | None = None
    ) -> Predictor:
        ckpt = load_checkpoint(path)
        want = ckpt["backbone"]
        name = want.split("@", 1)[0]
        if name not in backbones.LOADERS:
            raise UserError(f"checkpoint {path} needs backbone {want}, which this fingertui does not know; retrain")
        bb = backbones.load(name, weights_file=weights_file, warn=warn)
        if bb.id != want:
            raise UserError(
                f"checkpoint {path.name} was trained on backbone {want} but {bb.id} is what is available here; "
                "retrain with `fingertui train` (or provide the same weights with --weights)"
            )
        if not bb.pretrained and os.environ.get(backbones.ENV_DEV_RANDOM) != "1":
            raise UserError("refusing to predict with a randomly initialised backbone")
        spec = ckpt["head"]
        head = Head(spec["dim"], spec["kind"], spec.get("hidden", 256))
        try:
            head.load_state_dict(ckpt["head_state"])
        except (RuntimeError, KeyError, TypeError, ValueError) as e:
            raise UserError(
                f"checkpoint {path.name} does not fit backbone {want} ({str(e).splitlines()[0]}); retrain"
            ) from e
        head.eval()
        return cls(bb, head, float(ckpt["temperature"]), float(ckpt["unsure_threshold"]), ckpt)

    def probs_from_vectors(self, X: np.ndarray) -> np.ndarray:
        return softmax(logits(self.head, X), self.temperature)

    def predict_tensors(self, images: Sequence[torch.Tensor]) -> list[Prediction]:
        """Calibrated predictions for (3, H, W) uint8 images."""
        X = Embedder.embed_images(self.bb, images)
        return [self._prediction(p) for p in self.probs_from_vectors(X)]

    def predict_image(self, img: np.ndarray) -> Prediction:
        """One RGB frame (H, W, 3 uint8), e.g. the capture square."""
        return self.predict_tensors([image_tensor(img)])[0]

    def predict_paths(self, paths: Sequence[str | Path]) -> list[Prediction]:
        return self.predict_tensors([load_rgb(str(p)) for p in paths])

    def _prediction(self, p: np.ndarray) -> Prediction:
        k = int(p.argmax())
        return Prediction(CLASSES[k], float(p[k]), [float(x) for x in p], bool(p[k] < self.threshold))


class _Exported(nn.Module):
    """Float RGB images in [0, 1], shape (B, 3, H, W), any H and W → calibrated probabilities."""

    def __init__(self, predictor: Predictor) -> None:
        super().__init__()
        self.preprocess = predictor.bb.preprocess
        self.features = predictor.bb.features
        self.head = predictor.head
        self.register_buffer("inv_temperature", torch.tensor(1.0 / predictor.temperature))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.features(self.preprocess(x))) * self.inv_temperature, dim=1)


def export_model(predictor: Predictor, dest: Path, run_id: int | None = None) -> dict:
    """Write one TorchScript file (backbone + head + temperature) with its metadata inside."""
    module = _Exported(predictor).cpu().eval()
    meta = {
        "classes": list(CLASSES),
        "input": "float32 RGB in [0, 1], shape (B, 3, H, W); resized inside to the backbone's size",
        "output": "calibrated class probabilities, shape (B, 6); class i = i raised fingers",
        "preprocessing": {
            "resize": predictor.bb.preprocess.size,
            "mean": predictor.bb.preprocess.mean.flatten().tolist(),
            "std": predictor.bb.preprocess.std.flatten().tolist(),
        },
        "backbone": predictor.bb.id,
        "temperature": predictor.temperature,
        "unsure_threshold": predictor.threshold,
        "run": run_id,
    }
    example = torch.rand(1, 3, 224, 224)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(traced, buf, _extra_files={"fingertui.json": json.dumps(meta, indent=2)})
    atomic_write(dest, buf.getvalue())
    return meta

"""The self-contained TorchScript export of a model: usable without fingertui installed."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from fingertui import backbones
from fingertui.backbones import Backbone
from fingertui.errors import UserError
from fingertui.labels import CLASSES
from fingertui.mlp import as_torch
from fingertui.model import Model
from fingertui.store import atomic_write


class _Exported(nn.Module):
    """Float RGB images in [0, 1], shape (B, 3, H, W), any H and W → calibrated probabilities
    of the image expert."""

    def __init__(self, model: Model, bb: Backbone) -> None:
        super().__init__()
        self.preprocess = bb.preprocess
        self.features = bb.features
        self.head = as_torch(model.heads["image"])
        self.register_buffer("inv_temperature", torch.tensor(1.0 / model.image_temperature))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.features(self.preprocess(x))) * self.inv_temperature, dim=1)


def export_model(model: Model, dest: Path, run_id: int | None = None, weights_file: str | None = None) -> dict:
    """Write one TorchScript file (backbone + image head + its temperature) with its
    metadata inside. It answers from the image alone: the calibrated image expert that
    fingertui itself uses when no hand is found."""
    if model.image is None or "image" not in model.heads:
        raise UserError("this run has no image expert to export (trained with --features pose); retrain with image")
    predictor = model
    bb = model.image.bb
    if bb.features is None:  # loaded from its ONNX export: TorchScript needs torch's modules
        bb = backbones.load(bb.name, weights_file=weights_file, torch_modules=True)
        if bb.id != model.image.id:
            raise UserError(f"this run needs backbone {model.image.id}, but {bb.id} loaded; pass its --weights")
    module = _Exported(model, bb).cpu().eval()
    meta = {
        "classes": list(CLASSES),
        "input": "float32 RGB in [0, 1], shape (B, 3, H, W); resized inside to the backbone's size",
        "output": "calibrated class probabilities, shape (B, 6); class i = i raised fingers",
        "preprocessing": {
            "resize": bb.spec.size,
            "mean": list(bb.spec.mean),
            "std": list(bb.spec.std),
            "framing": "frame the hand with a square margin of 25 % when it is small in the picture "
            "(fingertui does this with its hand detector); the square crop is what the model expects",
        },
        "backbone": bb.id,
        "experts_in_run": sorted(predictor.heads),
        "answers_from": "image only (fingertui also pools a hand-pose expert when it finds a hand)",
        "temperature": predictor.image_temperature,
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

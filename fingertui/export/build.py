"""The exported model, usable without fingertui installed, in one of two forms:

- ``export_folder``: the whole model (hand landmarks → pose and finger-state experts →
  pooling → calibrated probabilities, and the image expert) as a folder that runs with
  ONNX Runtime, MediaPipe and NumPy: the image trunk as ONNX, the heads' arrays in an
  .npz, a manifest, fingertui's own feature and pooling code copied in, and ``run.py``;
- ``export_torchscript``: the image expert alone as one TorchScript file (torch needed).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fingertui.data.store import atomic_write
from fingertui.errors import UserError
from fingertui.labels import CLASSES
from fingertui.learn.model import Model
from fingertui.version import __version__

if TYPE_CHECKING:
    from torch import nn

    from fingertui.learn.backbones import Backbone

EXPORT_FORMAT = "fingertui.export/1"  # the runner (export/runner.py) checks it
RUNTIME = "fingertui_runtime"  # the copied code's package name in the folder
# fingertui's modules the runner uses, copied at export time so they never drift: only
# their import lines that name fingertui are made relative (``from fingertui.learn.hands import``
# → ``from .hands import``). pooling.py and steady.py import nothing of fingertui.
RUNTIME_MODULES = (
    "learn.pooling",  # how the experts are combined
    "learn.linear",  # the linear heads
    "learn.fingers",  # the finger-state head and its features
    "learn.pose",  # the pose features
    "learn.hands",  # MediaPipe, the still image's padding
    "learn.mediapipe_quirks",  # MediaPipe imported without pyplot, its logging kept off stderr
    "learn.boxes",  # the hand's box, and a hand moved between an image and a box in it
    "learn.streams",  # the hand search (zoom out, tiles) and the image's framing on the hand
    "learn.engine",  # the trunk in ONNX Runtime, the image's resize and normalisation, pooling
    "data.images",  # how a photo file is decoded (EXIF orientation, size bound)
    "live.tracking",  # the live view's square that follows the hand
    "live.steady",  # the steady count
    "errors",
    "progress",  # the progress callback's type
)
RUNNER_README = """# fingertui model (exported)

Counts raised fingers (0-5) in a photo or a video with the model trained in fingertui
{version}, run {run}: {experts}. Runs with ONNX Runtime, MediaPipe and NumPy; neither
fingertui nor torch is needed.

    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
    .venv/bin/python run.py photo.jpg            # one JSON line a photo: count, probabilities, fingers
    .venv/bin/python run.py --video clip.mp4     # one JSON line a change of the steady count
    .venv/bin/python run.py --camera 0           # the same, live; Ctrl-C ends it

From Python:

    import sys; sys.path.insert(0, "path/to/this/folder")
    from run import ExportedModel
    model = ExportedModel("path/to/this/folder")
    r = model.predict_image(rgb)   # (H, W, 3) uint8 RGB → {{"label", "probs", "hand_found", "fingers", ...}}

What is here:
- `manifest.json`: classes, the pooling weights and temperatures, the unsure threshold, the
  finger-state head's parameters and every other field of fingertui's checkpoint (`model`;
  `{{"$array": name}}` names an array in `arrays.npz`), and the ids of the feature recipes;
- `image_trunk.onnx`: the image backbone's trunk ({backbone}), input (N, 3, {size}, {size});
- `fingertui_runtime/`: fingertui's own code for the hand search, features, image
  preprocessing, pooling and steady count, copied at export time;
- `run.py`: puts them together as fingertui does. A label of null means no hand was found
  and the model has no image expert to answer without one.

The hand landmarks come from MediaPipe {mediapipe}; another version finds slightly
different landmarks, so keep the pinned one.
"""


def _relative_imports(text: str, name: str) -> str:
    def relative(m: re.Match[str]) -> str:
        last = m.group(1).rpartition(".")[2]
        # the copy is flat: ``fingertui.learn.hands`` is ``.hands``, the package ``fingertui.learn`` is ``.``
        return "from . import" if not last or (src_root / last).is_dir() else f"from .{last} import"

    src_root = Path(__file__).resolve().parents[1]
    text = re.sub(r"\bfrom fingertui((?:\.\w+)*) import", relative, text)
    if re.search(r"^\s*import fingertui", text, re.M):
        raise RuntimeError(f"fingertui/{name}.py imports fingertui in a way the export cannot copy")
    return text


def copy_runtime(dest: Path) -> list[str]:
    """Copy fingertui's runtime modules into ``dest`` as a package; returns their names."""
    src = Path(__file__).resolve().parents[1]  # the fingertui package
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "__init__.py").write_text(
        f'"""fingertui {__version__}\'s own code, copied by `fingertui export-model`: only the import lines '
        'that name fingertui were made relative."""\n',
        encoding="utf-8",
    )
    names = []
    for dotted in RUNTIME_MODULES:
        name = dotted.rpartition(".")[2]  # the copy is flat: fingertui_runtime/<name>.py
        text = (src / f"{dotted.replace('.', '/')}.py").read_text(encoding="utf-8")
        (dest / f"{name}.py").write_text(_relative_imports(text, name), encoding="utf-8")
        names.append(name)
    return names


def _trunk_onnx(bb: Backbone, weights_file: str | None) -> bytes:
    """The backbone's trunk as ONNX: the file fingertui's engine cached (engine.py), or
    exported now (with torch) when it is not there."""
    from fingertui.learn import backbones, engine

    path = engine.trunk_path(bb.id, bb.spec.size)
    if path.is_file() and engine.cached_only(bb.id, bb.spec.size) is not None:
        return path.read_bytes()
    if bb.features is None:
        bb = backbones.load(bb.name, weights_file=weights_file, torch_modules=True)
    trunk = getattr(bb.features, "trunk", None)
    if trunk is None:
        raise UserError(f"backbone {bb.id} has no trunk to export to ONNX; use --format torchscript")
    engine.cached_trunk(bb.id, trunk, bb.spec.size)  # caches it for fingertui too
    return path.read_bytes() if path.is_file() else engine.export_trunk(trunk, bb.spec.size)


def export_folder(model: Model, dest: Path, run_id: int | None = None, weights_file: str | None = None) -> dict:
    """Write the whole model as a folder that runs without fingertui (see the module
    docstring); returns its manifest. ``dest`` must not exist or be empty."""
    from fingertui.learn import backbones, hands, streams
    from fingertui.learn.fingers import FINGERS_ID

    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UserError(f"{dest} exists and is not an empty folder; pick a new path")
    experts = model.checkpoint.experts
    for name, e in experts.items():
        if name != "fingers" and e["head"]["kind"] not in ("linear", "mlp"):
            raise UserError(f"the {name} expert's head ({e['head']['kind']}) cannot be exported; retrain")
    tmp = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    manifest: dict = {
        "format": EXPORT_FORMAT,
        "fingertui": __version__,
        "run": run_id,
        "classes": list(CLASSES),
        "experts": sorted(experts),
        "files": {"arrays": "arrays.npz", "runner": "run.py", "runtime": f"{RUNTIME}/"},
        "features": {
            "hands": hands.DETECTOR_ID,
            "hand_search": streams.TILES_ID,
            "pose": (experts.get("pose") or {}).get("stream"),
            "fingers": FINGERS_ID if model.fingers is not None else None,
        },
    }
    if model.image is not None:
        bb = model.image.bb
        (tmp / "image_trunk.onnx").write_bytes(_trunk_onnx(bb, weights_file))
        manifest["image"] = {
            "trunk": "image_trunk.onnx",
            "backbone": bb.id,
            "size": bb.spec.size,
            "mean": list(bb.spec.mean),
            "std": list(bb.spec.std),
            "grid": backbones.GRID,
            "framing": model.image.framing,
        }
        manifest["files"]["trunk"] = "image_trunk.onnx"
    # Every field of the checkpoint, whatever it holds: a field fingertui adds later
    # (checkpoint.py) reaches the runner without a change here.
    manifest["model"], arrays = model.checkpoint.to_json()
    buf = io.BytesIO()
    members: dict[str, Any] = arrays
    np.savez(buf, **members)
    (tmp / "arrays.npz").write_bytes(buf.getvalue())
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    copy_runtime(tmp / RUNTIME)
    shutil.copyfile(Path(__file__).with_name("runner.py"), tmp / "run.py")
    mp = hands._mediapipe_version()
    (tmp / "requirements.txt").write_text(
        f"onnxruntime>=1.17\nmediapipe-numpy2=={mp}\nnumpy>=2.0\npillow>=10\n", encoding="utf-8"
    )
    (tmp / "README.md").write_text(
        RUNNER_README.format(
            version=__version__,
            run=run_id,
            experts=", ".join(manifest["experts"]),
            backbone=manifest.get("image", {}).get("backbone", "none"),
            size=manifest.get("image", {}).get("size", "-"),
            mediapipe=mp,
        ),
        encoding="utf-8",
    )
    if dest.exists():
        dest.rmdir()
    tmp.rename(dest)
    return manifest


def export_torchscript(model: Model, dest: Path, run_id: int | None = None, weights_file: str | None = None) -> dict:
    """Write one TorchScript file (backbone + image head + its temperature) with its
    metadata inside. It answers from the image alone: the calibrated image expert that
    fingertui itself uses when no hand is found."""
    if model.image is None or "image" not in model.heads:
        raise UserError("this run has no image expert to export (trained with --features pose); retrain with image")
    import torch

    from fingertui.learn import backbones

    bb = model.image.bb
    if bb.features is None:  # loaded from its ONNX export: TorchScript needs torch's modules
        bb = backbones.load(bb.name, weights_file=weights_file, torch_modules=True)
        if bb.id != model.image.id:
            raise UserError(f"this run needs backbone {model.image.id}, but {bb.id} loaded; pass its --weights")
    module = _torch_module(model, bb).cpu().eval()
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
        "experts_in_run": sorted(model.heads),
        "answers_from": "image only (fingertui also pools a hand-pose expert when it finds a hand)",
        "temperature": model.image_temperature,
        "unsure_threshold": model.threshold,
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


def _torch_module(model: Model, bb: Backbone) -> nn.Module:
    """Float RGB images in [0, 1], shape (B, 3, H, W), any H and W → calibrated probabilities
    of the image expert."""
    import torch
    from torch import nn

    from fingertui.learn.mlp import as_torch

    preprocess, features = bb.torch_modules()

    class Exported(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.preprocess = preprocess
            self.features = features
            self.head = as_torch(model.heads["image"])
            self.register_buffer("inv_temperature", torch.tensor(1.0 / model.image_temperature))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.head(self.features(self.preprocess(x))) * self.inv_temperature, dim=1)

    return Exported()

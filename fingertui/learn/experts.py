"""The experts of one run, from its features to their answers: fitted (heads calibrated on
the validation fold, the finger-state head pulled towards the starter), and cross-checked
out of fold by quick copies that never saw the samples they predict. How they are pooled
and scored is calibration.py.

train/pipeline.py drives these stages for a run: it gathers the ``RunData`` (the stored
samples' features, through the caches) and records what they return. Progress comes as
(phase, k, n): "training image", "training pose", "training fingers", "cross-checking",
"calibrating".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fingertui.errors import Cancelled, UserError
from fingertui.labels import CLASSES
from fingertui.learn import nextday, streams
from fingertui.learn.features import SampleFeatures
from fingertui.learn.fingers import FingerHead, load_starter
from fingertui.learn.fitting import N_CLASSES as N
from fingertui.learn.fitting import AnyHead, TrainConfig
from fingertui.learn.heads import (
    fit_linear_quick,
    group_folds,
    logits,
    train_calibrated,
    validation_fold,
)
from fingertui.learn.pooling import novel_rows, pattern_counts, pool_logits
from fingertui.progress import Progress

if TYPE_CHECKING:
    from fingertui.data.store import Sample

MIN_PER_CLASS = 2  # a run needs two classes with at least this many training images
# The trained finger-state head's pull towards the starter, in units of one image's loss
# (fingers.FingerHead.fit): trained on sign-digits and scored alone on hagrid-rooms classes
# 1–5, the head transfers better with 10 than with 1. Strong enough that a sitting's one
# way of showing a count does not erase what the starter knows about fingers; weak enough
# that a few hundred labels move it.
FINGER_PULL = 10.0


def per_class(samples: Sequence[Sample]) -> dict[int, int]:
    """Labelled images per class."""
    return {c: sum(1 for s in samples if s.label == c) for c in CLASSES}


def fit_finger_head(F: np.ndarray, y: np.ndarray, starter: FingerHead | None) -> FingerHead:
    """A finger-state head fitted on (N, 5, K) finger features, pulled towards ``starter``."""
    return FingerHead.fit(F, y, prior=starter, l2=FINGER_PULL)


def small_data_weights(experts: set[str], per_class: int) -> dict[str, float]:
    """Pooling weights when there is no validation fold to fit them on. On hagrid-rooms
    frames (bench/results/learning_curve.json, each trial a real run), with 2 labels per
    class the finger head (from the starter) is right 94.3 % of the time and the pose head
    85.8 %, pooled this way 97.2 %; by 5–10 per class the pose head has caught up (96.4–
    96.9 %). The image expert describes the room more than the hand, so it only answers
    when no hand is found."""
    if experts == {"image"}:
        return {"image": 1.0}
    w = {"fingers": 1.0, "pose": min(1.0, per_class / 10), "image": 0.0}
    return {k: v for k, v in w.items() if k in experts}


@dataclass
class Steps:
    """What every stage reports to and checks: the progress (phase, k, n) and the cancel flag."""

    report: Progress
    cancel: threading.Event | None

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()


@dataclass
class RunData:
    """What a run learns from: its samples, their features and labels, and the folds."""

    train_s: list[Sample]
    test_s: list[Sample]
    sf: SampleFeatures  # rows: the training samples, then the test samples
    y: np.ndarray  # training labels
    y_test: np.ndarray
    groups: np.ndarray  # near-identical images share a group
    session_of: np.ndarray
    n_sessions: int
    val_idx: np.ndarray  # the validation fold (training rows)
    folds: list[np.ndarray]  # the out-of-fold loop's held-out training rows

    @property
    def n(self) -> int:
        """Training samples (their rows come first)."""
        return len(self.train_s)

    @property
    def by_session(self) -> bool:
        """Whether held-out data is held out by whole sessions (two or more)."""
        return self.n_sessions >= 2

    @property
    def hand(self) -> np.ndarray:
        """Which training samples have a hand."""
        return self.sf.hand[: self.n]

    @property
    def hand_test(self) -> np.ndarray:
        return self.sf.hand[self.n :]

    @property
    def per_class(self) -> dict[int, int]:
        return per_class(self.train_s)

    @property
    def fewest(self) -> int:
        """Training images of the scarcest class present."""
        return min((n for n in self.per_class.values() if n), default=0)

    def stream(self, name: str) -> np.ndarray:
        """A stream's (N, views+1, dim) features ("image" or "pose")."""
        X = self.sf.image if name == "image" else self.sf.pose
        if X is None:
            raise ValueError(f"this run has no {name} features")
        return X

    @property
    def fingers(self) -> np.ndarray:
        if self.sf.fingers is None:
            raise ValueError("this run has no finger features")
        return self.sf.fingers

    @classmethod
    def of(cls, train_s: list[Sample], test_s: list[Sample], sf: SampleFeatures, cfg: TrainConfig) -> RunData:
        """The run's data: ``sf`` holds the training samples' features, then the test
        samples'; the validation fold and the out-of-fold folds are drawn here."""
        y = np.array([s.label for s in train_s])
        groups = np.array([s.group_key or f"id:{s.id}" for s in train_s])
        # Sessions: with two or more, whatever is chosen on held-out data is chosen on whole
        # held-out sessions (nextday.py); near-identical images never span a fold either way.
        session_of, n_sessions = nextday.session_groups(np.array([s.session or "-" for s in train_s]))
        val_groups = np.array([f"s{g}" for g in session_of]) if n_sessions >= 2 else groups
        # Out-of-fold predictions (the review queue's evidence and, with sessions, the data
        # the pooling is fitted on): leave whole sessions out where there are sessions.
        return cls(
            train_s=train_s,
            test_s=test_s,
            sf=sf,
            y=y,
            y_test=np.array([s.label for s in test_s], dtype=int),
            groups=groups,
            session_of=session_of,
            n_sessions=n_sessions,
            val_idx=validation_fold(y, val_groups, cfg),
            folds=group_folds(y, val_groups, cfg.folds, cfg.seed),
        )


# --- fit the experts ---------------------------------------------------------------------


@dataclass
class Experts:
    """The experts a run fitted, and what the later stages ask of them."""

    data: RunData
    cfg: TrainConfig
    heads: dict[str, AnyHead] = field(default_factory=dict)  # image and pose
    temperatures: dict[str, float] = field(default_factory=dict)
    specs: dict[str, dict] = field(default_factory=dict)  # the checkpoint's experts
    fingers: FingerHead | None = None
    patterns: dict[str, int] | None = None  # finger patterns training showed
    starter: FingerHead | None = None  # the shipped finger-state head (with hand pose)

    @property
    def names(self) -> set[str]:
        return set(self.heads) | ({"fingers"} if self.fingers is not None else set())

    @property
    def image_temperature(self) -> float:
        return self.temperatures.get("image", 1.0)

    def logits(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Each expert's logits for sample rows (indices into train + test)."""
        z = {}
        if "image" in self.heads:
            z["image"] = logits(self.heads["image"], self.data.stream("image")[rows, 0])
        if "pose" in self.heads:
            z["pose"] = logits(self.heads["pose"], self.data.stream("pose")[rows, 0])
        if self.fingers is not None:
            z["fingers"] = self.fingers.log_probs(self.data.fingers[rows])
        return z

    def novel(self, rows: np.ndarray) -> np.ndarray | None:
        """Which rows show a finger pattern training did not (None: no finger expert)."""
        if self.fingers is None or self.patterns is None:
            return None
        return novel_rows(self.fingers.up(self.data.fingers[rows]), self.patterns, len(rows))

    def quick_logits(self, train_rows: np.ndarray, rows: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Each expert's logits for ``rows`` from quick heads fitted on ``train_rows`` alone
        (an expert with fewer than two classes to learn from is left out), and which rows
        show a finger pattern ``train_rows`` did not. Quick linear heads on plain views
        keep the out-of-fold loop within seconds."""
        d = self.data
        z: dict[str, np.ndarray] = {}
        for name in ("image", "pose"):
            if name not in self.heads:
                continue
            X = d.stream(name)
            fit_rows = train_rows if name == "image" else train_rows[d.hand[train_rows]]
            if len(np.unique(d.y[fit_rows])) < 2:
                continue
            z[name] = logits(fit_linear_quick(X[fit_rows, 0], d.y[fit_rows], self.cfg), X[rows, 0])
        gate = np.zeros(len(rows), dtype=bool)
        if self.fingers is not None:
            F = d.fingers
            fit_rows = train_rows[d.hand[train_rows]]
            head = fit_finger_head(F[fit_rows], d.y[fit_rows], self.starter)
            z["fingers"] = head.log_probs(F[rows])
            found = novel_rows(head.up(F[rows]), pattern_counts(head.up(F[fit_rows])), len(rows))
            gate = found if found is not None else gate
        return z, gate

    def pooled(
        self, z: dict[str, np.ndarray], hand: np.ndarray, novel: np.ndarray | None, weights: dict[str, float]
    ) -> np.ndarray:
        """Calibrated probabilities of the experts' logits ``z`` (pooling.pool_logits)."""
        return pool_logits(
            z.get("image"), z.get("pose"), hand, weights, self.image_temperature, 1.0, z.get("fingers"), novel=novel
        )


def fit_experts(
    data: RunData,
    image: streams.ImageStream | None,
    pose: streams.PoseStream | None,
    used: str,
    cfg: TrainConfig,
    with_fingers: bool,
    warn: Callable[[str], None] | None,
    steps: Steps,
) -> tuple[Experts, str]:
    """The image and pose experts (heads calibrated on the validation fold) and the
    finger-state expert; and the run's feature set ("image" where too few hands were found)."""
    experts = Experts(data, cfg)
    y = data.y

    def fit_expert(name: str, rows: np.ndarray) -> None:
        steps.check()
        X = data.stream(name)
        fitted = train_calibrated(
            X[rows],
            y[rows],
            data.groups[rows],
            cfg,
            cancel=steps.cancel,
            progress=lambda _p, k, n: steps.report(f"training {name}", k, n),
            val_idx=np.nonzero(np.isin(rows, data.val_idx))[0],
            refit=data.by_session,  # a held-out session chose the L2; the head learns from every session
        )
        experts.heads[name] = fitted.fit.head
        experts.temperatures[name] = fitted.temperature
        experts.specs[name] = {
            "head": {"kind": fitted.fit.head.kind, "dim": int(X.shape[-1]), "hidden": cfg.hidden},
            "head_state": fitted.fit.head.state(),
            "epochs": fitted.fit.epochs,
            "l2": fitted.fit.l2,
        }

    if image is not None:
        fit_expert("image", np.arange(data.n))
        experts.specs["image"].update(backbone=image.id, framing=image.framing)
    if pose is not None:
        rows = np.nonzero(data.hand)[0]
        if len(np.unique(y[rows])) >= 2 and len(rows) >= 2 * MIN_PER_CLASS:
            fit_expert("pose", rows)
            experts.specs["pose"].update(stream=pose.id, detector=pose.detector_id)
        elif image is None:
            raise UserError("the hand-pose detector found too few hands to train on; use --features image")
        else:
            if warn:
                warn(f"hands found in only {len(rows)} training images: this run uses the image alone")
            used = "image"
        experts.starter = load_starter()
    if "pose" in experts.heads and with_fingers:
        # The finger-state expert: fitted on the training images with a hand, pulled
        # towards the shipped starter (FINGER_PULL), so that with a few labels it stays the
        # starter and a sitting's one way of showing a count does not erase the rest. With
        # one session it leaves the validation fold out (the pooling is chosen there).
        steps.check()
        steps.report("training fingers", 0, 1)
        with_hand = np.nonzero(data.hand)[0]
        fit_rows = with_hand if data.by_session else np.setdiff1d(with_hand, data.val_idx)
        experts.fingers = fit_finger_head(data.fingers[fit_rows], y[fit_rows], experts.starter)
        # The finger patterns training showed: a hand showing another is outside what the
        # pose and image experts learned (pooling.GATE_MIN), and the finger expert answers.
        experts.patterns = pattern_counts(experts.fingers.up(data.fingers[with_hand]))
        experts.specs["fingers"] = {"head_json": experts.fingers.to_json(), "patterns": experts.patterns}
        steps.report("training fingers", 1, 1)
    return experts, used


# --- out-of-fold predictions ---------------------------------------------------------------


@dataclass
class OutOfFold:
    """Each expert's out-of-fold logits of the training samples (NaN where no fold model
    had two classes to learn), and which rows show a finger pattern their fold did not."""

    z: dict[str, np.ndarray]
    novel: np.ndarray

    def has(self, name: str) -> np.ndarray:
        return ~np.isnan(self.z[name][:, 0])

    def rows(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {n: z[rows] for n, z in self.z.items()}


def out_of_fold(data: RunData, experts: Experts, steps: Steps) -> OutOfFold:
    """The review queue's evidence, and with sessions the pooling's: each fold's samples
    predicted by quick heads that never saw them."""
    oof = OutOfFold({name: np.full((data.n, N), np.nan) for name in experts.names}, np.zeros(data.n, dtype=bool))
    steps.report("cross-checking", 0, len(data.folds))
    for k, held in enumerate(data.folds):
        steps.check()
        z, gate = experts.quick_logits(np.setdiff1d(np.arange(data.n), held), held)
        for name, zn in z.items():
            oof.z[name][held] = zn
        oof.novel[held] = gate
        steps.report("cross-checking", k + 1, len(data.folds))
    return oof

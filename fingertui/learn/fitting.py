"""What every head fit shares: its settings (``TrainConfig``), what a fitted head offers
(``AnyHead``), the result of a fit (``FitResult``) and the seeding.

Below both trainers: the linear head's (heads.py, NumPy and SciPy) and the MLP's (mlp.py,
torch), so that neither imports the other for them.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np

from fingertui.labels import CLASSES

N_CLASSES = len(CLASSES)


@dataclass
class TrainConfig:
    head: str = "linear"  # "linear" or "mlp"
    hidden: int = 256  # MLP only
    views: int = 2  # at most this many augmented views per training image (plus the plain one)
    # Augmented image views are for scarce classes: each class gets enough to reach this
    # many training vectors in all, never more than ``views`` per image (training_views).
    class_vectors: int = 30
    lr: float = 3e-3  # MLP only (AdamW)
    weight_decay: float = 1e-2  # MLP only (AdamW)
    max_epochs: int = 300  # MLP only
    patience: int = 10  # MLP only
    batch: int = 256  # MLP only
    oof_l2: float = 1e-2  # L2 strength of the quick linear heads behind out-of-fold predictions
    oof_iters: int = 25  # their L-BFGS iterations at most
    folds: int = 5  # out-of-fold predictions
    val_folds: int = 10  # the validation fold is one in this many (by groups) of train
    unsure_target: float = 0.99  # selective accuracy the unsure threshold aims for
    seed: int = 0
    # L2 strengths (λ in mean loss + λ‖W‖², standardised features) the linear head tries on
    # the validation fold, strongest first; without a validation fold it uses no_val_l2.
    l2_path: tuple[float, ...] = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3)
    no_val_l2: float = 1e-2

    def as_dict(self) -> dict:
        return asdict(self)


def seed_everything(seed: int) -> None:
    """Seed Python's and NumPy's generators (the MLP head seeds torch's: mlp.py)."""
    random.seed(seed)
    np.random.seed(seed)


class AnyHead(Protocol):
    """What a trained head offers: linear.LinearHead (NumPy) or mlp.MLPHead (torch)."""

    @property
    def kind(self) -> str: ...

    def logits(self, X: np.ndarray) -> np.ndarray: ...

    def standardise(self, X: np.ndarray) -> np.ndarray: ...

    def state(self) -> dict[str, np.ndarray]: ...


H = TypeVar("H", bound=AnyHead, covariant=True)


@dataclass(frozen=True)
class FitResult(Generic[H]):
    head: H
    epochs: int  # the MLP's epochs; the linear head's L-BFGS iterations
    val_loss: float | None
    history: list[float] = field(default_factory=list)  # validation loss per epoch or per λ
    l2: float | None = None  # the linear head's chosen L2 strength

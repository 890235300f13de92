"""Head training on cached embeddings: class-balanced, weight decay, early stopping on a
group-aware validation fold, temperature scaling, out-of-fold predictions.

Plain Python and torch: the trainer reports progress through a callback and checks a
cancel flag between steps; it knows nothing about any UI.
"""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fingertui.errors import Cancelled
from fingertui.labels import CLASSES

Progress = Callable[[str, int, int], None]
N_CLASSES = len(CLASSES)
MIN_FOR_VAL = 60
FIXED_EPOCHS = 60


@dataclass
class TrainConfig:
    head: str = "linear"  # "linear" or "mlp"
    hidden: int = 256  # MLP only
    views: int = 2  # augmented views per training image (plus the plain one)
    lr: float = 3e-3
    weight_decay: float = 1e-2
    max_epochs: int = 300
    patience: int = 10
    batch: int = 256
    oof_weight_decay: float = 1e-2  # L2 of the quick L-BFGS heads behind out-of-fold predictions
    oof_iters: int = 25
    folds: int = 5  # out-of-fold predictions
    val_folds: int = 10  # the validation fold is one in this many (by groups) of train
    unsure_target: float = 0.99  # selective accuracy the unsure threshold aims for
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class Head(nn.Module):
    """Standardisation + linear layer (or a small MLP) on backbone embeddings."""

    def __init__(self, dim: int, kind: str = "linear", hidden: int = 256) -> None:
        super().__init__()
        self.kind = kind
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        if kind == "linear":
            self.net: nn.Module = nn.Linear(dim, N_CLASSES)
        elif kind == "mlp":
            self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.2), nn.Linear(hidden, N_CLASSES))
        else:
            raise ValueError(f"unknown head {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def one_torch_thread(fn: Callable) -> Callable:
    """Run ``fn`` with one torch thread in the calling thread (OpenMP keeps the setting per
    thread, so other threads are not affected). The heads' matrices are small: split over
    two threads each step waits for the busier core. Measured on this 2-core machine at
    load 8: 40 epochs of the image head took 94.6 s with two threads, 16.9 s with one;
    the L-BFGS head 12.9 s vs 0.9 s (bench/head_threads.py measures it idle)."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class FitResult:
    head: Head
    epochs: int
    val_loss: float | None
    history: list[float] = field(default_factory=list)


def _prepare(
    X: np.ndarray, y: np.ndarray, cfg: TrainConfig, kind: str
) -> tuple[Head, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fresh seeded head whose standardisation fits X; X standardised once (the inner
    network trains on it); labels; class-balanced loss weights (each present class
    weighs the same in total)."""
    seed_everything(cfg.seed)
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    head = Head(Xt.shape[1], kind, cfg.hidden)
    head.mean.copy_(Xt.mean(0))
    head.std.copy_(Xt.std(0).clamp_min(1e-3))
    counts = torch.bincount(yt, minlength=N_CLASSES).float()
    weights = torch.where(counts > 0, counts.sum() / (counts.clamp_min(1) * (counts > 0).sum()), torch.zeros(()))
    return head, (Xt - head.mean) / head.std, yt, weights


def fit_head(
    X: np.ndarray,
    y: np.ndarray,
    cfg: TrainConfig,
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    epochs: int | None = None,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> FitResult:
    """Train a head on (N, dim) vectors. With ``val``, stop early on its loss and keep the
    best epoch; without, train exactly ``epochs`` epochs. Reports ("training", epoch,
    max epochs) after each epoch through ``progress``."""
    head, Xs, yt, weights = _prepare(X, y, cfg, cfg.head)
    net = head.net
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    n_epochs = epochs if epochs is not None else cfg.max_epochs
    best = (float("inf"), 0, None)
    history: list[float] = []
    if val is not None:
        Xv = (torch.from_numpy(np.ascontiguousarray(val[0], dtype=np.float32)) - head.mean) / head.std
        yv = torch.from_numpy(np.asarray(val[1], dtype=np.int64))
    for epoch in range(1, n_epochs + 1):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        net.train()
        order = torch.randperm(len(Xs), generator=gen)
        for start in range(0, len(Xs), cfg.batch):
            idx = order[start : start + cfg.batch]
            loss = F.cross_entropy(net(Xs[idx]), yt[idx], weight=weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if progress is not None:
            progress("training", epoch, n_epochs)
        if val is not None:
            net.eval()
            with torch.inference_mode():
                vloss = F.cross_entropy(net(Xv), yv, weight=weights).item()
            history.append(vloss)
            if vloss < best[0] - 1e-5:
                best = (vloss, epoch, {k: v.clone() for k, v in head.state_dict().items()})
            elif epoch - best[1] >= cfg.patience:
                break
    if val is not None and best[2] is not None:
        head.load_state_dict(best[2])
        head.eval()
        return FitResult(head, best[1], best[0], history)
    head.eval()
    return FitResult(head, n_epochs, None, history)


def fit_linear_lbfgs(X: np.ndarray, y: np.ndarray, cfg: TrainConfig) -> Head:
    """A linear head fitted by full-batch L-BFGS with L2 (convex, so no early stopping).

    Used for the k out-of-fold heads: about ten times faster than the mini-batch trainer
    on this 2-core machine, which keeps retraining within seconds. Out-of-fold
    predictions only rank samples for review; the model users see is ``fit_head``'s.
    """
    head, Xs, yt, weights = _prepare(X, y, cfg, "linear")
    lin = head.net
    opt = torch.optim.LBFGS(
        lin.parameters(), lr=1.0, max_iter=cfg.oof_iters, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(lin(Xs), yt, weight=weights) + cfg.oof_weight_decay * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    head.eval()
    return head


@torch.inference_mode()
def logits(head: Head, X: np.ndarray) -> np.ndarray:
    head.eval()
    return head(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))).numpy()


def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = z / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(z: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of held-out logits, with a
    weak prior on log T (worth one sample) around 1.

    Without the prior a validation fold with no mistakes — common with a few dozen
    images — drives T towards zero and the model claims certainty it has not earned.
    """
    if len(y) == 0:
        return 1.0
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 400))
    rows = np.arange(len(y))
    cost = [-np.log(softmax(z, t)[rows, y] + 1e-12).mean() + np.log(t) ** 2 / len(y) for t in grid]
    return float(grid[int(np.argmin(cost))])


def unsure_threshold(probs: np.ndarray, y: np.ndarray, target: float) -> float:
    """Lowest confidence above which validation predictions are right at least ``target``
    of the time (clipped to 0.5–0.95); below it a prediction is "unsure"."""
    if len(y) == 0:
        return 0.7
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    for t in np.arange(0.5, 0.951, 0.01):
        kept = conf >= t
        if not kept.any() or correct[kept].mean() >= target:
            return float(round(t, 2))
    return 0.95


def group_folds(y: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Up to ``k`` group-aware folds (near-identical images stay together), stratified by
    each group's majority label when every class has enough groups. Returns the held-out
    sample indices of each fold. (Stratifying whole groups is far faster than
    scikit-learn's StratifiedGroupKFold, and groups here are mostly single images.)"""
    from sklearn.model_selection import KFold, StratifiedKFold

    keys, inverse = np.unique(groups, return_inverse=True)
    k = min(k, len(keys))
    if k < 2:
        return []
    group_label = np.array([np.bincount(y[inverse == g]).argmax() for g in range(len(keys))])
    per_class = np.bincount(group_label)
    if per_class[per_class > 0].min() >= k:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        parts = [te for _, te in splitter.split(np.zeros(len(keys)), group_label)]
    else:
        parts = [te for _, te in KFold(n_splits=k, shuffle=True, random_state=seed).split(keys)]
    return [np.sort(np.nonzero(np.isin(inverse, part))[0]) for part in parts]


def validation_fold(y: np.ndarray, groups: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """Indices of the group-aware validation fold; empty below MIN_FOR_VAL images."""
    folds = group_folds(y, groups, cfg.val_folds, cfg.seed) if len(y) >= MIN_FOR_VAL else []
    return folds[0] if folds else np.zeros(0, dtype=int)


@dataclass
class CalibratedHead:
    fit: FitResult
    temperature: float
    threshold: float
    val_idx: np.ndarray

    def probs(self, X: np.ndarray) -> np.ndarray:
        return softmax(logits(self.fit.head, X), self.temperature)


def train_calibrated(
    Xviews: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    cfg: TrainConfig,
    *,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
    val_idx: np.ndarray | None = None,
) -> CalibratedHead:
    """Carve a group-aware validation fold from (N, views+1, dim) training vectors (or use
    ``val_idx``), train on the rest (all views) with early stopping on the fold's plain
    views, then fit the temperature and the unsure threshold on it."""
    # A smaller validation fold than the out-of-fold ones leaves more images to learn from
    # (measured on sign-digits, 150 per class: 98.1 % test accuracy with 10 %, 98.0 % with 20 %).
    # With only a few images per class a validation fold of one or two images says nothing
    # (the first try in the app, 16 training images, stopped after an epoch and predicted
    # one class for everything): below MIN_FOR_VAL images, train a fixed number of epochs.
    if val_idx is None:
        val_idx = validation_fold(y, groups, cfg)
    fit_idx = np.setdiff1d(np.arange(len(y)), val_idx)
    dim = Xviews.shape[-1]
    Xf = Xviews[fit_idx].reshape(-1, dim)
    yf = np.repeat(y[fit_idx], Xviews.shape[1])
    if len(val_idx):
        fit = fit_head(Xf, yf, cfg, val=(Xviews[val_idx, 0], y[val_idx]), cancel=cancel, progress=progress)
        z_val = logits(fit.head, Xviews[val_idx, 0])
        temperature = fit_temperature(z_val, y[val_idx])
        threshold = unsure_threshold(softmax(z_val, temperature), y[val_idx], cfg.unsure_target)
    else:
        fit = fit_head(Xf, yf, cfg, epochs=FIXED_EPOCHS, cancel=cancel, progress=progress)
        temperature, threshold = 1.0, unsure_threshold(np.zeros((0, N_CLASSES)), np.zeros(0), cfg.unsure_target)
    return CalibratedHead(fit, temperature, threshold, val_idx)

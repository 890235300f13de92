"""Head training on cached embeddings: class-balanced, regularised (the L2 strength chosen
on a group-aware validation fold), temperature scaling, out-of-fold predictions.

The linear head is a multinomial logistic regression fitted to convergence by L-BFGS
on standardised features (linear.py: NumPy and SciPy, scikit-learn's objective): convex,
so there is nothing to stop early, and a path of L2 strengths, warm-started from the
strongest, stands in for early stopping. The MLP head trains with AdamW in torch (mlp.py,
imported only for an MLP run: importing torch costs seconds, so a linear run never does).
The settings and results both share live in fitting.py.

Plain Python and NumPy: the trainer reports progress through a callback and checks a
cancel flag between steps; it knows nothing about any UI.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from fingertui.errors import Cancelled
from fingertui.learn.fitting import N_CLASSES, AnyHead, FitResult
from fingertui.learn.fitting import TrainConfig as TrainConfig  # the settings callers pass in here
from fingertui.learn.linear import LinearHead, fit_multinomial
from fingertui.learn.pooling import softmax
from fingertui.progress import Progress

MIN_FOR_VAL = 60
FIXED_EPOCHS = 60
# BLAS threads while the linear head fits (threadpoolctl; None: the library's default).
BLAS_THREADS: int | None = 1


def training_views(y: np.ndarray, keys: list[str], cfg: TrainConfig) -> list[int]:
    """Augmented views for each training image (labels ``y``, stable ``keys`` such as the
    image hashes): a class of n images gets max(0, cfg.class_vectors − n) augmented views,
    at most ``cfg.views`` per image, spread evenly over its images (which ones get the
    extra view is decided by the key, so it stays put as images are added).

    Augmentation is what a class with a handful of images needs; past that the augmented
    views cost accuracy. On sign-digits (n training images per class, frozen test split,
    linear head, 160 px; 2 views per image against none) the views help at n = 10 and
    cost accuracy from n = 30 on. And every view is a network pass, the first training's
    main cost."""
    y = np.asarray(y)
    out = [0] * len(y)
    for c in np.unique(y):
        rows = sorted(np.nonzero(y == c)[0], key=lambda i: hashlib.sha256(keys[i].encode()).hexdigest())
        extra = min(max(0, cfg.class_vectors - len(rows)), cfg.views * len(rows))
        each, rest = divmod(extra, len(rows))
        for rank, i in enumerate(rows):
            out[i] = each + (1 if rank < rest else 0)
    return out


# The logit of a class the training data lacks: far below any other, so never predicted.
ABSENT_LOGIT = -30.0


def _class_weights(y: np.ndarray) -> np.ndarray:
    """Per-sample weights that make each present class weigh the same in total (mean 1)."""
    counts = np.bincount(y, minlength=N_CLASSES).astype(np.float64)
    present = counts > 0
    per_class = np.where(present, len(y) / (np.maximum(counts, 1) * present.sum()), 0.0)
    return per_class[y]


def _weighted_nll(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    p = softmax(z.astype(np.float64))
    return float(-(w * np.log(p[np.arange(len(y)), y] + 1e-12)).sum() / w.sum())


def fit_linear(
    X: np.ndarray,
    y: np.ndarray,
    cfg: TrainConfig,
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    l2: float | None = None,
    max_iter: int = 500,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> FitResult[LinearHead]:
    """A class-balanced linear head: multinomial logistic regression on standardised
    features, minimising the class-weighted mean loss + λ‖W‖² by L-BFGS
    (linear.fit_multinomial), over the classes present in ``y``; a class the data lacks
    gets a logit far below the others. Two classes are a multinomial of two as well
    (scikit-learn would fit one logit there, with half the penalty on its difference).

    With ``val``, λ runs down ``cfg.l2_path`` (each fit warm-started from the last) and
    the λ with the lowest validation loss is kept; otherwise ``l2`` (default
    ``cfg.no_val_l2``). Reports ("training", k, len(path)) after each λ."""
    from threadpoolctl import threadpool_limits

    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    mean = X.mean(0)
    std = np.maximum(X.std(0), 1e-3)
    Xs = (X - mean) / std
    w = _class_weights(y)
    path = cfg.l2_path if val is not None else (l2 if l2 is not None else cfg.no_val_l2,)
    checks: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # the validation fold, standardised, weighted
    if val is not None:
        yv = np.asarray(val[1], dtype=np.int64)
        checks = ((np.asarray(val[0], dtype=np.float32) - mean) / std, yv, _class_weights(yv))
    present = np.unique(y)
    if len(present) < 2:  # one class: nothing to fit, the head always says it
        b = np.full(N_CLASSES, ABSENT_LOGIT)
        b[present] = 0.0
        return FitResult(LinearHead(mean, std, np.zeros((N_CLASSES, X.shape[1])), b), 0, None, [], None)
    yi = np.searchsorted(present, y)  # labels as indices into the present classes
    start = None
    best: tuple[float, float, np.ndarray, np.ndarray, int] | None = None
    history: list[float] = []
    for k, lam in enumerate(path):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        # One BLAS thread: these products are small, and split over two cores each waits
        # for the slower (bench/results/head_threads.json: median 0.29 s a fit on one
        # thread, 0.83 s on two, at load 1.5).
        with threadpool_limits(BLAS_THREADS, user_api="blas"):
            Wp, bp, iters = fit_multinomial(Xs, yi, len(present), w, lam, start=start, max_iter=max_iter)
        start = (Wp, bp)
        W = np.zeros((N_CLASSES, X.shape[1]))
        b = np.full(N_CLASSES, ABSENT_LOGIT)
        W[present], b[present] = Wp, bp
        if checks is None:
            best = (0.0, lam, W, b, iters)
        else:
            Xv, yv, wv = checks
            loss = _weighted_nll(Xv @ W.T + b, yv, wv)
            history.append(loss)
            if best is None or loss < best[0] - 1e-6:
                best = (loss, lam, W, b, iters)
        if progress is not None:
            progress("training", k + 1, len(path))
    assert best is not None
    head = LinearHead(mean, std, best[2], best[3])
    return FitResult(head, best[4], best[0] if val is not None else None, history, best[1])


def fit_linear_quick(X: np.ndarray, y: np.ndarray, cfg: TrainConfig) -> LinearHead:
    """A quick linear head for out-of-fold predictions: ``fit_linear`` at the L2 strength
    ``cfg.oof_l2``, cut short after ``cfg.oof_iters`` L-BFGS iterations. Out-of-fold
    predictions only rank samples for review; being quick keeps retraining within seconds."""
    return fit_linear(X, y, cfg, l2=cfg.oof_l2, max_iter=cfg.oof_iters).head


def logits(head: AnyHead, X: np.ndarray) -> np.ndarray:
    """A head's (N, 6) logits of (N, dim) feature rows, as a NumPy array."""
    return head.logits(X)


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
    each group's majority label. Returns the held-out sample indices of each fold.

    Groups go largest first (in a seeded shuffle among equals) to the fold holding the
    fewest images of their label, then the fewest images: with groups of one size each
    fold's share of every class is even to within one group, and big groups (look-alike
    snapshots) spread over the folds instead of piling up. On the planted label errors of
    tests/test_active.py (most of a class in one group), seeds 0-9, these folds find more
    of them than scikit-learn's stratified-else-plain k-fold or groups dealt round the
    folds.
    """
    keys, inverse = np.unique(groups, return_inverse=True)
    k = min(k, len(keys))
    if k < 2:
        return []
    votes = np.zeros((len(keys), int(np.max(y)) + 1))
    np.add.at(votes, (inverse, y), 1)
    label, size = votes.argmax(1), votes.sum(1)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(keys))
    order = order[np.argsort(-size[order], kind="stable")]  # largest first, shuffled among equals
    tie = rng.permutation(k)
    per_class = np.zeros((k, votes.shape[1]))
    total = np.zeros(k)
    fold_of = np.empty(len(keys), dtype=int)
    for g in order:
        c = label[g]
        # Fewest of this class, then fewest in all, then the seeded tie order (exact in floats).
        f = int(np.argmin((per_class[:, c] * (len(y) + 1) + total) * k + tie))
        fold_of[g] = f
        per_class[f, c] += size[g]
        total[f] += size[g]
    sample_fold = fold_of[inverse]
    return [np.nonzero(sample_fold == f)[0] for f in range(k)]


def validation_fold(y: np.ndarray, groups: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """Indices of the group-aware validation fold; empty below MIN_FOR_VAL images."""
    folds = group_folds(y, groups, cfg.val_folds, cfg.seed) if len(y) >= MIN_FOR_VAL else []
    return folds[0] if folds else np.zeros(0, dtype=int)


@dataclass
class CalibratedHead:
    fit: FitResult[AnyHead]
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
    refit: bool = False,
) -> CalibratedHead:
    """Carve a group-aware validation fold from (N, views+1, dim) training vectors (or use
    ``val_idx``), train on the rest (all views), regularised as the fold's plain views
    choose (the linear head's L2 strength, the MLP's early stop), then fit the temperature
    and the unsure threshold on it. With ``refit`` (the fold is a held-out session) the
    linear head is fitted again on every image at the chosen strength."""
    # A smaller validation fold than the out-of-fold ones leaves more images to learn from,
    # at no cost in test accuracy (bench/results/val_fold-per-class150-seeds3.json:
    # sign-digits, 150 per class, 98.4 % with 10 % and with 20 %). Below MIN_FOR_VAL images
    # there is no validation fold: one of one or two images says nothing (an MLP stopped on
    # it after an epoch predicts one class for everything), so the linear head takes
    # cfg.no_val_l2 and the MLP FIXED_EPOCHS.
    if val_idx is None:
        val_idx = validation_fold(y, groups, cfg)
    fit_idx = np.setdiff1d(np.arange(len(y)), val_idx)
    dim = Xviews.shape[-1]
    Xf = Xviews[fit_idx].reshape(-1, dim)
    yf = np.repeat(y[fit_idx], Xviews.shape[1])
    trainer: Callable[..., FitResult[AnyHead]] = fit_linear
    fixed: dict[str, int] = {}  # without a validation fold, the MLP trains FIXED_EPOCHS
    if cfg.head != "linear":
        from fingertui.learn.mlp import fit_head

        trainer, fixed = fit_head, {"epochs": FIXED_EPOCHS}
    if len(val_idx):
        fit = trainer(Xf, yf, cfg, val=(Xviews[val_idx, 0], y[val_idx]), cancel=cancel, progress=progress)
        z_val = logits(fit.head, Xviews[val_idx, 0])
        temperature = fit_temperature(z_val, y[val_idx])
        threshold = unsure_threshold(softmax(z_val, temperature), y[val_idx], cfg.unsure_target)
        if refit and cfg.head == "linear":
            # The fold chose the L2 strength; the head itself learns from every image.
            Xa = Xviews.reshape(-1, dim)
            fit = replace(fit, head=fit_linear(Xa, np.repeat(y, Xviews.shape[1]), cfg, l2=fit.l2).head)
    else:
        fit = trainer(Xf, yf, cfg, cancel=cancel, progress=progress, **fixed)
        temperature, threshold = 1.0, unsure_threshold(np.zeros((0, N_CLASSES)), np.zeros(0), cfg.unsure_target)
    return CalibratedHead(fit, temperature, threshold, val_idx)

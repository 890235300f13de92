"""Evaluation metrics: the confusion matrix (rows = true label, columns = predicted),
per-class precision/recall/F1 and balanced accuracy (in NumPy, as scikit-learn defines
them: tests/test_learning.py compares), the exact (Clopper–Pearson) interval of the
accuracy, calibration error (ECE), exact McNemar test, and the judgements built on them: whether an accuracy means anything yet, and whether a model's
confidence has been checked on enough images to call a prediction "sure"."""

from __future__ import annotations

import math

import numpy as np

from fingertui.labels import CLASSES

ECE_BINS = 15
# Below this many test images in some class an accuracy is mostly luck: with 6 images
# (one per class) the exact 95 % interval of 2/6 right is 4–78 %, of 6/6 right 54–100 %.
MEANINGFUL_PER_CLASS = 10
# A model's confidence is worth the word "sure" once this many held-out images per class
# (validation fold + test split) have checked it, and its measured calibration error is small.
CHECKED_PER_CLASS = 10
CHECKED_MAX_ECE = 0.10


def ece(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top-class confidence (equal-width bins)."""
    if len(y) == 0:
        return float("nan")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def exact_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper–Pearson interval of a proportion k/n. Unlike a bootstrap it stays honest on
    a handful of images: 6 right of 6 gives 54–100 %, not 100–100 %."""
    # The beta distribution's quantile is the inverse regularised incomplete beta function:
    # scipy.special has it without scipy.stats, whose slow import every command would pay.
    from scipy.special import betaincinv

    if n == 0:
        return (float("nan"), float("nan"))
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, a))
    hi = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - a))
    return (lo, hi)


def accuracy_interval(m: dict) -> tuple[float, float]:
    """The exact 95 % interval of an evaluation's accuracy, computed from n and the accuracy
    (so also for a run whose record holds a bootstrap interval)."""
    n = int(m.get("n") or 0)
    acc = m.get("accuracy")
    if not n or acc is None or acc != acc:
        return (float("nan"), float("nan"))
    return exact_interval(round(acc * n), n)


def fewest_per_class(m: dict) -> tuple[int, int]:
    """(count, class) of the class with the fewest test images, over all classes."""
    counts = [sum(row) for row in m["confusion"]["counts"]]
    c = int(np.argmin(counts))
    return int(counts[c]), CLASSES[c]


def accuracy_caveat(m: dict) -> str | None:
    """One line saying the accuracy is not yet meaningful (too few test images per class),
    with its interval; None when there are enough."""
    few, c = fewest_per_class(m)
    if few >= MEANINGFUL_PER_CLASS:
        return None
    lo, hi = accuracy_interval(m)
    where = f"class {c} has {few}" if few else f"class {c} has none"
    span = f"; the true accuracy could be anywhere from {100 * lo:.0f}% to {100 * hi:.0f}%" if lo == lo else ""
    return f"not yet meaningful: only {m['n']} test images ({where}; {MEANINGFUL_PER_CLASS} per class are needed){span}"


def accuracy_short(m: dict) -> str:
    """Accuracy for a table cell: with too few test images per class, its interval and a '!'
    (explained beside the table as "not yet meaningful")."""
    acc = m.get("accuracy")
    text = "-" if acc is None or acc != acc else f"{100 * acc:.1f}%"
    if acc is None or acc != acc or accuracy_caveat(m) is None:
        return text
    lo, hi = accuracy_interval(m)
    return f"{text} ({100 * lo:.0f}-{100 * hi:.0f}%)!"


def confidence_check(val_y: np.ndarray, test_y: np.ndarray, test_ece: float, trained: list[int]) -> dict:
    """Whether held-out images back the model's confidence: at least CHECKED_PER_CLASS
    validation + test images of every class it was trained on, and a test ECE at most
    CHECKED_MAX_ECE. Until then a confident prediction is not called "sure"."""
    held = np.concatenate([np.asarray(val_y, dtype=int), np.asarray(test_y, dtype=int)])
    counts = {c: int((held == c).sum()) for c in trained}
    short = {c: n for c, n in counts.items() if n < CHECKED_PER_CLASS}
    if short:
        c = min(short, key=lambda k: short[k])
        why = (
            f"only {short[c]} held-out image{'s' if short[c] != 1 else ''} of class {c} checked it; "
            f"about {4 * CHECKED_PER_CLASS} labelled per class are needed"
        )
        return {"checked": False, "why": why}
    if not test_ece == test_ece or test_ece > CHECKED_MAX_ECE:
        return {"checked": False, "why": f"its confidence is off by {test_ece:.2f} on the test split (ECE)"}
    return {"checked": True, "why": f"checked on at least {min(counts.values())} held-out images per class"}


def evaluate(y: np.ndarray, probs: np.ndarray) -> dict:
    """Everything the results table shows, as plain JSON-able values.

    Classes with no samples in ``y`` are left out of the per-class scores and balanced
    accuracy, and listed under ``missing_classes``. A score whose denominator is zero (the
    precision of a class never predicted) is 0, as scikit-learn's ``zero_division=0``.
    """
    y = np.asarray(y, dtype=int)
    labels = list(CLASSES)
    pred = probs.argmax(axis=1) if len(y) else np.zeros(0, dtype=int)
    present = [c for c in CLASSES if (y == c).any()]
    cm = np.zeros((len(labels), len(labels)), dtype=int)
    np.add.at(cm, (np.searchsorted(labels, y), np.searchsorted(labels, pred)), 1)
    hits = np.diag(cm).astype(float)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    precision = np.divide(hits, predicted, out=np.zeros(len(labels)), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros(len(labels)), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(len(labels)), where=both > 0)
    per_class = {
        str(c): {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, c in enumerate(labels)
        if c in present
    }
    balanced = float(np.mean([recall[labels.index(c)] for c in present])) if present else float("nan")
    correct = (pred == y).astype(float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    weakest = min(per_class, key=lambda c: per_class[c]["recall"]) if per_class else None
    return {
        "n": int(len(y)),
        "accuracy": float(correct.mean()) if len(y) else float("nan"),
        "accuracy_ci95": list(exact_interval(int(correct.sum()), len(correct))),
        "balanced_accuracy": balanced,
        "per_class": per_class,
        "weakest_class": weakest,
        "confusion": {
            "rows": "true",
            "columns": "predicted",
            "labels": labels,
            "counts": cm.tolist(),
            "row_normalised": norm.round(4).tolist(),
        },
        "ece": ece(probs, y) if len(y) else float("nan"),
        "missing_classes": [c for c in CLASSES if c not in present],
    }


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Exact McNemar test on paired right/wrong outcomes of two models on the same samples:
    the two-sided binomial test of the discordant pairs at p = ½ (exact integers)."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    only_a = int((a & ~b).sum())  # right in A, wrong in B
    only_b = int((~a & b).sum())
    n = only_a + only_b
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1))
    p = 1.0 if n == 0 else min(1.0, 2 * tail / 2**n)
    return {"a_right_b_wrong": only_a, "a_wrong_b_right": only_b, "p_value": p}

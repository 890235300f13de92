"""Evaluation metrics: scikit-learn's confusion matrix (rows = true label, columns =
predicted), per-class precision/recall/F1 and balanced accuracy, plus our own bootstrap
interval of the accuracy, calibration error (ECE) and exact McNemar test."""

from __future__ import annotations

import warnings

import numpy as np

from fingertui.labels import CLASSES

N_BOOT = 1000
ECE_BINS = 15


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


def bootstrap_ci(correct: np.ndarray, seed: int = 0, n_boot: int = N_BOOT) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean of a 0/1 vector."""
    if len(correct) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = correct[rng.integers(0, len(correct), (n_boot, len(correct)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return (float(lo), float(hi))


def evaluate(y: np.ndarray, probs: np.ndarray, seed: int = 0) -> dict:
    """Everything the results table shows, as plain JSON-able values.

    Confusion matrix, precision/recall/F1 and balanced accuracy come from scikit-learn;
    the bootstrap interval and ECE are ours. Classes with no samples in ``y`` are left out
    of the per-class scores and balanced accuracy, and listed under ``missing_classes``.
    """
    from sklearn import metrics as skm

    y = np.asarray(y, dtype=int)
    labels = list(CLASSES)
    pred = probs.argmax(axis=1) if len(y) else np.zeros(0, dtype=int)
    present = [c for c in CLASSES if (y == c).any()]
    cm = skm.confusion_matrix(y, pred, labels=labels) if len(y) else np.zeros((len(labels),) * 2, dtype=int)
    per_class = {}
    if present:
        prec, rec, f1, support = skm.precision_recall_fscore_support(y, pred, labels=present, zero_division=0)
        for i, c in enumerate(present):
            per_class[str(c)] = {
                "precision": float(prec[i]),
                "recall": float(rec[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
    balanced = float("nan")
    if present:
        with warnings.catch_warnings():
            # It warns when a prediction names a class absent from y: expected here (such
            # classes are listed under missing_classes and left out of the mean).
            warnings.simplefilter("ignore", UserWarning)
            balanced = float(skm.balanced_accuracy_score(y, pred))
    correct = (pred == y).astype(float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    weakest = min(per_class, key=lambda c: per_class[c]["recall"]) if per_class else None
    return {
        "n": int(len(y)),
        "accuracy": float(skm.accuracy_score(y, pred)) if len(y) else float("nan"),
        "accuracy_ci95": list(bootstrap_ci(correct, seed)),
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
    """Exact McNemar test on paired right/wrong outcomes of two models on the same samples."""
    from scipy.stats import binomtest

    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    only_a = int((a & ~b).sum())  # right in A, wrong in B
    only_b = int((~a & b).sum())
    n = only_a + only_b
    p = 1.0 if n == 0 else float(binomtest(min(only_a, only_b), n, 0.5).pvalue)
    return {"a_right_b_wrong": only_a, "a_wrong_b_right": only_b, "p_value": p}

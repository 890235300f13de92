"""How much a sample is worth the user's look: uncertainty scores, what each flag reason
adds to them, near-duplicates folded into one, and a diverse batch. Active learning's
selection (``select``) and the review queue's order both come from here."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fingertui.errors import UserError

STRATEGIES = ("margin", "least-confidence", "entropy", "random")
DEFAULT_STRATEGY = "margin"
# Queue score = uncertainty (0–1) + a bonus per reason: a known mistake costs the model
# most; a weak-class sample is worth a little more. (Label errors and disagreements rank
# above all of these: TIER below.)
BONUS = {
    "misclassified": 0.5,
    "no-hand": 0.3,
    "finger-borderline": 0.2,
    "weak-class": 0.25,
    "unsure": 0.0,
}
# Label-error and disagrees items come first, in that order, whatever else is flagged
# (the other reasons together score at most 1 + 1.25): queue score = tier + evidence.
TIER = {"label-error": 4.0, "disagrees": 3.0}
# A disagreement where an expert sides with the label ranks below every one where none does
# (strengths are at most 1).
SIDED_PENALTY = 1.0
NEAR_DUPLICATE_COS = 0.97


def uncertainty(probs: np.ndarray, strategy: str, seed: int = 0) -> np.ndarray:
    """Higher = more worth a label. ``probs`` is (N, classes)."""
    if strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if len(probs) == 0:
        return np.zeros(0)
    if strategy == "least-confidence":
        return 1.0 - probs.max(axis=1)
    if strategy == "margin":
        top2 = np.sort(probs, axis=1)[:, -2:]
        return 1.0 - (top2[:, 1] - top2[:, 0])
    if strategy == "entropy":
        p = np.clip(probs, 1e-12, 1.0)
        return -(p * np.log(p)).sum(axis=1) / np.log(probs.shape[1])
    return np.random.default_rng(seed).random(len(probs))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.clip(np.linalg.norm(v, axis=1, keepdims=True), 1e-12, None)


def fold_near_duplicates(
    order: Sequence[int], vectors: np.ndarray, near: float = NEAR_DUPLICATE_COS
) -> tuple[list[int], dict[int, list[int]]]:
    """Walk candidates best-first; one whose embedding is within ``near`` cosine similarity
    of an earlier kept one is folded into it. Returns kept indices (in order) and the
    near-duplicates folded into each."""
    order = list(order)
    if not order:
        return [], {}
    u = _unit(vectors[order].astype(np.float32))
    kept: list[int] = []
    dupes: dict[int, list[int]] = {}
    owner = np.full(len(order), -1)
    for n, idx in enumerate(order):
        if owner[n] >= 0:
            dupes[order[owner[n]]].append(idx)
            continue
        kept.append(idx)
        dupes[idx] = []
        later = np.arange(n + 1, len(order))
        close = later[(owner[later] < 0) & (u[later] @ u[n] >= near)]
        owner[close] = n
    return kept, dupes


def diverse_order(order: Sequence[int], vectors: np.ndarray, k: int | None = None) -> list[int]:
    """Greedy k-center over candidates given best-first: start from the best, then take
    the candidate farthest (cosine) from everything taken so far."""
    order = list(order)
    if not order:
        return []
    k = len(order) if k is None else min(k, len(order))
    u = _unit(vectors[order].astype(np.float32))
    taken = [0]
    min_dist = 1.0 - u @ u[0]
    min_dist[0] = -np.inf
    while len(taken) < k:
        nxt = int(np.argmax(min_dist))  # ties go to the better-ranked (earlier) candidate
        taken.append(nxt)
        min_dist = np.minimum(min_dist, 1.0 - u @ u[nxt])
        min_dist[taken] = -np.inf
    return [order[i] for i in taken]


def select(
    probs: np.ndarray,
    vectors: np.ndarray,
    k: int,
    strategy: str = DEFAULT_STRATEGY,
    *,
    diversity: bool = True,
    boost_class: int | None = None,
    seed: int = 0,
    pool_factor: int = 3,
) -> list[int]:
    """Which ``k`` of N unlabelled samples to label next (indices into ``probs``)."""
    score = uncertainty(probs, strategy, seed)
    if boost_class is not None and strategy != "random":
        score = score + BONUS["weak-class"] * (probs.argmax(axis=1) == boost_class)
    order = list(np.argsort(-score, kind="stable"))
    if not diversity:
        return order[:k]
    reps, _ = fold_near_duplicates(order, vectors)
    return diverse_order(reps[: k * pool_factor], vectors, k)

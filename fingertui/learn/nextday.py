"""Validation for the next day: what a run may learn from held-out sittings, and the
starter as the floor no run may fall below.

A user captures in one sitting (one room, one light, one day) and counts in another. A
validation fold drawn from the training sitting cannot see that shift: there the experts
that memorise the sitting (the image, the pose head's exact hand shapes) look perfect and
win the pooling. So:

- with two or more sessions, everything a run chooses on held-out data (pooling weights,
  regularisation, the unsure threshold) is chosen on whole held-out sessions, and the
  accuracy on those sessions is the run's *next-day* accuracy;
- with one session there is no evidence about a new day: the pooling is shrunk towards
  the finger-state expert (the one that carries to new rooms and finger combinations),
  and the figure is marked as the same sitting's;
- every run is scored beside the starter on the same held-out images; a run that is worse
  is recorded but not made active unless the user says so.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from fingertui.learn.metrics import exact_interval
from fingertui.learn.pooling import softmax

# Pooling weights tried on held-out sessions (w per expert).
WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
# With one session: the finger-state expert keeps weight 1; the others are chosen beside
# it on the same sitting's validation fold, the image expert (the one that learns the room)
# only a little.
ONE_SESSION_GRID = {"fingers": (1.0,), "pose": (0.0, 0.25, 0.5, 0.75, 1.0, 1.5), "image": (0.0, 0.1, 0.25)}
RULE_SESSIONS = "held-out sessions"
RULE_ONE_SESSION = "one session"
RULE_SMALL = "few labels"

RULE_WHY = {
    RULE_SESSIONS: "pooling weights and the unsure threshold chosen on whole held-out sessions",
    RULE_ONE_SESSION: (
        "one session: no held-out sitting shows how the experts carry to a new day, so the "
        "finger-state expert keeps weight 1 and the others may only add a little"
    ),
    RULE_SMALL: "too few labels for a validation fold: fixed weights that lean on the finger-state expert",
}


def session_groups(sessions: np.ndarray) -> tuple[np.ndarray, int]:
    """(groups, number of distinct sessions) of training rows' session names."""
    names, inverse = np.unique(sessions, return_inverse=True)
    return inverse, len(names)


def fit_weights(
    z: dict[str, np.ndarray], y: np.ndarray, grid: dict[str, tuple[float, ...]] | None = None
) -> dict[str, float]:
    """Pooling weights (one per expert, on a grid) minimising held-out negative
    log-likelihood; ties go to smaller weights."""
    names = sorted(z)
    axes = [grid.get(n, WEIGHT_GRID) if grid else WEIGHT_GRID for n in names]
    rows = np.arange(len(y))
    best: tuple[float, dict[str, float]] = (np.inf, {})
    for combo in itertools.product(*axes):
        if not any(combo):
            continue
        p = softmax(functools.reduce(np.add, [w * z[n] for w, n in zip(combo, names, strict=True)]))
        nll = -np.log(p[rows, y] + 1e-12).mean() + 1e-3 * sum(combo)
        if nll < best[0]:
            best = (nll, dict(zip(names, combo, strict=True)))
    return best[1]


@dataclass
class Floor:
    """A run beside the starter on the same held-out images (paired)."""

    n: int
    run_correct: int
    starter_correct: int
    where: str  # "held-out sessions" or "test split (same sitting)"

    @property
    def held_back(self) -> bool:
        """Worse than the starter: the run is not made active without the user's word."""
        return self.n > 0 and self.run_correct < self.starter_correct

    def as_json(self) -> dict:
        return {
            "n": self.n,
            "run_accuracy": self.run_correct / self.n if self.n else None,
            "starter_accuracy": self.starter_correct / self.n if self.n else None,
            "where": self.where,
            "held_back": self.held_back,
        }


def floor(y: np.ndarray, p_run: np.ndarray, p_starter: np.ndarray, where: str) -> Floor:
    """Paired comparison on rows where the run has an answer (a NaN row has none: skipped)."""
    ok = ~np.isnan(p_run[:, 0]) if len(y) else np.zeros(0, dtype=bool)
    y, p_run, p_starter = y[ok], p_run[ok], p_starter[ok]
    starter_right = (p_starter.argmax(1) == y) & ~np.isnan(p_starter[:, 0])
    return Floor(int(len(y)), int((p_run.argmax(1) == y).sum()), int(starter_right.sum()), where)


def next_day(rule: str, y: np.ndarray, p: np.ndarray, sessions: int, starter: Floor, same_sitting_note: bool) -> dict:
    """The headline figure: accuracy where the run did not train (held-out sessions), or,
    with one session, the test split's — marked as the same sitting's."""
    ok = ~np.isnan(p[:, 0]) if len(y) else np.zeros(0, dtype=bool)
    n = int(ok.sum())
    right = int((p[ok].argmax(1) == y[ok]).sum()) if n else 0
    lo, hi = exact_interval(right, n) if n else (float("nan"), float("nan"))
    return {
        "rule": rule,
        "why": RULE_WHY[rule],
        "accuracy": right / n if n else None,
        "n": n,
        "ci95": [lo, hi] if n else None,
        "sessions": sessions,
        "same_sitting": same_sitting_note,
        "starter": starter.as_json(),
    }


def describe(nd: dict | None) -> str | None:
    """One line for the CLI and the app: the next-day figure, or why there is none."""
    if not nd or nd.get("accuracy") is None:
        return None
    acc = 100 * nd["accuracy"]
    st = nd["starter"]
    beside = f"; the starter {100 * st['starter_accuracy']:.1f} %" if st.get("starter_accuracy") is not None else ""
    if nd["same_sitting"]:
        return (
            f"same sitting: {acc:.1f} % on {nd['n']} test images{beside} — one session only, so another "
            "day may score lower; capture another sitting to measure that"
        )
    return f"next day: {acc:.1f} % on {nd['n']} images of {nd['sessions']} sessions it did not train on{beside}"


def held_back_message(nd: dict | None) -> str | None:
    """What the user is told when a run is worse than the starter (None when it is not)."""
    if not nd or not nd["starter"].get("held_back"):
        return None
    st = nd["starter"]
    new = "a new sitting" if not nd["same_sitting"] else "its test images"
    return (
        f"your model is not yet better than the starter on {new} ({100 * st['run_accuracy']:.1f} % vs "
        f"{100 * st['starter_accuracy']:.1f} % on {st['n']} images): the starter stays in use; capture "
        "another sitting, or `fingertui runs activate ID` to use this run anyway"
    )

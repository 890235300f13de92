"""How a run pools its experts and how far it trusts them: the pooling weights (on held-out
sessions, else on the validation fold, else the small-data rule) and the unsure threshold;
then the test split and "another day" scored with them, beside the starter.

train/pipeline.py calls these after the experts are fitted and cross-checked out of fold
(experts.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fingertui.learn import nextday
from fingertui.learn.experts import Experts, OutOfFold, RunData, Steps, small_data_weights
from fingertui.learn.fitting import N_CLASSES as N
from fingertui.learn.heads import unsure_threshold, validation_fold
from fingertui.learn.metrics import evaluate
from fingertui.learn.pooling import softmax

# --- pool and calibrate ------------------------------------------------------------------


@dataclass
class Pooling:
    """How the run pools its experts, and the predictions that chose and checked it."""

    rule: str  # nextday.RULE_*: on held-out sessions, on the validation fold, or small data
    weights: dict[str, float]
    threshold: float  # the unsure threshold
    oof: np.ndarray  # pooled out-of-fold probabilities (NaN where an expert had no fold model)
    complete: np.ndarray  # the training rows every expert predicted out of fold
    oof_experts: dict[str, np.ndarray]  # each expert's out-of-fold probabilities
    chosen_on: tuple[np.ndarray, np.ndarray]  # the (probabilities, labels) the threshold was set on


def pool_and_calibrate(data: RunData, experts: Experts, oof: OutOfFold, with_pose: bool, steps: Steps) -> Pooling:
    """The pooling weights (on held-out sessions, else on the validation fold shrunk
    towards the finger-state expert, else the small-data rule) and the unsure threshold."""
    steps.report("calibrating", 0, 1)
    rule, weights = _pooling_weights(data, experts, oof, with_pose)
    names = experts.names
    n = data.n
    pooled_oof = np.full((n, N), np.nan)
    complete = np.all([oof.has(name) for name in names], axis=0) if names else np.zeros(n, dtype=bool)
    if "image" not in experts.heads:
        complete &= data.hand
    if complete.any():
        rows = np.nonzero(complete)[0]
        pooled_oof[rows] = experts.pooled(oof.rows(rows), data.hand[rows], oof.novel[rows], weights)
    oof_experts = {name: np.full((n, N), np.nan) for name in names}
    for name, z in oof.z.items():
        seen = oof.has(name) & (np.ones(n, dtype=bool) if name == "image" else data.hand)
        oof_experts[name][seen] = softmax(z[seen])
    if rule == nextday.RULE_SESSIONS:
        p_choose, y_choose = pooled_oof[complete], data.y[complete]
    else:
        val = data.val_idx
        p_choose = experts.pooled(experts.logits(val), data.hand[val], experts.novel(val), weights)
        y_choose = data.y[val]
    threshold = unsure_threshold(p_choose, y_choose, experts.cfg.unsure_target)
    steps.report("calibrating", 1, 1)
    return Pooling(rule, weights, threshold, pooled_oof, complete, oof_experts, (p_choose, y_choose))


def _pooling_weights(data: RunData, experts: Experts, oof: OutOfFold, with_pose: bool) -> tuple[str, dict[str, float]]:
    """The pooling rule that applies and its weights (every expert named, 0 where unused)."""
    names = experts.names
    if data.by_session and data.folds:
        rule = nextday.RULE_SESSIONS
        rows = np.nonzero(np.all([oof.has(n) for n in names], axis=0) & (data.hand if with_pose else True))[0]
        rows = rows[~oof.novel[rows]]
        weights = (
            nextday.fit_weights({n: oof.z[n][rows] for n in names}, data.y[rows])
            if len(rows)
            else small_data_weights(names, data.fewest)
        )
    else:
        val_hand = data.val_idx[data.hand[data.val_idx]] if "pose" in experts.heads else data.val_idx
        if len(data.val_idx) and len(val_hand):
            rule = nextday.RULE_ONE_SESSION
            grid = nextday.ONE_SESSION_GRID if experts.fingers is not None else None
            z_val = experts.logits(val_hand)
            if len(z_val) == 1:  # one expert: its temperature
                name = next(iter(z_val))
                weights = {name: 1.0 / experts.temperatures.get(name, 1.0)}
            else:
                weights = nextday.fit_weights(z_val, data.y[val_hand], grid)
        else:
            rule = nextday.RULE_SMALL
            weights = small_data_weights(names, data.fewest)
    for name in names:
        weights.setdefault(name, 0.0)
    return rule, weights


# --- evaluate, with the starter as the floor -----------------------------------------------


@dataclass
class TestPredictions:
    """The run's predictions of the test split: pooled, and each expert's own."""

    probs: np.ndarray
    experts: dict[str, np.ndarray]
    metrics: dict


def evaluate_test(data: RunData, experts: Experts, pooling: Pooling) -> TestPredictions:
    rows = np.arange(data.n, data.n + len(data.test_s))
    z = experts.logits(rows)
    probs = experts.pooled(z, data.hand_test, experts.novel(rows), pooling.weights)
    by_expert = {}
    for name, zn in z.items():
        by_expert[name] = softmax(zn)
        if name != "image":
            by_expert[name][~data.hand_test] = np.nan
    return TestPredictions(probs, by_expert, evaluate(data.y_test, probs))


def score_next_day(
    data: RunData, experts: Experts, oof: OutOfFold, pooling: Pooling, test: TestPredictions, with_pose: bool, used: str
) -> dict:
    """What the run may score on another day, beside the starter on the same held-out
    images: on held-out sessions where there are two or more, else on the test split."""

    def starter_p(rows: np.ndarray, hand: np.ndarray) -> np.ndarray:
        p = np.full((len(rows), N), np.nan)
        if experts.starter is not None and hand.any():
            p[hand] = experts.starter.count_probs(data.fingers[rows[hand]])
        return p

    if pooling.rule == nextday.RULE_SESSIONS:
        y, p = data.y, _held_out_session_probs(data, experts, oof, pooling, with_pose)
        starter = starter_p(np.arange(data.n), data.hand)
        where = "held-out sessions"
    else:
        y, p = data.y_test, test.probs
        starter = starter_p(np.arange(data.n, data.n + len(data.test_s)), data.hand_test)
        where = "test split (same sitting)"
    floor = nextday.floor(y, p, starter, where)
    if experts.starter is None or used == "image":
        floor = nextday.Floor(0, 0, 0, "no starter (no hand-pose detector)")
    return nextday.next_day(pooling.rule, y, p, data.n_sessions, floor, pooling.rule != nextday.RULE_SESSIONS)


def _held_out_session_probs(
    data: RunData, experts: Experts, oof: OutOfFold, pooling: Pooling, with_pose: bool
) -> np.ndarray:
    """Each held-out session scored with the pooling a run without it would choose: fitted
    on the other sessions' out-of-fold rows, or, where one session is left, by the
    one-session rule on its own validation fold. Never on the rows it scores."""
    complete, hand = pooling.complete, data.hand
    p = np.full((data.n, N), np.nan)
    for held in data.folds:
        rest = np.setdiff1d(np.arange(data.n), held)
        rows = held[complete[held]]
        if not len(rows):
            continue
        if len(np.unique(data.session_of[rest])) >= 2:
            fit = rest[complete[rest] & hand[rest] & ~oof.novel[rest]] if with_pose else rest[complete[rest]]
            w = (
                nextday.fit_weights({n: oof.z[n][fit] for n in experts.names}, data.y[fit])
                if len(fit)
                else pooling.weights
            )
        else:
            w = _one_session_weights(data, experts, rest)
        p[rows] = experts.pooled(oof.rows(rows), hand[rows], oof.novel[rows], w)
    return p


def _one_session_weights(data: RunData, experts: Experts, train_rows: np.ndarray) -> dict[str, float]:
    """The pooling a run on ``train_rows`` (one session) would choose: on its own
    validation fold, with the one-session grid."""
    y = data.y
    inner = train_rows[validation_fold(y[train_rows], data.groups[train_rows], experts.cfg)]
    score = inner[data.hand[inner]] if "pose" in experts.heads else inner
    if len(score):
        z, _ = experts.quick_logits(np.setdiff1d(train_rows, inner), score)
        if set(z) == experts.names:
            grid = nextday.ONE_SESSION_GRID if experts.fingers is not None else None
            return {**{n: 0.0 for n in experts.names}, **nextday.fit_weights(z, y[score], grid)}
    counts = np.bincount(y[train_rows], minlength=N)
    return small_data_weights(experts.names, int(min((n for n in counts if n), default=0)))

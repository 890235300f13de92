"""The run registry: every training run, the active one, and comparing two.

A run keeps its backbone, feature set, config, seed, data snapshot (a hash of sample ids,
labels and splits), metrics, confusion matrix, per-sample predictions (test split, and
out-of-fold for training samples) and a checkpoint under ``data/models/``. Runs are made
by ``pipeline.train``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from fingertui.data.store import Store
from fingertui.data.store.run_table import ACTIVE_KEY
from fingertui.errors import UserError
from fingertui.labels import CLASSES
from fingertui.learn.metrics import accuracy_caveat, accuracy_interval, mcnemar

MIN_PER_CLASS = 2


@dataclass
class RunRecord:
    id: int
    started: str
    finished: str
    backbone: str
    seed: int
    config: dict
    data_hash: str
    n_train: int
    n_test: int
    metrics: dict
    checkpoint: str

    @classmethod
    def from_row(cls, row: dict) -> RunRecord:
        """The run a row records; a UserError saying so when the row is damaged."""
        try:
            config, metrics = json.loads(row["config"]), json.loads(row["metrics"])
            if not isinstance(config, dict) or not isinstance(metrics, dict):
                raise TypeError("not a JSON object")
            rec = cls(
                id=row["id"],
                started=row["started"],
                finished=row["finished"],
                backbone=row["backbone"],
                seed=row["seed"],
                config=config,
                data_hash=row["data_hash"],
                n_train=row["n_train"],
                n_test=row["n_test"],
                metrics=metrics,
                checkpoint=row["checkpoint"],
            )
            if not isinstance(rec.metrics.get("test"), dict):
                raise KeyError("test")
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            raise UserError(
                f"run {row['id']}'s record is damaged ({type(e).__name__}: {str(e)[:80]}); "
                "pick another with `fingertui runs activate ID` or train again"
            ) from None
        return rec

    @property
    def held_back(self) -> bool:
        """Worse than the starter on the images it did not train on (nextday.py): recorded,
        but not made active unless the user says so (``runs activate``)."""
        nd = self.metrics.get("next_day")
        return bool(isinstance(nd, dict) and isinstance(nd.get("starter"), dict) and nd["starter"].get("held_back"))

    @property
    def features(self) -> str:
        return self.metrics.get("features", "image")

    def summary(self) -> dict:
        test = self.metrics["test"]
        weakest = test.get("weakest_class")
        return {
            "id": self.id,
            "finished": self.finished,
            "backbone": self.backbone,
            "features": self.features,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "accuracy": test["accuracy"],
            "accuracy_ci95": list(accuracy_interval(test)),
            "accuracy_meaningful": accuracy_caveat(test) is None,
            "balanced_accuracy": test["balanced_accuracy"],
            "weakest_class": weakest,
            "weakest_recall": test["per_class"][weakest]["recall"] if weakest is not None else None,
            "ece": test["ece"],
            "next_day": self.metrics.get("next_day"),
            "held_back": self.held_back,
            "duration_s": self.metrics["duration_s"],
        }


def list_runs(store: Store, damaged: list[str] | None = None) -> list[RunRecord]:
    """Every run whose record can be read; a damaged one is left out (and, given a list,
    described in ``damaged``)."""
    out = []
    for r in store.runs.rows():
        try:
            out.append(RunRecord.from_row(r))
        except UserError as e:
            if damaged is not None:
                damaged.append(str(e))
    return out


def get_run(store: Store, run_id: int | str) -> RunRecord:
    from fingertui.data.store.util import parse_id

    rid = parse_id(run_id, "run", "fingertui runs")
    row = store.runs.row(rid)
    if row is None:
        raise UserError(f"no run {rid}; `fingertui runs` lists them")
    return RunRecord.from_row(row)


def active_run(store: Store) -> RunRecord | None:
    """The run the user picked, else the newest that is not worse than the starter; None
    before any training (or while every run is: the starter counts then)."""
    chosen = store.get_setting(ACTIVE_KEY)
    runs = list_runs(store)
    for r in runs:
        if chosen is not None and str(r.id) == chosen:
            return r
    if chosen is not None and chosen.isdigit() and store.runs.row(int(chosen)) is not None:
        get_run(store, chosen)  # there but damaged: say so rather than use another model
    usable = [r for r in runs if not r.held_back]
    return usable[-1] if usable else None


def newest_run(store: Store) -> RunRecord | None:
    """The newest run, held back or not: the freshest evidence for the review queue."""
    runs = list_runs(store)
    return runs[-1] if runs else None


def set_active(store: Store, run_id: int | str) -> RunRecord:
    run = get_run(store, run_id)
    store.set_setting(ACTIVE_KEY, str(run.id))
    return run


def resolve_run(store: Store, run_id: int | str | None) -> RunRecord:
    if run_id is not None:
        return get_run(store, run_id)
    run = active_run(store)
    if run is None and newest_run(store) is not None:
        raise UserError(
            "every run so far is worse than the starter where it did not train, so none is in use; "
            "`fingertui runs activate ID` uses one anyway, or pass --run ID"
        )
    if run is None:
        raise UserError("no trained model yet; label some images and run `fingertui train`")
    return run


def run_predictions(store: Store, run_id: int, role: str | None = None) -> list[dict]:
    """Per-sample rows of a run: sample_id, label, role, pred, confidence, probs."""
    return store.runs.predictions(run_id, role)


def compare(store: Store, a: int | str, b: int | str) -> dict:
    """Two runs on the test samples both saw: accuracy delta, McNemar, recall deltas, flips."""
    ra, rb = get_run(store, a), get_run(store, b)
    pa = {r["sample_id"]: r for r in run_predictions(store, ra.id, "test")}
    pb = {r["sample_id"]: r for r in run_predictions(store, rb.id, "test")}
    common = sorted(set(pa) & set(pb))
    # The label may have been corrected between runs: judge both against the newer label.
    truth = np.array([pb[i]["label"] for i in common], dtype=int)
    pred_a = np.array([pa[i]["pred"] for i in common], dtype=int)
    pred_b = np.array([pb[i]["pred"] for i in common], dtype=int)
    right_a, right_b = pred_a == truth, pred_b == truth
    recall_delta = {}
    for c in CLASSES:
        m = truth == c
        if m.any():
            recall_delta[str(c)] = {
                "a": float(right_a[m].mean()),
                "b": float(right_b[m].mean()),
                "delta": float(right_b[m].mean() - right_a[m].mean()),
            }
    return {
        "a": ra.id,
        "b": rb.id,
        "n_common": len(common),
        "accuracy_a": float(right_a.mean()) if common else None,
        "accuracy_b": float(right_b.mean()) if common else None,
        "accuracy_delta": float(right_b.mean() - right_a.mean()) if common else None,
        "mcnemar": mcnemar(right_a, right_b),
        "recall": recall_delta,
        "changed": [
            {"sample_id": int(i), "label": int(t), "pred_a": int(x), "pred_b": int(y)}
            for i, t, x, y, ra_, rb_ in zip(common, truth, pred_a, pred_b, right_a, right_b, strict=True)
            if ra_ != rb_
        ],
        "right_to_wrong": [int(i) for i, x, y in zip(common, right_a, right_b, strict=True) if x and not y],
        "wrong_to_right": [int(i) for i, x, y in zip(common, right_a, right_b, strict=True) if not x and y],
    }


# Below this many changed images no difference can reach p < 0.05 (two-sided, exact):
# 5 changed one way and none the other gives p = 2 · 0.5**5 = 0.0625.
FEWEST_TO_TELL = 6


def describe_comparison(c: dict) -> str:
    """A comparison from :func:`compare` in words: what run B fixed and broke relative to run
    A on the test images both saw, and whether a difference this size could be chance."""
    a, b, n = c["a"], c["b"], c["n_common"]
    if not n:
        return f"runs {a} and {b} share no test images: they cannot be compared"
    fixed, broke = c["mcnemar"]["a_wrong_b_right"], c["mcnemar"]["a_right_b_wrong"]
    p = c["mcnemar"]["p_value"]
    if not fixed and not broke:
        return f"run {b} gets the same {n} shared test images right and wrong as run {a}: no difference"

    def images(k: int) -> str:
        return f"{k} image{'s' if k != 1 else ''}"

    what = f"run {b} fixed {images(fixed)} and broke {broke} of the {n} test images both saw"
    if fixed + broke < FEWEST_TO_TELL:
        verdict = f"too few changed to tell better from worse (p = {p:.2g})"
    elif p < 0.05:
        better = "better" if fixed > broke else "worse"
        verdict = f"a difference this size is unlikely to be chance (p = {p:.2g}): run {b} is {better}"
    else:
        verdict = f"a difference this size could well be chance (p = {p:.2g})"
    return f"{what}; {verdict}"


def short_backbone(run: RunRecord) -> str:
    """The image network's name ("efficientnet-lite0"), without its weights hash or the
    pose stream's recipe; "—" for a run that looked at the hand's pose alone."""
    image = run.metrics.get("backbone")
    if image:
        return str(image).split("@", 1)[0]
    if (run.metrics.get("features") or run.features) == "pose":
        return "—"
    return run.backbone.split("@", 1)[0].split(":", 1)[0].split("|", 1)[0].split("+", 1)[0]

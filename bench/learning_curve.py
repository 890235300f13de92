"""How many labelled photos of one's own room does fingertui need? The product's own
training, `pipeline.train`, on hagrid-rooms frames.

Protocol: stratified 5-fold cross-validation (seeded, the folds of bench/rooms.py); from
the four training folds draw n = 2, 5, 10, 20, 30 photos per class (3 draws, nested: a
draw's first 5 photos of a class are among its first 10; a class with fewer gives all it
has, and classes 1 and 4 have 16), plus every training photo once ("all", 16–36 per
class: the ordinary cross-validation figure). n = 1 is refused by `fingertui train` (2
per class at least), so what a user sees with 0 or 1 label per class is the shipped
starter: row "0", the finger head with the starter's parameters on the hands found.
Each trial is one `pipeline.train` run (efficientnet-lite0, features "both", no review
flags) with the drawn photos as its training split and the held-out fold as its test
split, twice:

- ``fused``: the fused head alone, `train(with_fingers=False)`: the pose expert (where a
  hand is found) pooled with the image expert, which answers alone where none is found;
- ``default``: what `fingertui train` does: pose + finger head (the shipped starter as its
  prior) + image, pooled with `small_data_weights` below 60 training photos, with weights
  fitted on the validation fold above.

From the default run's per-expert test probabilities (stored with the run) two more
columns come free: ``fingers`` (the finger head alone) and ``pose`` (the pose head alone);
for those a photo with no hand found counts as wrong.

Hands are found as the product finds them (`streams.PoseStream.search`: the whole frame,
then tiles) and cached in the workspace. The photos are imported once into WORK/ws and
trained on once to fill the embedding and landmark caches; every trial passes its own
train/test assignment through ``samples=`` (the store's splits are never changed).

Writes bench/results/learning_curve.json. Run (160 trainings, about 3 min on 2 cores with warm caches):
    PYTHONPATH=. .venv/bin/python bench/learning_curve.py [--work DIR] [--folds 0 1 2 3 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from fingertui.data.importer import import_paths
from fingertui.data.store import Sample, Store
from fingertui.data.workspace import Workspace
from fingertui.runs.records import run_predictions
from fingertui.train.pipeline import train

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FINGERTUI_SHARED") or ROOT.parent / "shared") / "datasets" / "hagrid-rooms" / "frames"
OUT = ROOT / "bench" / "results" / "learning_curve.json"
# n = 1 is not here: `fingertui train` refuses fewer than 2 labels per class
# (pipeline.MIN_PER_CLASS), so with 1 a user still sees the starter: row "0".
SHOTS = (2, 5, 10, 20, 30)  # 30: classes with fewer in the training folds give all they have
REPEATS = 3
BACKBONE = "efficientnet-lite0"  # what fingertui uses offline (bench/rooms.py too)
BAR = 0.95
LEVELS = (0.90, 0.93, 0.95)  # the labels needed to reach each level, reported beside the bar
COLUMNS = ("fused", "default", "fingers", "pose")


def base_store(work: Path) -> Store:
    """WORK/ws holding the frames, trained on once so the caches are full."""
    store = Store(Workspace(work / "ws"))
    if store.count() == 0:
        print(f"importing {DATA}", flush=True)
        import_paths(store, [DATA])
    if not store.runs.rows():
        print("first training (fills the embedding and landmark caches)", flush=True)
        train(store, backbone=BACKBONE, flags=False)
    return store


def ordered(store: Store) -> list[Sample]:
    """The labelled frames in bench/rooms.py's order (class, then file name), so the
    folds are the same photos as its cross-validation's."""
    return sorted(store.labelled(), key=lambda s: (s.label, Path(s.origin or s.path).name))


def trial(store: Store, train_s: list[Sample], test_s: list[Sample]) -> dict[str, float]:
    """One draw: the fused head alone and the default, scored on the held-out fold."""
    samples = [replace(s, split="train") for s in train_s] + [replace(s, split="test") for s in test_s]
    fused = train(store, samples=samples, backbone=BACKBONE, flags=False, with_fingers=False).run
    default = train(store, samples=samples, backbone=BACKBONE, flags=False).run
    rows = run_predictions(store, default.id, "test")
    y = np.array([r["label"] for r in rows])

    def alone(name: str) -> float:  # no hand found: the expert has no opinion = wrong
        pred = np.array([np.argmax(r["experts"][name]) if name in r["experts"] else -1 for r in rows])
        return float((pred == y).mean())

    return {
        "fused": fused.metrics["test"]["accuracy"],
        "default": default.metrics["test"]["accuracy"],
        "fingers": alone("fingers"),
        "pose": alone("pose"),
        "default_pooling": default.metrics["pooling"],
        "fused_pooling": fused.metrics["pooling"],
    }


def starter_accuracy(store: Store, test_s: list[Sample]) -> float:
    """The shipped starter on the held-out fold, as `fingertui predict` answers before any
    run (the finger head alone on the hand found; none found = wrong)."""
    from fingertui.learn import streams
    from fingertui.learn.fingers import finger_matrix, load_starter

    pose = streams.PoseStream.create(None)
    F, mask = finger_matrix(streams.stored_hands(store, pose, test_s))
    y = np.array([s.label for s in test_s])
    return float(((load_starter().log_probs(F).argmax(1) == y) & mask).mean())


def first_reaching(table: dict[str, dict], column: str, level: float = BAR) -> str | None:
    """The smallest n whose mean accuracy reaches ``level``."""
    for n, row in table.items():
        if column in row and row[column]["mean"] >= level:
            return n
    return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "hL-learning-curve"))
    ap.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"no photos at {DATA}: set FINGERTUI_SHARED to the folder holding datasets/")
        return 2
    t0 = time.perf_counter()
    store = base_store(Path(args.work))
    samples = ordered(store)
    y = np.array([s.label for s in samples])
    first = json.loads(store.runs.rows()[0]["metrics"])
    trials: list[dict] = []
    for f, (tr, te) in enumerate(StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(y)), y)):
        if f not in args.folds:
            continue
        test_s = [samples[i] for i in te]
        zero = starter_accuracy(store, test_s)
        trials.append({"fold": f, "draw": 0, "n": "0", "default": zero, "fingers": zero})
        for r in range(REPEATS):
            rng = np.random.default_rng(100 * f + r)
            order = {c: rng.permutation(tr[y[tr] == c]) for c in range(6)}
            for n in SHOTS:
                pick = [samples[i] for c in range(6) for i in order[c][:n]]
                trials.append({"fold": f, "draw": r, "n": str(n), "n_train": len(pick), **trial(store, pick, test_s)})
                print(json.dumps(trials[-1]), flush=True)
        trials.append(
            {"fold": f, "draw": 0, "n": "all", "n_train": len(tr), **trial(store, [samples[i] for i in tr], test_s)}
        )
        print(json.dumps(trials[-1]), flush=True)
    table = {}
    for n in ["0", *map(str, SHOTS), "all"]:
        rs = [t for t in trials if t["n"] == n]
        table[n] = {
            c: {"mean": round(float(np.mean([t[c] for t in rs])), 4), "sd": round(float(np.std([t[c] for t in rs])), 4)}
            for c in COLUMNS
            if c in rs[0]
        }
        table[n]["trials"] = len(rs)
        if "fused" in rs[0]:  # paired: the same draw, default minus fused
            diff = [t["default"] - t["fused"] for t in rs]
            table[n]["default_minus_fused"] = {
                "mean": round(float(np.mean(diff)), 4),
                "better": sum(x > 0 for x in diff),
                "worse": sum(x < 0 for x in diff),
            }
    reach = {c: first_reaching(table, c) for c in COLUMNS}
    # The bar: the default needs at most half the labels the fused head alone needs to reach 95 %.
    d, fz = reach["default"], reach["fused"]
    if d is None or d == "all":
        verdict = "not met: the default does not reach 95 % within 30 per class"
    elif fz is None or fz == "all":
        verdict = f"default {d} per class; the fused head alone does not reach 95 % within 30"
        verdict = ("met: " if 2 * int(d) <= 30 else "unsettled: ") + verdict
    else:
        verdict = ("met" if 2 * int(d) <= int(fz) else "not met") + f": default {d} per class, fused head alone {fz}"
    result = {
        "protocol": "hagrid-rooms frames, stratified 5-fold CV (seed 0), n labelled photos per class drawn from the "
        f"training folds ({REPEATS} nested draws; 'all' = every training photo, one run), pipeline.train with "
        f"{BACKBONE}; accuracy on the held-out fold, mean and sd over folds x draws",
        "columns": {
            "fused": "pose + image experts pooled, no finger head (train(with_fingers=False)); no hand: image alone",
            "default": "fingertui train's default: pose + finger head + image; no hand: image alone",
            "fingers": "the default run's finger head alone; no hand found = wrong",
            "pose": "the default run's pose head alone; no hand found = wrong",
        },
        "hand_detector": first.get("detector"),
        "hands_found": f"{first['hands_found']['train'] + first['hands_found']['test']} of {len(samples)} frames",
        "table": table,
        "reaches_95": {c: reach[c] or "not within 30" for c in COLUMNS},
        "reaches": {f"{lv:.0%}": {c: first_reaching(table, c, lv) or "never" for c in COLUMNS} for lv in LEVELS},
        "bar": verdict,
        "folds": args.folds,
        "seconds": round(time.perf_counter() - t0, 1),
        "trials": trials,
    }
    store.close()
    for n, row in table.items():
        cells = [f"{c} {row[c]['mean']:.1%} +- {row[c]['sd']:.1%}" for c in COLUMNS if c in row]
        print(f"n={n:>3} ({row['trials']:>2} trials): " + ", ".join(cells))
    print("reaches:", json.dumps(result["reaches"]), "| bar:", verdict)
    OUT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

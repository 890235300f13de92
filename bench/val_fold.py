"""How big the validation fold should be: test accuracy of `fingertui train` (image
features, efficientnet-lite0) on sign-digits with the group-aware validation fold being
one in ten of the training images (`TrainConfig.val_folds = 10`, the default) versus one
in five (20 %), same data and seeds. The fold drives early stopping, the temperature
and the unsure threshold; what it takes is not trained on.

Where the training images come from two or more sessions (sign-digits' train split: 6,
of 80 to 264 images), the fold is whole sessions and the number of folds is capped at
the number of sessions: "10 %" and "20 %" are then one in 6 and one in 5 sessions, and
can be the very same images (the printed fold sizes show it).

Writes bench/results/val_fold-per-class<N>-seeds<S>.json (--quick: val_fold-per-class60-seeds1.json).

Run: PYTHONPATH=. .venv/bin/python bench/val_fold.py [--per-class 150] [--seeds 3] [--quick]
     --quick: 60 per class, 1 seed
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import OUT, run_details  # bench/_results.py: where results go, what a run says of itself

from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace
from fingertui.learn.heads import TrainConfig
from fingertui.train.pipeline import train_run

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets" / "sign-digits"


def main() -> int:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--per-class", type=int, default=150, help="training photos per class (default 150)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds, each trained with both folds (default 3)")
    ap.add_argument("--quick", action="store_true", help="60 per class, 1 seed")
    args = ap.parse_args()
    started, load_start = time.time(), os.getloadavg()
    if args.quick:
        args.per_class, args.seeds = 60, 1
    if not SHARED.is_dir():
        print(f"no dataset at {SHARED}")
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Workspace(Path(tmp)))
        import_paths(store, [SHARED])
        rng = np.random.default_rng(0)
        labelled = store.labelled()
        subset = [s for s in labelled if s.split == "test"]
        for c in range(6):
            pool = [s for s in labelled if s.split == "train" and s.label == c]
            subset += [pool[i] for i in rng.choice(len(pool), min(args.per_class, len(pool)), replace=False)]
        for seed in range(args.seeds):
            for folds in (10, 5):
                run = train_run(
                    store, samples=subset, backbone="efficientnet-lite0", cfg=TrainConfig(val_folds=folds, seed=seed)
                )
                m = run.metrics
                rows.append(
                    {
                        "val_fraction": 1 / folds,
                        "seed": seed,
                        "n_val": m["val"]["n"],
                        "test_accuracy": m["test"]["accuracy"],
                        "test_ece": m["test"]["ece"],
                    }
                )
                print(
                    f"seed {seed}, validation fold {100 / folds:.0f}% ({m['val']['n']} images): "
                    f"test accuracy {100 * m['test']['accuracy']:.1f}%, ECE {m['test']['ece']:.3f}",
                    flush=True,
                )
        store.close()
    summary = {
        f"{100 / k:.0f}%": float(np.mean([r["test_accuracy"] for r in rows if r["val_fraction"] == 1 / k]))
        for k in (10, 5)
    }
    print("mean test accuracy: " + ", ".join(f"validation {k}: {100 * v:.1f}%" for k, v in summary.items()))
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"val_fold-per-class{args.per_class}-seeds{args.seeds}.json"
    report = {
        **run_details(__file__, started, load_start),
        "per_class": args.per_class,
        "seeds": args.seeds,
        "mean": summary,
        "runs": rows,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

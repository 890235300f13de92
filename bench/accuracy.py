"""Accuracy on the shared sign-digits photos with the offline backbone.

150 labelled images per class are drawn from the workspace's train split (seeded); the
model is evaluated on the whole frozen test split. Several seeds show the spread.

Run: .venv/bin/python bench/accuracy.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from _results import record  # bench/_results.py: what this prints goes to bench/results/

from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace
from fingertui.learn.heads import TrainConfig
from fingertui.train.pipeline import train_run

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sign-digits"


def main() -> int:
    record(__file__)
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--per-class", type=int, default=150)
    ap.add_argument("--backbone", default="efficientnet-lite0")
    ap.add_argument("--head", default="linear")
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"no dataset at {SHARED}")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Workspace(Path(tmp)))
        import_paths(store, [SHARED])
        labelled = store.labelled()
        test = [s for s in labelled if s.split == "test"]
        rows = []
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            train = []
            for c in range(6):
                pool = [s for s in labelled if s.split == "train" and s.label == c]
                train += [pool[i] for i in sorted(rng.choice(len(pool), args.per_class, replace=False))]
            run = train_run(
                store, samples=train + test, backbone=args.backbone, cfg=TrainConfig(seed=seed, head=args.head)
            )
            m = run.metrics["test"]
            rows.append(
                (
                    seed,
                    m["accuracy"],
                    m["per_class"]["2"]["recall"],
                    m["balanced_accuracy"],
                    run.metrics["val"]["ece"],
                    m["ece"],
                )
            )
            lo, hi = m["accuracy_ci95"]
            print(
                f"seed {seed}: {run.n_train} train / {run.n_test} test, backbone {run.backbone}: "
                f"accuracy {100 * m['accuracy']:.1f}% (95% CI {100 * lo:.1f}–{100 * hi:.1f}), "
                f"recall of 2 {100 * m['per_class']['2']['recall']:.1f}%, balanced {100 * m['balanced_accuracy']:.1f}%, "
                f"ECE validation {rows[-1][4]:.3f}, test {m['ece']:.3f} (image temperature "
                f"{run.metrics['image_temperature']:.2f})",
                flush=True,
            )
        a = np.array(rows)
        print(
            f"mean over {len(rows)} seeds: accuracy {100 * a[:, 1].mean():.1f}%, recall of 2 {100 * a[:, 2].mean():.1f}%"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

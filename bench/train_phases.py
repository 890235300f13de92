"""Seconds of each training phase on a user's first run (a few sign-digits photos per
class, cold caches, hand pose on, efficientnet-lite0) and on a retrain with nothing new:
the figures behind ``fingertui.train.eta.FIRST_RUN_S`` (the time left shown before a
workspace has a run of its own to go by).

Run: .venv/bin/python bench/train_phases.py [--per-class 6]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _results import record  # bench/_results.py: what this prints goes to bench/results/

from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace
from fingertui.train.pipeline import train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sign-digits"


def main() -> int:
    if not SHARED.is_dir():
        print(f"no dataset at {SHARED}")
        return 2
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=6)
    ap.add_argument("--backbone", default="efficientnet-lite0")
    args = ap.parse_args()
    record(__file__)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        for c in range(6):
            (src / str(c)).mkdir(parents=True)
            for p in sorted((SHARED / str(c)).iterdir())[: args.per_class]:
                os.symlink(p, src / str(c) / p.name)
        store = Store(Workspace(Path(tmp) / "ws"))
        import_paths(store, [src])
        print(f"cpus {os.cpu_count()}, load average before {os.getloadavg()[0]:.1f}")
        for name in ("first run", "retrain, nothing new"):
            t0 = time.perf_counter()
            run = train(store, backbone=args.backbone, warn=print).run
            phases = run.metrics["phases"]
            print(f"{name}: {time.perf_counter() - t0:.1f} s for {run.n_train + run.n_test} images")
            print(json.dumps(phases))
            per_image = {
                p: round(s / phases["items"][p], 3) for p, s in phases["seconds"].items() if phases["items"].get(p)
            }
            print(f"  per image: {json.dumps(per_image)}")
        print(f"load average after {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

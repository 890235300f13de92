"""Time to recompute every review flag after a run on 5,000 samples.

5,000 small generated images (--samples; 4,500 labelled, 500 unlabelled: --unlabelled)
are imported and trained with the tiny developer backbone (the flags do not depend on
the backbone's quality, and the embeddings are cached after the run, as in real use);
then `flags.recompute` and the review queue are timed.

Writes bench/results/flags_speed-samples<N>-unlabelled<M>.json.

Run: PYTHONPATH=. .venv/bin/python bench/flags_speed.py [--samples 5000] [--unlabelled 500]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

os.environ["FINGERTUI_DEV_RANDOM_BACKBONE"] = "1"

from _results import record  # bench/_results.py: what this prints goes to bench/results/

from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace
from fingertui.review import flags, queue
from fingertui.train.pipeline import train_run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=5000, help="generated images in the workspace (default 5000)")
    ap.add_argument("--unlabelled", type=int, default=500, help="how many of them have no label (default 500)")
    args = ap.parse_args()
    if not 0 <= args.unlabelled < args.samples:
        ap.error("--unlabelled must be at least 0 and less than --samples")
    record(__file__, f"samples{args.samples}-unlabelled{args.unlabelled}")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        for i in range(args.samples):
            label = i % 6
            arr = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            arr[:, : label + 1] = 255  # something learnable
            folder = src / ("unlabeled" if i >= args.samples - args.unlabelled else str(label))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).resize((32, 32)).save(folder / f"{i}.png")
        store = Store(Workspace(Path(tmp) / "ws"))
        import_paths(store, [src])
        run = train_run(store, backbone="dev-random")
        flags.recompute(store, run)  # first pass: also embeds the unlabelled samples once
        store.flags.clear()
        t0 = time.perf_counter()
        summary = flags.recompute(store, run)
        dt = time.perf_counter() - t0
        t1 = time.perf_counter()
        items = queue.items(store, limit=20)
        dq = time.perf_counter() - t1
        print(
            f"{store.count()} samples, run {run.id}: recompute all flags {dt:.2f} s ({summary['added']} flags); "
            f"review queue of 20 (margin + diversity) {dq:.2f} s, {len(items)} items"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

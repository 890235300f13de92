"""Label-error detection: flip 5 % of the shared photos' labels, train, check the flags.

Labels of 5 % of the 1,237 sign-digits photos are changed to a random other class (fixed
seed), `fingertui train` runs as usual, and the `label-error` flags are ranked by score.
Reports precision and recall among the top 2 × (flipped count), and how often the
suggested label is the true one for the flipped images found.

Run: .venv/bin/python bench/label_errors.py [--home WORKSPACE-COPY]
(--home reuses a workspace's embedding cache; its labels are changed, so pass a copy.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from _results import record  # bench/_results.py: what this prints goes to bench/results/

from fingertui import active
from fingertui.importer import import_paths
from fingertui.pipeline import train_run
from fingertui.store import Store
from fingertui.workspace import Workspace

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sign-digits"


def main() -> int:
    record(__file__)
    ap = argparse.ArgumentParser()
    ap.add_argument("--home")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tmp = None if args.home else tempfile.TemporaryDirectory()
    store = Store(Workspace(Path(args.home or tmp.name)))
    if store.count() == 0:
        import_paths(store, [SHARED])
    samples = store.labelled()
    rng = np.random.default_rng(args.seed)
    n_flip = round(0.05 * len(samples))
    flipped = {}
    for i in rng.choice(len(samples), n_flip, replace=False):
        s = samples[i]
        new = int(rng.choice([c for c in range(6) if c != s.label]))
        flipped[s.id] = s.label
        store.set_label(s.id, new, actor="import", reason="bench: flipped")
    run = train_run(store, backbone="efficientnet-lite0")
    errors = sorted((f for f in active.compute_flags(store, run) if f.reason == "label-error"), key=lambda f: -f.score)
    top = errors[: 2 * n_flip]
    found = [f for f in top if f.sample_id in flipped]
    right = [f for f in found if f.suggested == flipped[f.sample_id]]
    print(f"{len(samples)} photos, {n_flip} labels flipped (seed {args.seed}); run {run.id}, backbone {run.backbone}")
    print(
        f"label-error flags: {len(errors)}; top {len(top)}: precision {len(found) / max(1, len(top)):.1%}, "
        f"recall {len(found) / n_flip:.1%} ({len(found)} of {n_flip})"
    )
    print(
        f"suggested label is the true one for {len(right)} of {len(found)} found ({len(right) / max(1, len(found)):.1%})"
    )
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The image head's two trainers on real features: the mini-batch AdamW loop with early
stopping (``mlp.fit_head``, what `fingertui train` used before) against the L2 path fitted
by L-BFGS (``fit_linear``, what it uses now: scikit-learn's until 2026-11-30, SciPy's on the
same objective since), on the same training vectors
(sign-digits, its frozen split, efficientnet-lite0, the views `fingertui train` computes),
alternating, with the load average beside each figure. Both pick their stopping point or
strength on the same group-aware validation fold.

Run: .venv/bin/python bench/head_fit.py [--rounds 3] [--home WORKSPACE]
(``--home`` reuses a workspace that already holds sign-digits and its vectors.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _results import record  # bench/_results.py: what this prints goes to bench/results/

from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace
from fingertui.learn import backbones, streams
from fingertui.learn.features import sample_features
from fingertui.learn.heads import TrainConfig, fit_linear, logits, training_views, validation_fold
from fingertui.learn.mlp import fit_head

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sign-digits"


def main() -> int:
    record(__file__)
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--home")
    args = ap.parse_args()
    if not DATA.is_dir() and not args.home:
        print(f"no photos at {DATA}")
        return 2
    torch.set_num_threads(1)  # as `fingertui train` runs its heads
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Workspace(Path(args.home or tmp)))
        if not args.home:
            import_paths(store, [DATA])
        s = store.labelled()
        tr, te = [x for x in s if x.split == "train"], [x for x in s if x.split == "test"]
        cfg = TrainConfig()
        y = np.array([x.label for x in tr])
        yte = np.array([x.label for x in te])
        views = training_views(y, [x.sha256 for x in tr], cfg)
        image = streams.ImageStream(backbones.load("efficientnet-lite0"))
        sf = sample_features(store, tr + te, image, None, views=views + [0] * len(te))
        n = len(tr)
        groups = np.array([x.group_key or f"id:{x.id}" for x in tr])
        val = validation_fold(y, groups, cfg)
        fit = np.setdiff1d(np.arange(n), val)
        width = sf.image.shape[1]
        Xf = sf.image[:n][fit].reshape(-1, sf.image.shape[-1])
        yf = np.repeat(y[fit], width)
        print(f"{len(Xf)} training vectors × {Xf.shape[1]} (views per image up to {width - 1}), {len(val)} validation")
        times: dict[str, list[float]] = {"AdamW": [], "L-BFGS path": []}
        for r in range(args.rounds):
            for name, trainer in (("AdamW", fit_head), ("L-BFGS path", fit_linear)):
                t0 = time.perf_counter()
                res = trainer(Xf, yf, cfg, val=(sf.image[:n][val, 0], y[val]))
                secs = time.perf_counter() - t0
                times[name].append(secs)
                acc = (logits(res.head, sf.image[n:, 0]).argmax(1) == yte).mean()
                how = f"{res.epochs} epochs" if name == "AdamW" else f"L2 {res.l2:g}, {res.epochs} iterations"
                print(
                    f"round {r + 1}: {name}: {secs:.2f} s, test {100 * acc:.1f} % ({how}; "
                    f"validation loss {res.val_loss:.3f}; load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
        for name, vals in times.items():
            print(f"median {name}: {statistics.median(vals):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

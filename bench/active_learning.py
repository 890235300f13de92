"""Simulated pool-based active learning on the shared sign-digits photos.

The test split is fixed. Each simulation starts from 3 labelled images per class drawn
from the train split; each round a strategy picks 10 images from the unlabelled rest, an
oracle reveals their labels, and the head is retrained exactly as `fingertui train` does
(all augmented views, early stopping, temperature) on the cached embeddings. Every
strategy runs to 300 labels (table and plot), then on until it first reaches 98 % (or
the pool runs out), so the labels each needs are measured, not guessed. 5 seeds each.

Writes bench/out/active_learning.png and .csv, prints a table.

Run: .venv/bin/python bench/active_learning.py [--home WORKSPACE] [--seeds 5]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fingertui import active, backbones
from fingertui.features import Embedder
from fingertui.importer import import_paths
from fingertui.store import Store
from fingertui.train import TrainConfig, train_calibrated
from fingertui.workspace import Workspace

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sign-digits"
OUT = Path(__file__).resolve().parent / "out"
STRATEGIES = {
    "random": dict(strategy="random", diversity=False, boost=False),
    "least-confidence": dict(strategy="least-confidence", diversity=False, boost=False),
    "entropy": dict(strategy="entropy", diversity=False, boost=False),
    "margin": dict(strategy="margin", diversity=False, boost=False),
    "default (margin+diversity+weak-class)": dict(strategy="margin", diversity=True, boost=True),
}
START_PER_CLASS, BATCH, BUDGET = 3, 10, 300


def simulate(V, y, g, T, yt, spec, seed, budget, until=None):  # noqa: ANN001
    rng = np.random.default_rng(seed)
    labelled = [int(i) for c in range(6) for i in rng.choice(np.nonzero(y == c)[0], START_PER_CLASS, replace=False)]
    curve = []
    cfg = TrainConfig(seed=seed)
    while True:
        L = np.array(labelled)
        model = train_calibrated(V[L], y[L], g[L], cfg)
        pt = model.probs(T)
        acc = float((pt.argmax(1) == yt).mean())
        curve.append((len(L), acc))
        if len(L) >= budget or (until is not None and acc >= until and len(L) >= BUDGET):
            break
        pool = np.setdiff1d(np.arange(len(y)), L)
        if len(pool) == 0:
            break
        recall = [((pt.argmax(1) == c) & (yt == c)).sum() / max(1, (yt == c).sum()) for c in range(6)]
        picked = active.select(
            model.probs(V[pool, 0]),
            V[pool, 0],
            min(BATCH, len(pool)),
            spec["strategy"],
            diversity=spec["diversity"],
            boost_class=int(np.argmin(recall)) if spec["boost"] else None,
            seed=seed,
        )
        labelled += [int(pool[i]) for i in picked]
    return curve


def first_reaching(curve, target):  # noqa: ANN001
    return next((n for n, a in curve if a >= target), None)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", help="workspace with sign-digits imported (embeddings are cached there)")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    tmp = None
    if args.home:
        store = Store(Workspace(Path(args.home)))
    else:
        tmp = tempfile.TemporaryDirectory()
        store = Store(Workspace(Path(tmp.name)))
    if store.count() == 0:
        import_paths(store, [SHARED])
    bb = backbones.load("efficientnet-lite0")
    emb = Embedder(store, bb)
    labelled = store.labelled()
    train = [s for s in labelled if s.split == "train"]
    test = [s for s in labelled if s.split == "test"]
    V = np.stack(emb.vectors([(s.sha256, s.path) for s in train], TrainConfig().views))
    T = np.stack(emb.vectors([(s.sha256, s.path) for s in test], 0))[:, 0]
    y = np.array([s.label for s in train])
    yt = np.array([s.label for s in test])
    g = np.array([s.group_key for s in train])
    print(f"pool {len(train)} images, test {len(test)}, backbone {bb.id}", flush=True)
    results = {}
    t0 = time.perf_counter()
    for name, spec in STRATEGIES.items():
        runs = []
        for seed in range(args.seeds):
            # Past 300 labels every strategy goes on until it first reaches 98 %, so the labels
            # each one needs are measured, not guessed.
            runs.append(simulate(V, y, g, T, yt, spec, seed, len(y), until=0.98))
        results[name] = runs
        print(f"  {name}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    OUT.mkdir(exist_ok=True)
    grid = list(range(START_PER_CLASS * 6, BUDGET + 1, BATCH))
    mean = {}
    for name, runs in results.items():
        per = [[dict(c).get(n) for n in grid] for c in runs]
        mean[name] = [
            float(np.mean([p[i] for p in per if p[i] is not None])) if any(p[i] is not None for p in per) else None
            for i in range(len(grid))
        ]
    with open(OUT / "active_learning.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["labels", *results])
        for i, n in enumerate(grid):
            w.writerow([n, *[("" if mean[k][i] is None else f"{mean[k][i]:.4f}") for k in results]])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name in results:
        xs = [n for n, a in zip(grid, mean[name], strict=True) if a is not None]
        ax.plot(xs, [a for a in mean[name] if a is not None], label=name, lw=2 if name.startswith("default") else 1)
    ax.axhline(0.98, color="grey", ls=":", lw=1)
    ax.set_xlabel("labelled images")
    ax.set_ylabel(f"test accuracy (mean of {args.seeds} seeds)")
    ax.set_title("Active learning on sign-digits (efficientnet-lite0)")
    ax.set_ylim(0.5, 1.0)
    ax.legend()
    fig.savefig(OUT / "active_learning.png", dpi=100, bbox_inches="tight")
    print("\nmean test accuracy by labels:")
    print("labels " + " ".join(f"{n:>6d}" for n in grid[::3]))
    for name in results:
        print(f"{name[:18]:18s} " + " ".join("     —" if a is None else f"{100 * a:5.1f}%" for a in mean[name][::3]))
    print("\nlabels needed to first reach 95% / 98% (mean over seeds; — = not within budget):")
    need = {}
    for name, runs in results.items():
        row = []
        for target in (0.95, 0.98):
            hits = [first_reaching(c, target) for c in runs]
            row.append(float(np.mean(hits)) if all(h is not None for h in hits) else None)
        need[name] = row
        print(
            f"  {name:40s} "
            + " / ".join("—" if x is None else f"{x:.0f}" for x in row)
            + f"   per seed 98%: {[first_reaching(c, 0.98) for c in runs]}"
        )
    d, r = need["default (margin+diversity+weak-class)"][1], need["random"][1]
    if d is not None and r is not None:
        print(f"\ndefault needs {d:.0f} labels for 98%, random {r:.0f}: {100 * d / r:.0f}% of random's (bar: <= 60%)")
    print(f"wrote {OUT / 'active_learning.png'} and {OUT / 'active_learning.csv'}")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

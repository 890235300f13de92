"""Simulated pool-based active learning on the shared sign-digits photos, through the app's
own code: every round is a real `pipeline.train` run (the path `fingertui train` takes,
recorded in a scratch workspace), the unlabelled pool is scored with that run's
`Model.sample_probs` (calibrated probabilities and the head's standardised features),
and the next batch is chosen by `fingertui.review.ranking.select` — the queue's strategies,
near-duplicate folding, k-center diversity and weak-class boost — on exactly those.

The test split is fixed. Each simulation starts from 3 labelled images per class from
the train split; each round the strategy picks 10 images from the rest and an oracle
reveals their labels. A strategy runs to --budget labels, and with --until T on until it
first reaches test accuracy T (or the pool runs out).

Writes bench/results/active_learning-<arguments>.csv (one row per round of every strategy
and seed, written as each round finishes: everything the printed table and the plot are
made of), .json (labels needed to reach each target) and .png, named by the arguments
that shape the result, e.g. active_learning-random+default-seeds1-budget120-untilnone-pool60-views2
for --quick, active_learning-all-seeds5-budget300-until0.98-poolall-views2 for the defaults.

Run: PYTHONPATH=. .venv/bin/python bench/active_learning.py [--quick] [--home WS] [--seeds 5]
         [--budget 300] [--until 0.98|none] [--pool-per-class 0] [--strategies LIST] [--views 2]
     --quick: random vs the default, 1 seed, 120 labels, pool of 60 per class (minutes)
     full:    5 strategies, 5 seeds, 300 labels, then on to 98 % (hours on 2 cores)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _results import OUT, run_details  # bench/_results.py: where results go, what a run says of itself

from fingertui.data.importer import import_paths
from fingertui.data.store import Sample, Store
from fingertui.data.workspace import Workspace
from fingertui.learn.heads import TrainConfig
from fingertui.learn.model import Model
from fingertui.review import ranking
from fingertui.train.pipeline import train

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets" / "sign-digits"
BACKBONE = "efficientnet-lite0"
STRATEGIES = {
    "random": dict(strategy="random", diversity=False, boost=False),
    "least-confidence": dict(strategy="least-confidence", diversity=False, boost=False),
    "entropy": dict(strategy="entropy", diversity=False, boost=False),
    "margin": dict(strategy="margin", diversity=False, boost=False),
    "default": dict(strategy="margin", diversity=True, boost=True),  # what `fingertui review` does
}
START_PER_CLASS, BATCH = 3, 10
TARGETS = (0.90, 0.95, 0.98)


@dataclass
class Round:
    strategy: str
    seed: int
    round: int
    labels: int
    accuracy: float
    balanced_accuracy: float
    run: int
    seconds: float


def simulate(
    store: Store,
    pool: list[Sample],
    test: list[Sample],
    name: str,
    seed: int,
    budget: int,
    until: float | None,
    views: int,
    log: csv.writer,
) -> list[Round]:
    spec = STRATEGIES[name]
    rng = np.random.default_rng(seed)
    labelled = [pool[i] for c in range(6) for i in rng.choice(ids_of(pool, c), START_PER_CLASS, replace=False)]
    rounds: list[Round] = []
    while True:
        t0 = time.perf_counter()
        run = train(
            store,
            samples=labelled + test,
            features="image",
            backbone=BACKBONE,
            cfg=TrainConfig(seed=seed, views=views),
            flags=False,
        ).run
        m = run.metrics["test"]
        taken = {s.id for s in labelled}
        rest = [s for s in pool if s.id not in taken]
        done = len(labelled) >= budget and (until is None or m["accuracy"] >= until or len(labelled) >= len(pool))
        if not done and rest:
            probs, vectors = Model.for_run(store, run, lazy=True).sample_probs(store, rest)
            weakest = m.get("weakest_class")
            picked = ranking.select(
                probs,
                vectors,
                min(BATCH, len(rest)),
                spec["strategy"],
                diversity=spec["diversity"],
                boost_class=int(weakest) if spec["boost"] and weakest is not None else None,
                seed=seed * 1000 + len(rounds),
            )
            labelled += [rest[i] for i in picked]
        rounds.append(
            Round(
                name,
                seed,
                len(rounds),
                run.n_train,
                m["accuracy"],
                m["balanced_accuracy"],
                run.id,
                round(time.perf_counter() - t0, 2),
            )
        )
        r = rounds[-1]
        log.writerow(
            [name, seed, r.round, r.labels, f"{r.accuracy:.4f}", f"{r.balanced_accuracy:.4f}", r.run, r.seconds]
        )
        print(f"  {name} seed {seed}: {run.n_train} labels → {100 * m['accuracy']:.1f}%", flush=True)
        if done or not rest:
            return rounds


def ids_of(samples: list[Sample], label: int) -> list[int]:
    return [i for i, s in enumerate(samples) if s.label == label]


def first_reaching(rounds: list[Round], target: float) -> int | None:
    return next((r.labels for r in rounds if r.accuracy >= target), None)


def accuracy_or_none(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def result_name(args: argparse.Namespace, names: list[str]) -> str:
    """The result files' name: everything that shapes the result (not --home, a cache)."""
    strategies = "all" if names == list(STRATEGIES) else "+".join(names)
    until = "none" if args.until is None else f"{args.until:g}"
    pool = args.pool_per_class or "all"
    return (
        f"active_learning-{strategies}-seeds{args.seeds}-budget{args.budget}-until{until}-pool{pool}-views{args.views}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Simulated pool-based active learning on sign-digits, through pipeline.train and the review queue's ranking."
    )
    ap.add_argument("--home", help="workspace with sign-digits imported (embeddings are cached there)")
    ap.add_argument(
        "--quick", action="store_true", help="random vs default, 1 seed, 120 labels, 60 per class (overrides those)"
    )
    ap.add_argument("--seeds", type=int, default=5, help="simulations per strategy (default 5)")
    ap.add_argument("--budget", type=int, default=300, help="labels each simulation gets to (default 300)")
    ap.add_argument(
        "--until",
        type=accuracy_or_none,
        default=0.98,
        help="past the budget, go on until this test accuracy (default 0.98; none: stop at the budget)",
    )
    ap.add_argument(
        "--pool-per-class", type=int, default=0, help="use only this many train images per class (default 0: all)"
    )
    ap.add_argument(
        "--strategies", default=",".join(STRATEGIES), help=f"comma-separated, of {', '.join(STRATEGIES)} (default all)"
    )
    ap.add_argument("--views", type=int, default=TrainConfig().views, help="TrainConfig.views (default %(default)s)")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.budget, args.until, args.pool_per_class = 1, 120, None, 60
        args.strategies = "random,default"
    unknown = [n for n in args.strategies.split(",") if n not in STRATEGIES]
    if unknown:
        ap.error(f"unknown strategies {unknown}: choose from {', '.join(STRATEGIES)}")
    started, load_start = time.time(), os.getloadavg()
    if not SHARED.is_dir() and not args.home:
        print(f"no dataset at {SHARED}")
        return 2
    tmp = tempfile.TemporaryDirectory() if not args.home else None
    store = Store(Workspace(Path(args.home or tmp.name)))
    if store.count() == 0:
        import_paths(store, [SHARED])
    labelled = store.labelled()
    pool = [s for s in labelled if s.split == "train"]
    test = [s for s in labelled if s.split == "test"]
    if args.pool_per_class:
        rng = np.random.default_rng(12345)
        pool = [pool[i] for c in range(6) for i in rng.choice(ids_of(pool, c), args.pool_per_class, replace=False)]
    names = args.strategies.split(",")
    stem = result_name(args, names)
    print(f"pool {len(pool)} images, test {len(test)}, {BACKBONE}, strategies {names}, {args.seeds} seeds", flush=True)
    t0 = time.perf_counter()
    rounds: list[Round] = []
    OUT.mkdir(parents=True, exist_ok=True)
    # Written round by round, so an interrupted run keeps every round it finished.
    with open(OUT / f"{stem}.csv", "w", newline="", buffering=1) as f:
        log = csv.writer(f)
        log.writerow(["strategy", "seed", "round", "labels", "accuracy", "balanced_accuracy", "run", "seconds"])
        for name in names:
            for seed in range(args.seeds):
                rounds += simulate(store, pool, test, name, seed, args.budget, args.until, args.views, log)
    elapsed = time.perf_counter() - t0
    summary: dict = {
        **run_details(__file__, started, load_start),
        "config": {**vars(args), "pool": len(pool), "test": len(test), "backbone": BACKBONE, "batch": BATCH},
        "seconds": round(elapsed, 1),
        "seconds_with_import": round(time.time() - started, 1),
        "labels_to_reach": {},
        "accuracy_at": {},
    }
    print(
        f"\nlabels needed to first reach {' / '.join(f'{100 * t:.0f}%' for t in TARGETS)} (mean over seeds; — = not reached):"
    )
    for name in names:
        per_seed = [[r for r in rounds if r.strategy == name and r.seed == s] for s in range(args.seeds)]
        need = {}
        for t in TARGETS:
            hits = [first_reaching(rs, t) for rs in per_seed]
            need[str(t)] = {
                "mean": float(np.mean(hits)) if all(h is not None for h in hits) else None,
                "per_seed": hits,
            }
        summary["labels_to_reach"][name] = need
        at = {}
        for n in sorted({r.labels for r in rounds if r.strategy == name}):
            accs = [r.accuracy for r in rounds if r.strategy == name and r.labels == n]
            if len(accs) == args.seeds:
                at[n] = float(np.mean(accs))
        summary["accuracy_at"][name] = at
        row = " / ".join("—" if need[str(t)]["mean"] is None else f"{need[str(t)]['mean']:.0f}" for t in TARGETS)
        print(f"  {name:18s} {row}")
    common = set.intersection(*(set(summary["accuracy_at"][n]) for n in names)) if names else set()
    if common:
        n = max(common)
        print(
            f"\nmean test accuracy at {n} labels: "
            + ", ".join(f"{k} {100 * summary['accuracy_at'][k][n]:.1f}%" for k in names)
        )
    (OUT / f"{stem}.json").write_text(json.dumps(summary, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name in names:
        xs = sorted(summary["accuracy_at"][name])
        ax.plot(xs, [summary["accuracy_at"][name][x] for x in xs], label=name, lw=2 if name == "default" else 1)
    ax.set_xlabel("labelled images")
    ax.set_ylabel(f"test accuracy (mean of {args.seeds} seed(s))")
    ax.set_title(f"Active learning on sign-digits ({BACKBONE}, pipeline.train each round)")
    ax.legend()
    fig.savefig(OUT / f"{stem}.png", dpi=100, bbox_inches="tight")
    print(f"{len(rounds)} rounds in {elapsed:.0f} s; wrote {(OUT / stem).relative_to(ROOT)}.csv, .json and .png")
    if tmp:
        store.close()
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Head training on one thread against the libraries' default (one per core).

The heads are small (a linear layer on a few thousand vectors): split over two threads,
every step waits for the slower core, and on a loaded machine that wait dominates. This
times two head trainers — the mini-batch AdamW head (``mlp.fit_head`` without its
one-thread wrapper, torch threads; since 2026-11-29 only `--head mlp` uses it, see
bench/head_fit.py) and the quick L-BFGS head behind the out-of-fold predictions (NumPy
and SciPy: BLAS threads, ``train.BLAS_THREADS``) — on vectors shaped like sign-digits'
image features (3,300 × 1,792), alternating the thread counts, and reports the load
average with each figure.

Run: .venv/bin/python bench/head_threads.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
from _results import record  # bench/_results.py: what this prints goes to bench/results/

from fingertui.learn import heads as train
from fingertui.learn.heads import TrainConfig, fit_linear_quick
from fingertui.learn.mlp import fit_head


def timed(threads: int, X: np.ndarray, y: np.ndarray, cfg: TrainConfig) -> tuple[float, float]:
    torch.set_num_threads(threads)
    train.BLAS_THREADS = threads
    t0 = time.perf_counter()
    fit_head.__wrapped__(X, y, cfg, val=(X[:120], y[:120]))  # without one_torch_thread
    t1 = time.perf_counter()
    fit_linear_quick(X, y, cfg)
    return t1 - t0, time.perf_counter() - t1


def main() -> int:
    record(__file__)
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 3300)
    X = rng.normal(size=(3300, 1792)).astype(np.float32)
    X[np.arange(len(y)), y] += 3.0
    cfg = TrainConfig(max_epochs=40, patience=10_000)  # exactly 40 epochs
    default = os.cpu_count() or 1
    got: dict[int, list[tuple[float, float]]] = {default: [], 1: []}
    for r in range(args.rounds):
        for threads in (default, 1):
            adam, lbfgs = timed(threads, X, y, cfg)
            got[threads].append((adam, lbfgs))
            print(
                f"round {r + 1}: {threads} thread(s): 40 AdamW epochs {adam:.2f} s, "
                f"L-BFGS head {lbfgs:.2f} s (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    for threads, vals in got.items():
        print(
            f"median, {threads} thread(s): AdamW {statistics.median(v[0] for v in vals):.2f} s, "
            f"L-BFGS {statistics.median(v[1] for v in vals):.2f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Embedding speed: the network alone against the whole embedding path, in one run.

On a shared machine absolute figures swing with the load, so the rounds alternate
between the two measurements and the ratio (whole path / network alone) is the figure
that matters. Each round embeds photos it has not seen before, so the cache is cold.

- network alone: efficientnet-lite0 (cut, pooled), batch 1, on inputs decoded, augmented
  and resized beforehand, on each engine (engine.py: ONNX Runtime, what the path uses on a
  CPU, and torch's own forward pass, channels-last): in this thread, and spread over the
  path's own network threads (one single-threaded pass per core); torch also with its
  default thread count in this thread (the issue's reference). The ratio is the whole path
  against the best way to run the network alone on the path's engine;
- whole path: ``Embedder.vectors`` on the same number of photos × (1 plain + 2 augmented
  views), from file to cache, as ``fingertui train`` runs it;
- first train: ``fingertui train --features image`` as a separate process on every
  sign-digits photo, cold cache (wall-clock, torch import included), with the machine's load average.

Run: .venv/bin/python bench/embed_speed.py [--photos 120] [--rounds 3] [--no-train]
Writes bench/results/embed_speed.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace
from fingertui.learn import backbones
from fingertui.learn.embeddings import NET_WORKERS, Embedder, augmented_view, load_rgb, run_network
from fingertui.learn.heads import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets" / "sign-digits"
OUT = ROOT / "bench" / "results" / "embed_speed.json"
BACKBONE = "efficientnet-lite0"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@contextlib.contextmanager
def on_engine(bb: backbones.Backbone, engine: str) -> Iterator[None]:
    """Run ``bb`` on torch (``"t1"``) for a while, or leave it on its own engine."""
    saved = (bb.ort, bb.engine)
    if engine == "t1":
        bb.ort, bb.engine = None, "t1"
    try:
        yield
    finally:
        bb.ort, bb.engine = saved


def prepared(bb: backbones.Backbone, store: Store, samples: list, views: int) -> list:
    inputs = []
    for s in samples:
        img = load_rgb(str(store.ws.abs(s.path)))
        for v in range(views + 1):
            inputs.append(bb.prepare([img if v == 0 else augmented_view(img, s.sha256, v)]))
    return inputs


def network_alone(bb: backbones.Backbone, inputs: list, threads: int | str) -> float:
    """Views per second through the network only, batch 1, on ``bb``'s engine: in this
    thread (with ``threads`` torch threads, for torch), or (``"pool"``) spread over the
    network threads the path itself uses (one single-threaded pass per core)."""
    if threads == "pool":
        for f in [run_network(Embedder._forward, bb, x) for x in inputs[:NET_WORKERS]]:
            f.result()  # warm-up: every network thread started
        t0 = time.perf_counter()
        for f in [run_network(Embedder._forward, bb, x) for x in inputs]:
            f.result()
        return len(inputs) / (time.perf_counter() - t0)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        # bb.forward, not Embedder._forward: that one pins torch to one thread, as on the
        # network threads.
        bb.forward(inputs[0])  # warm-up
        t0 = time.perf_counter()
        for x in inputs:
            bb.forward(x)
        return len(inputs) / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)


def whole_path(bb: backbones.Backbone, store: Store, samples: list, views: int) -> float:
    """Views per second through Embedder.vectors: read, decode, augment, embed, cache."""
    emb = Embedder(store, bb)
    t0 = time.perf_counter()
    emb.vectors([(s.sha256, s.path) for s in samples], views)
    dt = time.perf_counter() - t0
    assert emb.computed == len(samples) * (views + 1), "the cache was not cold"
    return emb.computed / dt


def first_train(base: Path, tmp: Path) -> dict:
    """`fingertui train` on a copy of the imported workspace (no embeddings yet)."""
    home = tmp / "train"
    shutil.copytree(base, home)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "fingertui", "--home", str(home), "train", "--backbone", BACKBONE]
    cmd += ["--features", "image", "--json"]
    before = load()
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    m = json.loads(out.stdout)["metrics"]
    return {
        "wall_s": round(wall, 2),
        "features_s": m["features_s"],
        "train_run_s": m["duration_s"],
        "embedded_new": m["embedded_new"],
        "test_accuracy": m["test"]["accuracy"],
        "load_before": before,
        "load_after": load(),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=120, help="photos per round (each with 1 + views views)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-train", action="store_true", help="skip the first-train measurement")
    ap.add_argument(
        "--views",
        type=int,
        default=TrainConfig().views,
        help="augmented views per photo (2: the issue's protocol; 0: what a first train on classes of 30+ "
        "images computes); results go to embed_speed.json, or embed_speed_v<N>.json for other counts",
    )
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"no dataset at {SHARED}")
        return 2
    views = args.views
    out = OUT if views == TrainConfig().views else OUT.with_name(f"embed_speed_v{views}.json")
    result: dict = {
        "backbone": BACKBONE,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_start": load(),
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        base = Workspace(tmp / "base")
        import_paths(Store(base), [SHARED])
        if not args.no_train:
            result["first_train"] = first_train(base.root, tmp)
            print(f"first train: {json.dumps(result['first_train'])}", flush=True)
        ws = Workspace(tmp / "speed")
        shutil.copytree(base.root, ws.root)
        store = Store(ws)
        bb = backbones.load(BACKBONE, torch_modules=True)  # torch too: it is timed against ONNX Runtime
        result["torch_threads"] = torch.get_num_threads()
        photos = store.labelled()
        need = args.photos * (args.rounds + 1)
        if len(photos) < need:
            print(f"need {need} photos for {args.rounds} rounds of {args.photos}, have {len(photos)}")
            return 2
        # One warm-up round of the whole path (first-call costs: thread pools, the augmenter).
        whole_path(bb, store, photos[: args.photos], views)
        rounds = []
        result["engine"] = bb.engine
        for r in range(1, args.rounds + 1):
            chunk = photos[r * args.photos : (r + 1) * args.photos]
            inputs = prepared(bb, store, chunk, views)
            threads = torch.get_num_threads()
            one = network_alone(bb, inputs, 1)
            path = whole_path(bb, store, chunk, views)
            pool = network_alone(bb, inputs, "pool")
            with on_engine(bb, "t1"):
                torch_inputs = prepared(bb, store, chunk, views)  # torch's own resize: tensors
                torch_default = network_alone(bb, torch_inputs, threads)
                torch_pool = network_alone(bb, torch_inputs, "pool")
            best = max(one, pool)
            rounds.append(
                {
                    "network_alone_ips": round(best, 1),
                    "whole_path_ips": round(path, 1),
                    "ratio": path / best,
                    "network_alone_1_thread_ips": round(one, 1),
                    "network_alone_pool_ips": round(pool, 1),
                    "torch_default_threads_ips": round(torch_default, 1),
                    "torch_pool_ips": round(torch_pool, 1),
                    "load": load()[0],
                }
            )
            print(
                f"round {r}: network alone on {bb.engine} {best:6.1f} views/s ({one:.1f} in one thread, "
                f"{pool:.1f} on {NET_WORKERS} network threads; torch: {torch_default:.1f} with {threads} "
                f"threads, {torch_pool:.1f} on the network threads), whole path {path:6.1f} views/s, "
                f"ratio {path / best:.2f} (load {load()[0]})",
                flush=True,
            )
    net = statistics.median(r["network_alone_ips"] for r in rounds)
    path = statistics.median(r["whole_path_ips"] for r in rounds)
    ratio = statistics.median(r["ratio"] for r in rounds)
    torch_best = statistics.median(max(r["torch_default_threads_ips"], r["torch_pool_ips"]) for r in rounds)
    result.update(
        views_per_photo=views + 1,
        photos_per_round=args.photos,
        rounds=rounds,
        network_alone_ips=round(net, 1),
        whole_path_ips=round(path, 1),
        ratio=round(ratio, 3),
        torch_best_ips=round(torch_best, 1),
        load_end=load(),
    )
    print(
        f"median: network alone {net:.1f} views/s on {bb.engine} (torch at its best: {torch_best:.1f}), "
        f"whole path {path:.1f} views/s, ratio {ratio:.2f} "
        f"(load average {result['load_start']} → {result['load_end']}, {result['cpus']} CPUs)"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

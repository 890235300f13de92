"""Embedding speed: the network alone against the whole embedding path, in one run.

On a shared machine absolute figures swing with the load, so the rounds alternate
between the two measurements and the ratio (whole path / network alone) is the figure
that matters. Each round embeds photos it has not seen before, so the cache is cold.

- network alone: efficientnet-lite0 (cut, pooled), batch 1, channels-last, on inputs
  decoded, augmented and resized beforehand, three ways: in one thread with torch's
  default thread count (the issue's reference), in one thread with one torch thread, and
  spread over the path's own network threads (one single-threaded pass per core); the
  strict ratio is against the best of the three;
- whole path: ``Embedder.vectors`` on the same number of photos × (1 plain + 2 augmented
  views), from file to cache, as ``fingertui train`` runs it;
- first train: ``fingertui train --features image`` as a separate process on every
  sign-digits photo, cold cache (wall-clock, torch import included), with the machine's load average.

Run: .venv/bin/python bench/embed_speed.py [--photos 120] [--rounds 3] [--no-train]
Writes bench/results/embed_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fingertui import backbones
from fingertui.features import NET_WORKERS, Embedder, augmented_view, load_rgb, run_network
from fingertui.importer import import_paths
from fingertui.store import Store
from fingertui.train import TrainConfig
from fingertui.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets" / "sign-digits"
OUT = ROOT / "bench" / "results" / "embed_speed.json"
BACKBONE = "efficientnet-lite0"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def network_alone(bb: backbones.Backbone, store: Store, samples: list, views: int, threads: int | str) -> float:
    """Views per second through the network only, batch 1, inputs prepared beforehand:
    in this thread with ``threads`` torch threads, or (``"pool"``) spread over the
    network threads the path itself uses (one single-threaded pass per core)."""
    inputs = []
    for s in samples:
        img = load_rgb(str(store.ws.abs(s.path)))
        for v in range(views + 1):
            inputs.append(Embedder._prepare(bb, [img if v == 0 else augmented_view(img, s.sha256, v)]))
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
        Embedder._forward(bb, inputs[0])  # warm-up
        t0 = time.perf_counter()
        for x in inputs:
            Embedder._forward(bb, x)
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
        bb = backbones.load(BACKBONE)
        result["torch_threads"] = torch.get_num_threads()
        photos = store.labelled()
        need = args.photos * (args.rounds + 1)
        if len(photos) < need:
            print(f"need {need} photos for {args.rounds} rounds of {args.photos}, have {len(photos)}")
            return 2
        # One warm-up round of the whole path (first-call costs: thread pools, the augmenter).
        whole_path(bb, store, photos[: args.photos], views)
        rounds = []
        for r in range(1, args.rounds + 1):
            chunk = photos[r * args.photos : (r + 1) * args.photos]
            threads = torch.get_num_threads()
            net = network_alone(bb, store, chunk, views, threads)
            path = whole_path(bb, store, chunk, views)
            one = network_alone(bb, store, chunk, views, 1) if threads > 1 else net
            pool = network_alone(bb, store, chunk, views, "pool")
            best = max(net, one, pool)
            rounds.append(
                {
                    "network_alone_ips": round(net, 1),
                    "whole_path_ips": round(path, 1),
                    "ratio": path / net,
                    "network_alone_1_thread_ips": round(one, 1),
                    "network_alone_pool_ips": round(pool, 1),
                    "ratio_to_best_network": path / best,
                    "load": load()[0],
                }
            )
            print(
                f"round {r}: network alone {net:6.1f} views/s ({threads} torch threads; {one:.1f} on 1; "
                f"{pool:.1f} on {NET_WORKERS} single-threaded workers), whole path {path:6.1f} views/s, "
                f"ratio {path / net:.2f}, to the best network {path / best:.2f} (load {load()[0]})",
                flush=True,
            )
    net = statistics.median(r["network_alone_ips"] for r in rounds)
    path = statistics.median(r["whole_path_ips"] for r in rounds)
    ratio = statistics.median(r["ratio"] for r in rounds)
    to_best = statistics.median(r["ratio_to_best_network"] for r in rounds)
    result.update(
        views_per_photo=views + 1,
        photos_per_round=args.photos,
        rounds=rounds,
        network_alone_ips=round(net, 1),
        whole_path_ips=round(path, 1),
        ratio=round(ratio, 3),
        ratio_to_best_network=round(to_best, 3),
        load_end=load(),
    )
    print(
        f"median: network alone {net:.1f} images/s, whole path {path:.1f} images/s, ratio {ratio:.2f} "
        f"(to the best way to run the network alone: {to_best:.2f}) "
        f"(load average {result['load_start']} → {result['load_end']}, {result['cpus']} CPUs)"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Embedding throughput and single-image prediction latency for each backbone.

ResNet-18's ImageNet weights cannot be downloaded on an offline machine; its timing is
measured with the same architecture and randomly initialised weights (the arithmetic is
identical). Its predictions are never used here.

Writes bench/results/backbone_speed-images<N>-predictions<M>.json.

Run: PYTHONPATH=. .venv/bin/python bench/backbone_speed.py [--images 60] [--predictions 30]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _results import record  # bench/_results.py: what this prints goes to bench/results/

from fingertui.learn import backbones
from fingertui.learn.embeddings import Embedder
from fingertui.learn.mlp import MLPHead


def measure(bb: backbones.Backbone, n: int = 60, predictions: int = 30) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (240, 240, 3), dtype=np.uint8) for _ in range(n)]
    Embedder.embed_images(bb, imgs[:3])  # warm-up
    t0 = time.perf_counter()
    for img in imgs:
        Embedder.embed_images(bb, [img])
    throughput = n / (time.perf_counter() - t0)
    head = MLPHead(bb.dim).eval()
    lat = []
    for img in (imgs[i % n] for i in range(predictions)):
        t = time.perf_counter()
        x = Embedder.embed_images(bb, [img])
        with torch.inference_mode():
            head(torch.from_numpy(x)).softmax(1)
        lat.append(time.perf_counter() - t)
    return throughput, 1000 * float(np.median(lat))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--images", type=int, default=60, help="images embedded one at a time for the throughput (default 60)"
    )
    ap.add_argument(
        "--predictions", type=int, default=30, help="single predictions timed for the median latency (default 30)"
    )
    args = ap.parse_args()
    record(__file__, f"images{args.images}-predictions{args.predictions}")
    print(f"{torch.get_num_threads()} threads, device {backbones.device()}, 240×240 RGB input")
    with tempfile.TemporaryDirectory() as tmp:
        from torchvision.models import resnet18

        w = Path(tmp) / "random-resnet18.pth"
        torch.save(resnet18().state_dict(), w)
        for bb in (backbones.load_resnet18(str(w)), backbones.load("efficientnet-lite0", torch_modules=True)):
            bb.to(backbones.device())
            ips, ms = measure(bb, args.images, args.predictions)
            note = " (random weights: timing only)" if bb.id.startswith("resnet18@file") else ""
            print(
                f"{bb.name:20s} dim {bb.dim:5d}: {ips:5.1f} images/s embedding, {ms:5.1f} ms per single prediction{note}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

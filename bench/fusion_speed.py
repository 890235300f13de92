"""Forward time of fingertui's efficientnet-lite0 cut, with and without folding each
frozen batch norm into its convolution (`torchnets._fuse_for_inference`), one image at a
time and in batches of 16 (the embedder's batch size, `embeddings.BATCH`, rests on this).

Both networks get the same preprocessed 224×224 inputs; their outputs are checked equal
(to float tolerance) before timing. Median of --repeats timed passes after 2 warm-ups.

Writes bench/results/fusion_speed.json.

Run: PYTHONPATH=. .venv/bin/python bench/fusion_speed.py [--repeats 30] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from fingertui.learn import backbones
from fingertui.learn.backbones import EFFNET_CUT, GRID

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layer_cut import full_effnet  # noqa: E402 — a sibling bench script, importable once on the path

OUT = Path(__file__).resolve().parents[1] / "bench" / "results"


class UnfusedCut(nn.Module):
    """The same cut and pooling as fingertui's, batch norms left as separate layers."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.Sequential(*list(net._blocks)[: EFFNET_CUT + 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(self.blocks(self.stem(x)), GRID).flatten(1)


def timed(model: nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median seconds per image of ``model(x)``."""
    with torch.inference_mode():
        for _ in range(2):
            model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) / len(x)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="5 repeats, one image at a time only")
    args = ap.parse_args()
    if args.quick:
        args.repeats = 5
    torch.manual_seed(0)
    fused = backbones.load("efficientnet-lite0", torch_modules=True).features.eval()
    unfused = UnfusedCut(full_effnet()).eval()
    x16 = torch.rand(16, 3, 224, 224) * 2 - 1
    with torch.inference_mode():
        same = torch.allclose(fused(x16[:2]), unfused(x16[:2]), atol=1e-3, rtol=1e-3)
    if not same:
        print("the fused and unfused networks disagree: not timing")
        return 1
    res = {"threads": torch.get_num_threads(), "repeats": args.repeats}
    for name, model in (("unfused", unfused), ("fused", fused)):
        for batch in (1,) if args.quick else (1, 16):
            ms = 1000 * timed(model, x16[:batch].contiguous(memory_format=torch.channels_last), args.repeats)
            res[f"{name}_batch{batch}_ms_per_image"] = round(ms, 2)
            print(f"{name:8s} batch {batch:2d}: {ms:6.2f} ms per image")
    saved = 1 - res["fused_batch1_ms_per_image"] / res["unfused_batch1_ms_per_image"]
    res["fusion_saves_batch1"] = round(saved, 3)
    print(f"fusion saves {100 * saved:.0f}% of the one-image forward time (2 shared cores: indicative only)")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "fusion_speed.json").write_text(json.dumps(res, indent=2))
    print(f"wrote {OUT / 'fusion_speed.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

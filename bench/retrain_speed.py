"""Retraining speed: 20 new captures on a 1,000-image dataset, end to end, versus the
original notebook's approach (fine-tune the whole network for 30 epochs).

fingertui: a workspace holds 1,000 labelled sign-digits photos, already trained once (their
embeddings are cached, as they are after any earlier run). 20 new images arrive; the timed
retrain embeds just those, trains the head, calibrates, computes out-of-fold predictions,
evaluates and records the run — with the backbone already loaded, as in the running app.

Notebook approach: ResNet-18, every image through the whole network, forward and
backward, every epoch, for 30 epochs. Timing all of it would take the better part of an
hour here, so the benchmark times real training steps (batch 32, SGD, 224×224) over a few
batches and multiplies the measured per-image time by images × 30 epochs.

Sizes: --images (the dataset, default 1,000), --new (the later arrivals, default 20),
--epochs (the notebook's, default 30), --batches (timed notebook steps, default 3).
Writes bench/results/retrain_speed-images<N>-new<K>-epochs<E>-batches<B>.json.

Run: PYTHONPATH=. .venv/bin/python bench/retrain_speed.py [--images 1000] [--new 20] [--epochs 30] [--batches 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from _results import record  # bench/_results.py: what this prints goes to bench/results/

from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace
from fingertui.learn import backbones
from fingertui.train.pipeline import train_run

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sign-digits"


def notebook_seconds_per_image(batches: int = 3, batch: int = 32) -> float:
    from torchvision.models import resnet18

    model = resnet18(num_classes=6)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, 224, 224)
    y = torch.randint(0, 6, (batch,))
    loss = torch.nn.functional.cross_entropy(model(x), y)  # warm-up step, not timed
    loss.backward()
    opt.step()
    t0 = time.perf_counter()
    for _ in range(batches):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / (batches * batch)


def main() -> int:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--images", type=int, default=1000, help="labelled images trained on first (default 1000)")
    ap.add_argument("--new", type=int, default=20, help="images that arrive before the timed retrain (default 20)")
    ap.add_argument("--epochs", type=int, default=30, help="the notebook approach's epochs (default 30)")
    ap.add_argument("--batches", type=int, default=3, help="notebook training steps timed, batch 32 (default 3)")
    args = ap.parse_args()
    if args.images < 1 or args.new < 1 or args.epochs < 1 or args.batches < 1:
        ap.error("every size must be at least 1")
    record(__file__, f"images{args.images}-new{args.new}-epochs{args.epochs}-batches{args.batches}")
    if not SHARED.is_dir():
        print(f"no dataset at {SHARED}")
        return 2
    files = sorted(p for p in SHARED.rglob("*") if p.is_file())
    total = args.images + args.new
    if len(files) < total:
        print(f"only {len(files)} photos under {SHARED}: fewer than --images + --new ({total})")
        return 2
    # Every (total // new)-th image is a later arrival: 0, 51, …, 969 of 1,020 by default.
    new = set(range(0, total, total // args.new)[: args.new])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Lay out the dataset + the later arrivals, keeping the label folders.
        for i, f in enumerate(files[:total]):
            dest = tmp / ("new" if i in new else "base") / f.parent.name / f.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(f)
        store = Store(Workspace(tmp / "ws"))
        import_paths(store, [tmp / "base"])
        bb = backbones.load("efficientnet-lite0")
        t0 = time.perf_counter()
        first = train_run(store, backbone="efficientnet-lite0")
        cold = time.perf_counter() - t0
        import_paths(store, [tmp / "new"])
        phases: dict[str, float] = {}
        last = [time.perf_counter(), None]

        def progress(phase: str, k: int, n: int) -> None:
            now = time.perf_counter()
            if last[1] is not None:
                phases[last[1]] = phases.get(last[1], 0.0) + now - last[0]
            last[0], last[1] = now, phase

        t0 = time.perf_counter()
        run = train_run(store, backbone="efficientnet-lite0", progress=progress)
        warm = time.perf_counter() - t0
        progress("done", 0, 0)
        n_images = run.n_train + run.n_test
        per_image = notebook_seconds_per_image(args.batches)
        notebook = per_image * n_images * args.epochs
    print(f"backbone {bb.id}, {torch.get_num_threads()} threads")
    print(f"first training on {first.n_train + first.n_test} images (all embeddings computed): {cold:.1f} s")
    print(
        f"retrain after {args.new} new images ({n_images} images, {run.metrics['embedded_new']} new embeddings): "
        f"{warm:.2f} s end to end"
    )
    print("  phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()))
    print(
        f"notebook approach: {1000 * per_image:.0f} ms per image per epoch (measured) × {n_images} images × {args.epochs} epochs"
        f" = {notebook:.0f} s (extrapolated)"
    )
    print(f"ratio: {notebook / warm:.0f}× faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())

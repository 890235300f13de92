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

Run: .venv/bin/python bench/retrain_speed.py
"""

from __future__ import annotations

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
    record(__file__)
    if not SHARED.is_dir():
        print(f"no dataset at {SHARED}")
        return 2
    files = sorted(p for p in SHARED.rglob("*") if p.is_file())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Lay out 1,000 images + 20 later arrivals, keeping the label folders.
        for i, f in enumerate(files[:1020]):
            dest = tmp / ("base" if i % 51 else "new") / f.parent.name / f.name
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
        per_image = notebook_seconds_per_image()
        notebook = per_image * n_images * 30
    print(f"backbone {bb.id}, {torch.get_num_threads()} threads")
    print(f"first training on {first.n_train + first.n_test} images (all embeddings computed): {cold:.1f} s")
    print(
        f"retrain after 20 new images ({n_images} images, {run.metrics['embedded_new']} new embeddings): "
        f"{warm:.2f} s end to end"
    )
    print("  phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()))
    print(
        f"notebook approach: {1000 * per_image:.0f} ms per image per epoch (measured) × {n_images} images × 30 epochs"
        f" = {notebook:.0f} s (extrapolated)"
    )
    print(f"ratio: {notebook / warm:.0f}× faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The live view's per-frame work with hand pose on: track the hand, frame the square,
predict it — as `FingerApp.live_loop` does — on real photos, timed.

A run is trained first (hagrid-rooms frames, features both) in a temporary workspace; then
frames from `hagrid-rooms/frames` go through `HandTracker.update` + `Model.predict_image`
(the hand given, as the app does) for `--seconds`. Reports predictions/s, the share of
frames with the hand tracked, and the median ms per step. Writes
bench/results/live_pose.json (live_pose-steady.json with --steady: the steady count on top, as the
app does). Run: .venv/bin/python bench/live_pose.py [--seconds 20] [--steady]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "hagrid-rooms" / "frames"
OUT = ROOT / "bench" / "results"


def main() -> int:
    from fingertui.data.importer import import_paths
    from fingertui.data.store import Store
    from fingertui.data.workspace import Workspace
    from fingertui.learn.boxes import hand_in_box
    from fingertui.learn.embeddings import read_rgb
    from fingertui.learn.model import Model
    from fingertui.learn.streams import PoseStream
    from fingertui.live.tracking import HandTracker
    from fingertui.train.pipeline import train

    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--steady", action="store_true", help="with the steady count on top, as the app shows it")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"no photos at {DATA}")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Workspace(Path(tmp)))
        import_paths(store, [DATA])
        run = train(store, features="both", backbone="efficientnet-lite0").run
        model = Model.for_run(store, run)
        frames = [read_rgb(p) for p in sorted(DATA.rglob("*.jpg"))]
        tracker = HandTracker(PoseStream().detector(tracking=True))
        from fingertui.live.steady import SteadyCount

        steady = SteadyCount(image_only=True) if args.steady else None
        steps, tracked = [], 0
        t_end = time.perf_counter() + args.seconds
        i = 0
        while time.perf_counter() < t_end:
            # Hold each photo for 10 frames, as a camera pointed at one scene would.
            view = np.ascontiguousarray(frames[(i // 10) % len(frames)][:, ::-1])
            t0 = time.perf_counter()
            track = tracker.update(view)
            h, w = view.shape[:2]
            side = int(min(h, w) * 0.6)
            box = track.box or ((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)
            x0, y0, x1, y1 = box
            crop = np.ascontiguousarray(view[y0:y1, x0:x1])
            hand = hand_in_box(track.hand, box) if track.hand is not None else None
            p = model.predict_image(crop, hand=hand, hand_known=True)
            if steady is not None:
                steady.smooth(p, model.threshold, model=model)
            steps.append(time.perf_counter() - t0)
            tracked += track.hand is not None
            i += 1
        total = sum(steps)
        result = {
            "frames": len(steps),
            "predictions_per_s": len(steps) / total,
            "median_ms": 1000 * float(np.median(steps)),
            "tracked_share": tracked / len(steps),
            "run_features": run.features,
            "steady": args.steady,
            "load_avg": os.getloadavg(),
        }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / ("live_pose-steady.json" if args.steady else "live_pose.json")).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

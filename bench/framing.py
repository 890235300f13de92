"""How the live view's default framing of a `folder:` source changes what the model sees.

Photos from `sign-digits` (100 px, the hand fills the picture) go through the app's live
path for a folder source, as `FingerApp.live_loop` does: mirrored, the hand tracked (the
square follows it when found), else the screen's default framing — before this bench a
centred square of 60 % (the camera's default), now the whole image — then predicted by
the model the app uses before any training (the starter: the hand's pose). Each photo is
held for a few frames, as the slideshow holds it. Reports how many photos are counted
right under each default. Writes bench/results/framing.json.
Run: .venv/bin/python bench/framing.py [--per-class 7]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import record  # noqa: E402  bench/_results.py: what this prints goes to bench/results/

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sign-digits"
HOLD = 5  # live predictions while one photo is on show (about 5/s, 1 photo/s)


def main() -> int:
    from fingertui.learn.boxes import centred_square, hand_in_box
    from fingertui.learn.embeddings import read_rgb
    from fingertui.learn.model import Model
    from fingertui.learn.streams import PoseStream
    from fingertui.live.tracking import HandTracker

    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=7)
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"no photos at {DATA}")
        return 2
    record(__file__)
    photos = [(c, p) for c in range(6) for p in sorted((DATA / str(c)).iterdir())[: args.per_class]]
    model = Model.starter()
    if model is None:
        print("the starter model needs the hand-pose detector, which cannot run here")
        return 2

    def frame(view: np.ndarray, how: str) -> tuple[int, int, int, int]:
        h, w = view.shape[:2]
        return (0, 0, w, h) if how == "whole" else centred_square(view.shape, 0.6)

    def predict(view: np.ndarray, box: tuple[int, int, int, int], track: object | None) -> int | None:
        x0, y0, x1, y1 = box
        crop = np.ascontiguousarray(view[y0:y1, x0:x1])
        if track is not None and track.box == box and track.hand is not None:
            return model.predict_image(crop, hand=hand_in_box(track.hand, box), hand_known=True).label
        return model.predict_image(crop, tracking=True).label

    results = {}
    for how in ("square60", "whole"):
        for follow in (False, True):
            tracker = HandTracker(PoseStream().detector(tracking=True)) if follow else None
            right = followed = 0
            for label, path in photos:
                view = np.ascontiguousarray(read_rgb(path)[:, ::-1])
                for _ in range(HOLD):
                    track = tracker.update(view) if tracker is not None else None
                    box = track.box if track is not None and track.box is not None else frame(view, how)
                    got = predict(view, box, track)
                followed += track is not None and track.box is not None
                right += got == label
            key = f"{how}{'+follow' if follow else ''}"
            results[key] = {"right": right, "n": len(photos), "followed": followed}
            print(
                f"default framing {how:8s} {'square follows the hand' if follow else 'fixed framing':24s}: "
                f"{right}/{len(photos)} counted right" + (f" (hand followed on {followed})" if follow else "")
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the still-image hand search costs and finds, step by step (streams.PoseStream.search).

For each photo set: how many hands the search finds, how many detector tries it makes
(the picture; zoomed out if that found nothing; tiles if that found nothing either) and
the milliseconds per photo, with the zoomed-out look and without it (the search before
it: the picture, then tiles). Writes bench/results/hand_search.json.
Run: .venv/bin/python bench/hand_search.py [--sets sign-digits hagrid-rooms/frames ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import record  # noqa: E402  bench/_results.py: what this prints goes to bench/results/

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"


class Counting:
    """The still detector, counting its tries. A try on the very picture just tried
    (the search without its zoomed-out look, see below) is answered from memory and
    not counted."""

    def __init__(self, det: object) -> None:
        self.det, self.calls, self._last = det, 0, None

    def detect(self, img: np.ndarray) -> list:
        if self._last is not None and self._last[0].shape == img.shape and np.array_equal(self._last[0], img):
            return self._last[1]
        self.calls += 1
        found = self.det.detect(img)
        self._last = (img, found)
        return found


def main() -> int:
    from fingertui.learn import hands, streams
    from fingertui.learn.embeddings import read_rgb

    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", nargs="+", default=["sign-digits", "hagrid-rooms/frames", "hagrid-rooms/hands"])
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"no photos at {DATA}")
        return 2
    if not hands.available():
        print(hands.unavailable_reason())
        return 2
    record(__file__)
    pose = streams.PoseStream()
    zoom = streams.ZOOM_OUT
    for name in args.sets:
        photos = [read_rgb(p) for p in sorted((DATA / name).glob("*/*")) if p.is_file()]
        for recipe, frac in (("with the zoomed-out look", zoom), ("without it (picture, then tiles)", 0.0)):
            # A border of 0 is the picture itself: the second look is a repeat, not counted.
            streams.ZOOM_OUT = frac
            det = Counting(pose.detector())
            t0 = time.perf_counter()
            found = sum(pose.search(img, det) is not None for img in photos)
            ms = 1000 * (time.perf_counter() - t0) / len(photos)
            print(
                f"{name:22s} {recipe:34s}: hand found in {found}/{len(photos)}, "
                f"{det.calls} detector tries ({det.calls / len(photos):.2f} a photo), {ms:.1f} ms a photo"
            )
        streams.ZOOM_OUT = zoom
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

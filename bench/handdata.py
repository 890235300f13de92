"""Shared-photo loading for the finger-head benchmarks: listings and cached hand detections.

MediaPipe on 1,600 photos takes minutes on 2 shared cores, so the found hands are cached
under $TMPDIR/fingertui-fingers-bench, keyed by the detector id and the photo's path:
another detector version or padding recipe is never read back.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from fingertui.learn import hands as H

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FINGERTUI_SHARED") or ROOT.parent / "shared") / "datasets"
CACHE = Path(tempfile.gettempdir()) / "fingertui-fingers-bench" / "detections.pkl"


def listing(name: str) -> tuple[list[Path], np.ndarray]:
    """Image paths under SHARED/name/0..5 and their labels, in a fixed order."""
    paths, labels = [], []
    for c in range(6):
        for p in sorted((SHARED / name / str(c)).iterdir()):
            if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
                paths.append(p)
                labels.append(c)
    return paths, np.array(labels)


def detect(paths: list[Path], log: bool = True, complexity: int = H.COMPLEXITY) -> list[list[H.Hand]]:
    """Every hand MediaPipe (still mode, the product's settings; ``complexity``: its landmark
    model, the product's by default) finds in each photo."""
    key = H.detector_id(complexity)
    cache: dict = pickle.loads(CACHE.read_bytes()) if CACHE.exists() else {}
    missing = [p for p in paths if (key, str(p)) not in cache]
    if missing:
        with H.HandDetector(mode="still", max_hands=2, complexity=complexity) as det:
            for i, p in enumerate(missing):
                with Image.open(p) as img:
                    rgb = np.asarray(img.convert("RGB"))
                cache[(key, str(p))] = H.hands_to_bytes(det.detect(rgb))
                if log and i % 100 == 0:
                    print(f"  detecting {i}/{len(missing)}", flush=True)
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        tmp = CACHE.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(cache))
        tmp.replace(CACHE)
    return [H.hands_from_bytes(cache[(key, str(p))]) for p in paths]


def search(paths: list[Path], log: bool = True) -> list[H.Hand | None]:
    """The hand the product finds in each photo (``streams.PoseStream.search``: the whole
    picture, then tiles), cached like ``detect`` under the stream's detector id (which
    names the tile recipe)."""
    from fingertui.learn.streams import PoseStream

    stream = PoseStream()
    cache: dict = pickle.loads(CACHE.read_bytes()) if CACHE.exists() else {}
    missing = [p for p in paths if (stream.detector_id, str(p)) not in cache]
    for i, p in enumerate(missing):
        hand = stream.search_file(p)
        cache[(stream.detector_id, str(p))] = H.hands_to_bytes([] if hand is None else [hand])
        if log and i % 100 == 0:
            print(f"  searching {i}/{len(missing)}", flush=True)
    if missing:
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        tmp = CACHE.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(cache))
        tmp.replace(CACHE)
    return [first_hand(H.hands_from_bytes(cache[(stream.detector_id, str(p))])) for p in paths]


def first_hand(found: list[H.Hand]) -> H.Hand | None:
    """The hand the product uses (streams.PoseStream.detect): the most confident one."""
    return found[0] if found else None


def largest_hand(found: list[H.Hand]) -> H.Hand | None:
    """The largest hand: in the few frames with two people, the gesturing hand is raised
    toward the camera and so is usually the bigger one."""
    if not found:
        return None

    def area(h: H.Hand) -> float:
        x0, y0, x1, y1 = h.bbox
        return (x1 - x0) * (y1 - y0)

    return max(found, key=area)

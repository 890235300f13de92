"""Synthetic hands: landmarks with a chosen set of fingers straight, and a stand-in
detector that "finds" them in the drawn test images.

For development and tests only (``FINGERTUI_DEV_HANDS=1``): the pose pipeline can be
trained and tested without real photos or the MediaPipe models. Predicting with it
outside that variable is impossible: the stream refuses to be created.
"""

from __future__ import annotations

import hashlib

import numpy as np

from fingertui.learn.hands import Hand

ENV_DEV_HANDS = "FINGERTUI_DEV_HANDS"
DETECTOR_ID = "dev-standin-hands/1"
# Knuckle (MCP) positions of index, middle, ring and little finger, wrist at (0.5, 0.85):
# a right palm facing the camera, fingers pointing up (image y grows downwards).
_WRIST = np.array([0.5, 0.85, 0.0])
_KNUCKLES = np.array([[0.42, 0.55, 0.0], [0.48, 0.52, 0.0], [0.54, 0.53, 0.0], [0.60, 0.56, 0.0]])
_BONES = (0.09, 0.07, 0.06)  # proximal, middle, distal phalanx lengths


def fingers_for_count(k: int) -> tuple[bool, bool, bool, bool, bool]:
    """Which fingers (thumb, index, middle, ring, little) are up for a count, the way
    most people show it: index first, the thumb last."""
    index, middle, ring, little = (i < k for i in range(4))
    return (k >= 5, index, middle, ring, little)


def synthetic_hand(
    up: tuple[bool, bool, bool, bool, bool], seed: int = 0, size: tuple[int, int] = (96, 96), jitter: float = 0.006
) -> Hand:
    """A right hand with exactly the ``up`` fingers straight and the others curled into the
    palm, in MediaPipe's layout (21 image landmarks and 21 world landmarks)."""
    rng = np.random.default_rng(seed)
    pts = np.zeros((21, 3))
    pts[0] = _WRIST
    # Thumb: CMC, MCP, IP, tip — out to the side when up, across the palm when down.
    cmc = np.array([0.41, 0.76, 0.0])
    direction = np.array([-0.55, -0.84, 0.0]) if up[0] else np.array([0.8, -0.6, -0.3])
    pts[1] = cmc
    for j, length in enumerate((0.07, 0.06, 0.05)):
        pts[2 + j] = pts[1 + j] + direction * length
    for f in range(4):
        base = 5 + 4 * f
        pts[base] = _KNUCKLES[f]
        if up[f + 1]:
            spread = (f - 1.5) * 0.08
            dirs = [np.array([spread, -1.0, 0.0])] * 3
        else:  # curled: up, then forward towards the camera, then back down over the palm
            dirs = [np.array([0.0, -0.5, -0.85]), np.array([0.0, 0.6, -0.8]), np.array([0.0, 1.0, 0.1])]
        for j, (d, length) in enumerate(zip(dirs, _BONES, strict=True)):
            d = d / np.linalg.norm(d)
            pts[base + 1 + j] = pts[base + j] + d * length
    pts += rng.normal(0, jitter, pts.shape)
    world = (pts - pts[9]) * np.array([0.2, 0.2, 0.2])  # metres around the middle knuckle
    # The hand is drawn in the centred square of a (width, height) picture: keep its shape
    # in pixels whatever the picture's aspect ratio.
    w, h = size
    side = min(w, h)
    px = pts[:, :2] * side + np.array([(w - side) / 2, (h - side) / 2])
    lm = np.column_stack([px[:, 0] / w, px[:, 1] / h, pts[:, 2] * side / w])
    return Hand(
        landmarks=lm.astype(np.float32),
        world=world.astype(np.float32),
        handedness="Right",
        handedness_score=0.99,
        score=0.99,
        image_size=size,
    )


def count_bars(rgb: np.ndarray) -> int:
    """How many bright vertical bars a drawn test image holds (tests/conftest.finger_image)."""
    bright = (rgb.astype(np.int16).mean(axis=2) > 150).mean(axis=0) > 0.3
    edges = np.diff(np.concatenate([[0], bright.astype(np.int8), [0]]))
    return int((edges == 1).sum())


class StandInDetector:
    """Finds a synthetic hand showing as many fingers as the image has bright bars; a flat
    (blank) frame holds no hand."""

    id = DETECTOR_ID

    def detect(self, rgb: np.ndarray) -> list[Hand]:
        rgb = np.asarray(rgb)
        if rgb.std() < 5:
            return []
        k = min(count_bars(rgb), 5)
        seed = int(hashlib.sha256(rgb.tobytes()).hexdigest()[:8], 16)
        # Little jitter: the stand-in should read as its count, like a clear real photo.
        return [synthetic_hand(fingers_for_count(k), seed, (rgb.shape[1], rgb.shape[0]), jitter=0.002)]

    def close(self) -> None:
        pass

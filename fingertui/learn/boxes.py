"""Hand boxes: the squares fingertui frames a hand with, and a hand moved between an image
and a box in it.

A box is ``(x0, y0, x1, y1)`` in integer pixels of the image it was drawn on, right and
bottom edges excluded (``img[y0:y1, x0:x1]`` is its crop). Used by the still-image search
(a hand found in a tile or a bordered copy), the image expert's framing, the live view's
square that follows the hand, and the exported runtime (a copy of this file).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from fingertui.learn.hands import Hand

Box = tuple[int, int, int, int]


def square_in_image(cx: float, cy: float, side: float, size: tuple[int, int]) -> Box:
    """Integer square of ``side`` centred at (cx, cy), moved inside a (width, height) image."""
    w, h = size
    s = int(round(min(side, w, h)))
    x0 = int(round(min(max(cx - s / 2, 0), w - s)))
    y0 = int(round(min(max(cy - s / 2, 0), h - s)))
    return x0, y0, x0 + s, y0 + s


def centred_square(shape: tuple[int, ...], size: float) -> Box:
    """The fixed capture square: centred, ``size`` × the shorter side of an image of ``shape``
    (rows, columns, …), at least 8 pixels."""
    h, w = shape[:2]
    side = max(8, int(min(h, w) * size))
    top, left = (h - side) // 2, (w - side) // 2
    return left, top, left + side, top + side


def crop(img: np.ndarray, box: Box) -> np.ndarray:
    """The pixels of ``box`` (inside the image), as a contiguous array."""
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(img[y0:y1, x0:x1])


def crop_box(hand: Hand, margin: float = 0.25, min_side: float = 32.0) -> Box:
    """Square box around the hand, ``margin`` × its size added on each side; shifted to stay
    inside the image, clipped only when larger than the image."""
    # Unclipped landmarks: a hand running off the edge is framed by its true size.
    p = hand.pixels
    x0, y0 = float(p[:, 0].min()), float(p[:, 1].min())
    x1, y1 = float(p[:, 0].max()), float(p[:, 1].max())
    side = max(x1 - x0, y1 - y0, min_side) * (1 + 2 * margin)
    return square_in_image((x0 + x1) / 2, (y0 + y1) / 2, side, hand.image_size)


def hand_in_box(hand: Hand, box: Box) -> Hand:
    """The same hand with its image landmarks re-expressed in the crop ``box``."""
    x0, y0, x1, y1 = box
    w, h = hand.image_size
    side_w, side_h = x1 - x0, y1 - y0
    lm = hand.landmarks.copy()
    lm[:, 0] = (lm[:, 0] * w - x0) / side_w
    lm[:, 1] = (lm[:, 1] * h - y0) / side_h
    lm[:, 2] = lm[:, 2] * w / side_w
    return replace(hand, landmarks=lm, image_size=(side_w, side_h))


def hand_from_box(hand: Hand, box: Box, size: tuple[int, int]) -> Hand:
    """A hand found in the crop ``box`` re-expressed in the whole (width, height) image
    (the box may reach outside it: a bordered image is the box around the picture).
    The inverse of ``hand_in_box``."""
    x0, y0, x1, y1 = box
    w, h = size
    lm = hand.landmarks.copy()
    lm[:, 0] = (lm[:, 0] * (x1 - x0) + x0) / w
    lm[:, 1] = (lm[:, 1] * (y1 - y0) + y0) / h
    lm[:, 2] = lm[:, 2] * (x1 - x0) / w
    return replace(hand, landmarks=lm, image_size=(w, h))


class BoxSmoother:
    """Exponential smoothing of the live capture square (centre and side), so the square
    glides instead of jittering with the landmarks. Holds the last square for ``hold``
    frames without a hand (a missed detection or two should not make it jump away)."""

    def __init__(self, alpha: float = 0.35, hold: int = 5) -> None:
        self.alpha = alpha
        self.hold = hold
        self._state: np.ndarray | None = None  # cx, cy, side
        self._missed = 0
        self._size: tuple[int, int] | None = None

    def reset(self) -> None:
        self._state = None
        self._missed = 0

    def update(self, box: Box | None, size: tuple[int, int]) -> Box | None:
        """Feed this frame's square (or None); returns the smoothed square, or None."""
        if box is None:
            self._missed += 1
            if self._state is None or self._missed > self.hold:
                self._state = None
                return None
        else:
            self._missed = 0
            x0, y0, x1, y1 = box
            new = np.array([(x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)], dtype=np.float64)
            self._state = (
                new
                if self._state is None or size != self._size
                else (self.alpha * new + (1 - self.alpha) * self._state)
            )
        self._size = size
        cx, cy, side = self._state
        return square_in_image(cx, cy, side, size)

"""The capture square that follows the hand in live video (core: no Textual).

Each new frame goes through the hand-pose detector in tracking mode; the square is the
hand's box with a margin, smoothed over frames so it glides instead of jittering, and it
holds still for a few frames when the hand is briefly lost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fingertui.learn.hands import BoxSmoother, Hand, crop_box

Box = tuple[int, int, int, int]
MARGIN = 0.25  # × the hand's size on each side, so fingertips are never cut off


@dataclass(frozen=True)
class Track:
    box: Box | None  # the square to capture, in frame pixels (None: no hand in view)
    hand: Hand | None  # the hand found in this frame
    skeleton: np.ndarray | None  # (21, 2) landmark pixels in the frame, for drawing


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


class HandTracker:
    """Frames in, a smoothed square around the hand out."""

    def __init__(self, detector: object, margin: float = MARGIN) -> None:
        self.detector = detector  # hands.HandDetector in tracking mode (or a stand-in)
        self.margin = margin
        self.smoother = BoxSmoother()

    def update(self, frame: np.ndarray) -> Track:
        found = self.detector.detect(frame)
        hand = found[0] if found else None
        raw = crop_box(hand, margin=self.margin) if hand is not None else None
        box = self.smoother.update(raw, (frame.shape[1], frame.shape[0]))
        return Track(box, hand, hand.pixels if hand is not None else None)

    def reset(self) -> None:
        self.smoother.reset()
        reset = getattr(self.detector, "reset", None)
        if reset is not None:
            reset()

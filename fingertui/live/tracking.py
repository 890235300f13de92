"""The capture square that follows the hand in live video (core: no Textual).

Each new frame goes through the hand-pose detector in tracking mode; the square is the
hand's box with a margin, smoothed over frames so it glides instead of jittering, and it
holds still for a few frames when the hand is briefly lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from fingertui.learn.boxes import Box, BoxSmoother, crop_box
from fingertui.learn.hands import Hand

MARGIN = 0.25  # × the hand's size on each side, so fingertips are never cut off


@runtime_checkable
class Detector(Protocol):
    """What the tracker needs of a hand detector (hands.HandDetector in tracking mode, or a
    stand-in); one with a ``reset()`` forgets its tracked hands when the tracker resets."""

    def detect(self, rgb: np.ndarray) -> list[Hand]: ...


@dataclass(frozen=True)
class Track:
    box: Box | None  # the square to capture, in frame pixels (None: no hand in view)
    hand: Hand | None  # the hand found in this frame
    skeleton: np.ndarray | None  # (21, 2) landmark pixels in the frame, for drawing


class HandTracker:
    """Frames in, a smoothed square around the hand out."""

    def __init__(self, detector: Detector, margin: float = MARGIN) -> None:
        self.detector = detector
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

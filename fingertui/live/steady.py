"""A steady count for live video: the shown count changes only when the evidence holds.

Per-frame probabilities flicker on a steady hand (the tracked landmarks jitter, the hand
is lost for a frame, two counts are close). ``SteadyCount`` smooths them with an
exponential moving average and adds hysteresis: a new count is shown only once it leads
the shown one by ``margin`` in the average for ``frames`` frames in a row.

"No hand" is explicit: a frame without a hand is not evidence for any count. The shown
count holds through ``hold`` such frames in a row (a missed detection or two), then
becomes None ("no hand") and the average starts afresh with the next hand. A model with
no hand detector (``hand=None``) has every frame as evidence. With ``image_only`` a frame
whose count comes from the image alone (no hand found, but the image expert answered) is
evidence too, as the app shows it.

Latency (documented, and checked by tests/test_steady.py): on a clean change (the new
count's per-frame probability 1, the old one's 0) the shown count follows after
``clean_latency()`` frames, 4 with the defaults: 160 ms at 25 predictions/s. On real frames
the evidence is rarely clean: bench/flicker.py measures both flicker and delay
(bench/results/flicker-*.json).

Pure Python and NumPy, no fingertui import: an exported model folder carries this file
(export/build.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, TypedDict

import numpy as np


class Settings(TypedDict):
    alpha: float
    margin: float
    frames: int
    hold: int


# alpha: the average's weight on the newest frame; margin: how far a new count must lead
# the shown one; frames: for how many frames in a row; hold: frames without a hand before
# the count says "no hand". Chosen with bench/flicker.py (see its result files).
DEFAULTS: Settings = {"alpha": 0.5, "margin": 0.15, "frames": 3, "hold": 5}


@dataclass(frozen=True)
class Steady:
    """The steady count after one frame."""

    count: int | None  # the count to show; None: no hand (or not settled yet)
    probs: list[float] | None  # the averaged probabilities (None after a reset, before evidence)
    changed: bool  # ``count`` differs from the previous frame's
    hand: bool  # this frame was evidence (a hand, or image-only with ``image_only``)
    since: int  # frames the count has been shown, this one included

    def as_json(self) -> dict:
        return {
            "count": self.count,
            "probs": self.probs,
            "changed": self.changed,
            "hand": self.hand,
            "since": self.since,
        }


class SteadyCount:
    """Feed it one frame's probabilities at a time (``update``); it says what to show."""

    def __init__(
        self,
        alpha: float = DEFAULTS["alpha"],
        margin: float = DEFAULTS["margin"],
        frames: int = DEFAULTS["frames"],
        hold: int = DEFAULTS["hold"],
        image_only: bool = False,
    ) -> None:
        if not 0 < alpha <= 1 or not 0 <= margin < 1 or frames < 1 or hold < 0:
            raise ValueError(f"steady count settings out of range: {alpha=} {margin=} {frames=} {hold=}")
        self.alpha, self.margin, self.frames, self.hold = float(alpha), float(margin), int(frames), int(hold)
        self.image_only = image_only
        self._model: object | None = None
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new source, a new model)."""
        self._avg: np.ndarray | None = None
        self.count: int | None = None
        self._candidate: int | None = None
        self._run = 0  # frames the candidate has led
        self._missed = 0  # frames without evidence in a row
        self._since = 0

    def clean_latency(self) -> int:
        """Frames after which a clean change (probability 1 → 0 and 0 → 1) is shown."""
        probe = SteadyCount(self.alpha, self.margin, self.frames, self.hold)
        probe.update([1.0, 0, 0, 0, 0, 0])
        for _ in range(probe.frames):  # the first count settles
            probe.update([1.0, 0, 0, 0, 0, 0])
        for n in range(1, 1000):
            if probe.update([0, 1.0, 0, 0, 0, 0]).count == 1:
                return n
        raise RuntimeError("never follows")  # pragma: no cover — margin < 1 always follows

    def update(self, probs: Sequence[float] | np.ndarray | None, hand: bool | None = True) -> Steady:
        """One frame: its calibrated probabilities (None: no prediction at all) and
        whether a hand was found in it (None: the model has no hand detector)."""
        before = self.count
        evidence = probs is not None and (hand is not False or self.image_only)
        if not evidence:
            self._missed += 1
            if self._missed > self.hold:
                self._avg, self.count, self._candidate, self._run = None, None, None, 0
        else:
            self._missed = 0
            p = np.asarray(probs, dtype=np.float64)
            self._avg = p.copy() if self._avg is None else self.alpha * p + (1 - self.alpha) * self._avg
            self._decide(self._avg)
        self._since = self._since + 1 if self.count == before else 1
        return Steady(
            self.count,
            None if self._avg is None else [float(x) for x in self._avg],
            self.count != before,
            bool(evidence),
            self._since,
        )

    def smooth(self, p: Any, threshold: float, model: object | None = None) -> Any:
        """A prediction (``model.Prediction``: label, confidence, probs, unsure, hand_found)
        with the steady count in place of its own label, and the averaged probabilities;
        as it came while nothing is settled (the first frames, or no hand for good). A
        ``model`` other than the last one's starts afresh (a retrained model)."""
        if model is not self._model:
            self.reset()
            self._model = model
        s = self.update(p.probs if p.label is not None else None, p.hand_found)
        if s.count is None or s.probs is None:
            return p
        conf = s.probs[s.count]
        return replace(p, label=s.count, confidence=conf, probs=s.probs, unsure=conf < threshold)

    def _decide(self, avg: np.ndarray) -> None:
        leader = int(avg.argmax())
        if leader == self.count:
            self._candidate, self._run = None, 0
            return
        # Nothing shown yet: the leader needs only to stay the leader for ``frames`` frames.
        ahead = self.count is None or avg[leader] - avg[self.count] >= self.margin
        if not ahead:
            self._candidate, self._run = None, 0
            return
        self._run = self._run + 1 if leader == self._candidate else 1
        self._candidate = leader
        if self._run >= self.frames:
            self.count, self._candidate, self._run = leader, None, 0

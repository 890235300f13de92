"""The live view's loop (core: no Textual, no store): for the newest frame of a source,
find the hand and move the capture square (when it follows the hand), cut the square out
and predict it, then smooth the count; then the newest frame again.

Frames that arrive meanwhile are skipped, never queued, so the view never lags behind.
The app runs ``LiveLoop.run`` on a thread of its own and draws each ``Step``; a test or a
script calls ``step()`` itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fingertui.learn.boxes import Box, centred_square, crop, hand_in_box
from fingertui.live.camera import FrameSource
from fingertui.live.steady import SteadyCount
from fingertui.live.tracking import Detector, HandTracker, Track

if TYPE_CHECKING:
    from fingertui.learn.hands import Hand
    from fingertui.learn.model import Model, Prediction


@dataclass
class Framing:
    """Where the capture square goes in a frame: what the user set on the capture screen.
    Read by the loop's thread while the screen changes it: each field is one value."""

    mirror: bool = True  # the view (and what a capture stores) is the frame mirrored
    follow: bool = True  # the square follows the hand, when a hand is in view
    whole: bool = False  # the fixed square is the whole image
    size: float = 0.6  # the fixed square's side, × the frame's shorter side

    def view(self, frame: np.ndarray) -> np.ndarray:
        """The frame as the user sees it."""
        return frame[:, ::-1] if self.mirror else frame

    def square(self, shape: tuple[int, ...], track: Track | None) -> Box:
        """The capture square in a view of ``shape``: around the hand when it follows the
        hand and one is in view, else the whole image or the fixed centred square."""
        if self.follow and track is not None and track.box is not None:
            return track.box
        if self.whole:
            return (0, 0, shape[1], shape[0])
        return centred_square(shape, self.size)


@dataclass(frozen=True)
class Framed:
    """A view cut to its capture square."""

    track: Track | None  # where the tracker saw the hand (None: no tracking)
    box: Box  # the square, in view pixels
    crop: np.ndarray  # its pixels
    hand: Hand | None  # the tracked hand in the square's coordinates; None: none found


def place_square(view: np.ndarray, framing: Framing, tracker: HandTracker | None) -> Framed:
    """Track the hand in ``view`` (with ``tracker``), place the square, cut it out."""
    track = tracker.update(view) if tracker is not None else None
    box = framing.square(view.shape, track)
    hand = hand_in_box(track.hand, box) if track is not None and track.hand is not None else None
    return Framed(track, box, crop(view, box), hand)


@dataclass(frozen=True)
class Step:
    """One pass of the loop."""

    frame_no: int  # the source's number of the frame
    framed: Framed
    model: Model | None  # what predicted it (None: no model yet, nothing predicted)
    prediction: Prediction | None  # the model's answer, the steady count in its label


def pose_tracker() -> HandTracker:
    """The live view's hand tracker: the hand-pose detector in tracking mode."""
    from fingertui.learn.streams import PoseStream

    detector = PoseStream().detector(tracking=True)
    if not isinstance(detector, Detector):
        raise TypeError(f"{type(detector).__name__} cannot find hands")
    return HandTracker(detector)


class LiveLoop:
    """track → square → crop → predict on the newest frame of ``source``.

    ``make_tracker`` builds the hand tracker on first need (a MediaPipe graph: on the
    loop's thread, not the caller's); None when hand pose cannot run here, and the square
    never follows the hand. ``model`` may be replaced at any time, from any thread (a
    retrained run); None stops predicting while the square still follows the hand. Live
    video gets the steady count (steady.py); a slideshow of photos (``source.stills``) is
    shown as each photo is predicted."""

    def __init__(
        self,
        source: FrameSource,
        framing: Framing,
        make_tracker: Callable[[], HandTracker] | None = pose_tracker,
        steady: SteadyCount | None = None,
    ) -> None:
        self.source = source
        self.framing = framing
        self.make_tracker = make_tracker
        self.steady = steady if steady is not None or source.stills else SteadyCount(image_only=True)
        self.model: Model | None = None
        self.track: Track | None = None  # the newest frame's, read when painting
        self.predictions_per_s = 0.0
        self._tracker: HandTracker | None = None
        self._last: tuple[int, Model | None] | None = None  # (frame, model) of the last step
        self._done = 0
        self._t0 = time.monotonic()
        self.busy_since = 0.0  # when the latest step had tracked its frame

    @property
    def follows(self) -> bool:
        """Whether the square follows the hand now (hand pose runs, and it is switched on)."""
        return self.framing.follow and self.make_tracker is not None

    def step(self) -> Step | None:
        """One pass on the newest frame; None when there is none the current model has not
        seen (a frame already seen is seen again only for a model that has not seen it: a
        still picture, or a slideshow, when the model has just loaded)."""
        got = self.source.latest()
        model = self.model
        if got is None or self._last == (got[0], model):
            return None
        self._last = (got[0], model)
        view = np.ascontiguousarray(self.framing.view(got[1]))
        tracker = None
        if self.follows and self.make_tracker is not None:
            if self._tracker is None:
                self._tracker = self.make_tracker()
            tracker = self._tracker
        framed = place_square(view, self.framing, tracker)
        self.track = framed.track
        self.busy_since = time.monotonic()  # predictions, and tracking alone, yield to training
        if model is None:
            return Step(got[0], framed, None, None)
        if framed.track is not None and model.uses_pose:
            p = model.predict_image(framed.crop, hand=framed.hand, hand_known=True)
        else:  # the model finds the hand in the square itself
            p = model.predict_image(framed.crop, tracking=True)
        if self.steady is not None:
            p = self.steady.smooth(p, model.threshold, model=model)
        self._count()
        return Step(got[0], framed, model, p)

    def _count(self) -> None:
        self._done += 1
        now = time.monotonic()
        if now - self._t0 >= 1.0:
            self.predictions_per_s = self._done / (now - self._t0)
            self._done, self._t0 = 0, now

    def run(
        self,
        show: Callable[[Step], None],
        stopped: Callable[[], bool],
        slow: Callable[[], bool] = lambda: False,
        slow_every_s: float = 0.5,
    ) -> None:
        """Step until ``stopped()``, handing each prediction to ``show``. While ``slow()``
        (a training run has the cores) it predicts at most every ``slow_every_s``."""
        while not stopped():
            if slow() and time.monotonic() - self.busy_since < slow_every_s:
                time.sleep(0.02)
                continue
            step = self.step()
            if step is None:
                time.sleep(0.01)
            elif step.prediction is not None:
                show(step)

"""The live view's loop (live/loop.py) driven without the app: a scripted camera, a hand
detector and a model; what each step frames, predicts and shows."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

import numpy as np
import pytest

from fingertui.learn.boxes import centred_square, crop_box
from fingertui.learn.hands import Hand
from fingertui.learn.model import Prediction
from fingertui.live.camera import ScriptedSource
from fingertui.live.loop import Framing, LiveLoop, Step, place_square
from fingertui.live.tracking import HandTracker
from tests.helpers import wait_until
from tests.test_pose import TWO
from tests.test_tui import frames


class Video(ScriptedSource):
    """Scripted frames taken as live video (the steady count applies)."""

    stills = False


@dataclass
class Call:
    crop: np.ndarray
    hand: Hand | None
    hand_known: bool
    tracking: bool


class Answers:
    """A stand-in model: answers ``counts`` in turn (one per call) and records each call."""

    threshold = 0.5

    def __init__(self, counts: list[int | None], uses_pose: bool = True) -> None:
        self.counts = counts
        self.uses_pose = uses_pose
        self.calls: list[Call] = []

    def predict_image(
        self, img: np.ndarray, *, tracking: bool = False, hand: Hand | None = None, hand_known: bool = False
    ) -> Prediction:
        label = self.counts[len(self.calls) % len(self.counts)]
        self.calls.append(Call(img, hand, hand_known, tracking))
        if label is None:
            return Prediction(None, 0.0, [1 / 6] * 6, True, hand_found=False, note="no hand found")
        probs = [0.02] * 6
        probs[label] = 0.9
        return Prediction(label, 0.9, probs, False, hand_found=True)


class HandAt:
    """A detector that finds TWO (the synthetic hand) placed in each frame, or nothing."""

    def __init__(self, found: bool = True) -> None:
        self.found = found
        self.seen: list[np.ndarray] = []

    def detect(self, rgb: np.ndarray) -> list[Hand]:
        self.seen.append(rgb)
        if not self.found:
            return []
        w, h = rgb.shape[1], rgb.shape[0]
        return [replace(TWO, image_size=(w, h))]


def test_each_frame_is_predicted_once_and_a_new_model_predicts_it_again() -> None:
    shots = frames(3)
    source = ScriptedSource(shots)  # holds a frame until advanced: a still camera
    loop = LiveLoop(source, Framing(mirror=False, follow=False), make_tracker=None)
    assert loop.step() is not None and loop.step() is None  # no model: the frame is looked at once
    first = Answers([2])
    loop.model = first
    step = loop.step()
    assert step is not None and step.model is first and step.prediction is not None
    assert step.prediction.label == 2 and step.frame_no == 0
    assert loop.step() is None  # the same frame, the same model: nothing to do
    source.advance()
    assert loop.step().frame_no == 1
    second = Answers([4])
    loop.model = second  # a retrained run: the frame on show is predicted again
    again = loop.step()
    assert again.frame_no == 1 and again.model is second and again.prediction.label == 4
    assert len(first.calls) == 2 and len(second.calls) == 1


def test_a_busy_loop_skips_frames_instead_of_queueing_them() -> None:
    source = ScriptedSource(frames(10), hold=False)  # a new frame at every look
    loop = LiveLoop(source, Framing(follow=False), make_tracker=None)
    loop.model = Answers([1])
    numbers = [loop.step().frame_no for _ in range(3)]
    source.index = 7  # the camera moved on while the model was busy
    numbers.append(loop.step().frame_no)
    assert numbers == [0, 1, 2, 7]


def test_the_fixed_square_is_cut_from_the_view_as_the_user_sees_it() -> None:
    shot = frames(1)[0]
    framing = Framing(mirror=True, follow=False, size=0.5)
    model = Answers([3], uses_pose=False)
    loop = LiveLoop(ScriptedSource([shot]), framing, make_tracker=None)
    loop.model = model
    step = loop.step()
    view = shot[:, ::-1]
    assert step.framed.box == centred_square(shot.shape, 0.5)
    x0, y0, x1, y1 = step.framed.box
    assert np.array_equal(model.calls[0].crop, view[y0:y1, x0:x1])
    assert model.calls[0].tracking and not model.calls[0].hand_known  # the model finds the hand itself
    framing.whole = True
    assert framing.square(shot.shape, None) == (0, 0, shot.shape[1], shot.shape[0])


def test_the_square_follows_the_hand_and_the_model_gets_the_hand_in_the_square() -> None:
    shot = frames(1)[0]
    detector = HandAt()
    model = Answers([2])
    loop = LiveLoop(ScriptedSource([shot]), Framing(), make_tracker=lambda: HandTracker(detector))
    loop.model = model
    step = loop.step()
    view = shot[:, ::-1]
    assert np.array_equal(detector.seen[0], view)  # the tracker sees the mirrored view
    hand = replace(TWO, image_size=(shot.shape[1], shot.shape[0]))
    box = crop_box(hand)
    assert step.framed.box == box and loop.track is step.framed.track and loop.track.box == box
    x0, y0, x1, y1 = box
    call = model.calls[0]
    assert np.array_equal(call.crop, view[y0:y1, x0:x1]) and call.hand_known
    # The hand the model gets is in the square's pixels: the same points, moved by its corner.
    np.testing.assert_allclose(call.hand.pixels + (x0, y0), hand.pixels, atol=1e-3)


def test_without_a_hand_the_square_waits_in_the_middle_and_the_model_is_told_none() -> None:
    shot = frames(1)[0]
    model = Answers([None])
    loop = LiveLoop(ScriptedSource([shot]), Framing(size=0.6), make_tracker=lambda: HandTracker(HandAt(found=False)))
    loop.model = model
    step = loop.step()
    assert step.framed.track is not None and step.framed.track.box is None  # looked, found none
    assert step.framed.box == centred_square(shot.shape, 0.6)
    assert model.calls[0].hand is None and model.calls[0].hand_known
    assert step.prediction.label is None and "no hand" in step.prediction.note


def test_the_tracker_is_made_once_on_first_need_and_not_while_the_square_is_fixed() -> None:
    made: list[HandTracker] = []

    def make() -> HandTracker:
        made.append(HandTracker(HandAt()))
        return made[-1]

    source = ScriptedSource(frames(3), hold=False)
    framing = Framing(follow=False)
    loop = LiveLoop(source, framing, make_tracker=make)
    loop.step()
    assert not made and loop.track is None
    framing.follow = True  # f: the square follows the hand again
    loop.step()
    loop.step()
    assert len(made) == 1 and loop.track is not None


def test_live_video_shows_the_steady_count_and_a_slideshow_each_photos_own() -> None:
    flicker = [3, 3, 3, 3, 2, 3, 3, 2, 3]  # one count, with single-frame flickers to 2
    video = LiveLoop(Video(frames(9), hold=False), Framing(follow=False), make_tracker=None)
    video.model = Answers(flicker)
    shown = [video.step().prediction.label for _ in flicker]
    assert shown == [3] * len(flicker)  # the flickers never reach the screen
    photos = LiveLoop(ScriptedSource(frames(9), hold=False), Framing(follow=False), make_tracker=None)
    photos.model = Answers(flicker)
    assert [photos.step().prediction.label for _ in flicker] == flicker


def test_counter_and_app_frame_alike_the_whole_frame_when_no_hand() -> None:
    shot = frames(1)[0]
    tracker = HandTracker(HandAt(found=False))
    framed = place_square(shot, Framing(mirror=False, whole=True), tracker)
    assert framed.box == (0, 0, shot.shape[1], shot.shape[0]) and framed.hand is None
    assert np.array_equal(framed.crop, shot)


@pytest.mark.slow
@pytest.mark.slow
def test_run_shows_every_prediction_and_predicts_slower_while_told_to() -> None:
    loop = LiveLoop(ScriptedSource(frames(50), hold=False), Framing(follow=False), make_tracker=None)
    loop.model = Answers([1])
    shown: list[tuple[float, Step]] = []
    stop = threading.Event()
    slow = threading.Event()
    thread = threading.Thread(target=loop.run, args=(lambda s: shown.append((time.monotonic(), s)), stop.is_set))
    thread.start()
    try:
        wait_until(lambda: len(shown) >= 5, 10, every=0.01)
        assert all(s.prediction.label == 1 for _, s in shown)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()

    shown.clear()
    stop.clear()
    slow.set()
    thread = threading.Thread(
        target=loop.run,
        kwargs={
            "show": lambda s: shown.append((time.monotonic(), s)),
            "stopped": stop.is_set,
            "slow": slow.is_set,
            "slow_every_s": 0.2,
        },
    )
    thread.start()
    time.sleep(1.1)
    stop.set()
    thread.join(5)
    gaps = np.diff([t for t, _ in shown])
    assert 2 <= len(shown) <= 7 and (gaps >= 0.19).all()


@pytest.fixture
def trained(store, tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    """A workspace of stand-in hands (bars) with a run trained on the stand-in hand detector's
    landmarks and the dev-random backbone, and that run's model."""
    from fingertui.data.importer import import_paths
    from fingertui.learn import backbones
    from fingertui.learn.heads import TrainConfig
    from fingertui.learn.model import Model
    from fingertui.train.pipeline import train
    from tests.conftest import write_bars

    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    monkeypatch.setenv("FINGERTUI_DEV_HANDS", "1")
    import_paths(store, [write_bars(tmp_path / "bars", 8)])
    run = train(store, features="both", backbone="dev-random", cfg=TrainConfig(views=1, max_epochs=40), flags=False)
    return Model.for_run(store, run.run)


@pytest.mark.slow
@pytest.mark.slow
def test_a_trained_model_counts_the_tracked_hand_in_the_square(trained) -> None:  # noqa: ANN001
    from fingertui.live.loop import pose_tracker
    from tests.conftest import finger_image

    assert trained.uses_pose
    shots = [np.asarray(finger_image(k, 900 + k).resize((320, 240))) for k in (4, 1)]
    loop = LiveLoop(ScriptedSource(shots), Framing(mirror=False), make_tracker=pose_tracker)
    loop.model = trained
    for k, shot in zip((4, 1), shots, strict=True):
        step = loop.step()
        assert step.framed.track is not None and step.framed.track.hand is not None
        framed = step.framed
        assert framed.box != centred_square(shot.shape, 0.6)  # framed on the hand
        want = trained.predict_image(framed.crop, hand=framed.hand, hand_known=True)
        assert step.prediction == want  # a slideshow: the model's own answer
        assert step.prediction.label == k and step.prediction.hand_found
        loop.source.advance()

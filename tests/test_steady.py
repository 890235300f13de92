"""The steady count: no flicker on a wavering hand, a real change followed within the
documented latency, "no hand" said explicitly."""

import numpy as np
import pytest

from fingertui.live.steady import SteadyCount


def onehot(k: int, p: float = 1.0) -> list[float]:
    out = [(1 - p) / 5] * 6
    out[k] = p
    return out


def test_a_clean_change_is_followed_after_the_documented_latency():
    s = SteadyCount()
    assert s.clean_latency() == 4  # the module docstring promises 4 frames (160 ms at 25/s)
    shown = [s.update(onehot(2)).count for _ in range(5)]
    assert shown[:2] == [None, None] and shown[-1] == 2  # the first count settles after `frames`
    follow = [s.update(onehot(4)).count for _ in range(6)]
    assert follow.index(4) == 3 and follow[3:] == [4, 4, 4]


def test_a_wavering_hand_does_not_flicker_where_the_raw_argmax_does():
    rng = np.random.default_rng(0)
    s = SteadyCount()
    raw, shown = [], []
    for _ in range(200):
        # 3 and 4 close, 3 ahead on average: the raw argmax swaps often
        p = np.array([0.01, 0.01, 0.02, 0.5, 0.45, 0.01]) + rng.normal(0, 0.08, 6).clip(-0.2, 0.2)
        p = np.clip(p, 1e-3, None)
        p /= p.sum()
        raw.append(int(p.argmax()))
        shown.append(s.update(p).count)
    raw_changes = sum(a != b for a, b in zip(raw, raw[1:], strict=False))
    steady_changes = sum(a != b for a, b in zip(shown[5:], shown[6:], strict=False))
    assert raw_changes > 30
    assert steady_changes <= 2


def test_no_hand_holds_briefly_then_says_so_and_starts_afresh():
    s = SteadyCount(hold=3)
    for _ in range(5):
        s.update(onehot(5))
    assert s.count == 5
    for _ in range(3):  # a missed detection or three: the count holds
        r = s.update(None, hand=False)
        assert r.count == 5 and not r.hand
    r = s.update(onehot(1), hand=False)  # an image-only answer is not evidence by default
    assert r.count is None and r.changed and r.probs is None
    got = [s.update(onehot(2)).count for _ in range(3)]
    assert got == [None, None, 2]  # afresh: no margin over an old count to beat


def test_image_only_frames_count_when_asked_and_models_without_a_detector_always_do():
    s = SteadyCount(image_only=True)
    assert [s.update(onehot(1), hand=False).count for _ in range(3)][-1] == 1
    t = SteadyCount()
    assert [t.update(onehot(1), hand=None).count for _ in range(3)][-1] == 1


def test_settings_out_of_range_are_refused():
    with pytest.raises(ValueError):
        SteadyCount(alpha=0)
    with pytest.raises(ValueError):
        SteadyCount(frames=0)


def test_smooth_puts_the_steady_count_in_a_prediction_and_starts_afresh_for_a_new_model():
    from fingertui.learn.model import Prediction

    def pred(k: int, hand: bool = True) -> Prediction:
        probs = onehot(k, 0.9)
        return Prediction(k, 0.9, probs, False, hand, None, "", None)

    s = SteadyCount()
    a, b = object(), object()
    first = s.smooth(pred(2), 0.5, model=a)
    assert first.label == 2 and first.probs == onehot(2, 0.9)  # nothing settled yet: as it came
    for _ in range(3):
        shown = s.smooth(pred(2), 0.5, model=a)
    assert shown.label == 2
    blip = s.smooth(pred(5), 0.95, model=a)  # one odd frame does not move the shown count
    assert blip.label == 2 and blip.unsure and abs(sum(blip.probs) - 1) < 1e-9
    fresh = s.smooth(pred(4), 0.5, model=b)  # a retrained model: its own count at once
    assert fresh.label == 4

"""Holding a digit key, and taking back a whole burst or hold in one step (core, no UI)."""

from pathlib import Path

import numpy as np
import pytest

from fingertui.data.capture import HOLD_GAP_S, CaptureSession, HoldPacer, id_span
from tests.conftest import noise_image


def play(pacer: HoldPacer, label: int, start: float, every: float, n: int) -> int:
    """Key events of one held key, ``every`` seconds apart; how many captured."""
    return sum(pacer.press(label, start + k * every) for k in range(n))


@pytest.mark.parametrize("repeat_hz", [30.0, 60.0, 20.0])
def test_a_hold_captures_four_a_second_whatever_the_repeat_rate(repeat_hz):
    pacer = HoldPacer()
    n = int(3 * repeat_hz)  # three seconds of key repeat
    got = play(pacer, 3, 100.0, 1 / repeat_hz, n)
    held = (n - 1) / repeat_hz
    assert got == int(held * 4) + 1  # one at once, then one every 0.25 s: steady, no drift
    assert pacer.captured == got and pacer.label == 3


def test_a_slow_repeat_captures_every_key_event():
    pacer = HoldPacer()
    assert play(pacer, 2, 0.0, 0.5, 6) == 6  # 2 events a second: below the cap, none dropped


def test_a_pause_or_another_key_starts_a_new_hold_and_a_tap_always_captures():
    pacer = HoldPacer()
    assert pacer.press(1, 0.0)
    first = pacer.key
    assert not pacer.press(1, 0.1)  # a repeat too soon
    assert pacer.press(1, 0.1 + HOLD_GAP_S + 0.01)  # let go and pressed again: a new hold
    second = pacer.key
    assert pacer.press(4, 1.0)  # another digit: a new hold at once
    assert len({first, second, pacer.key}) == 3 and pacer.captured == 1


def test_id_span_names_consecutive_ids_as_a_range():
    assert id_span([43, 41, 42]) == "41-43"
    assert id_span([4, 9]) == "4, 9"
    assert id_span(list(range(1, 20, 2))).endswith("(10 in all)")


def crops(n: int) -> list[np.ndarray]:
    return [np.asarray(noise_image(500 + k, 64)) for k in range(n)]


def test_undo_takes_back_a_whole_hold_in_one_step(store):
    session = CaptureSession(store)
    single = session.capture(crops(1)[0], 2)
    held = [session.capture(c, 3, burst="hold1") for c in crops(6)[1:]]
    paths = [store.ws.abs(s.path) for s in held]
    assert {s.group_key for s in held} == {held[0].group_key}  # one pose: one split group
    removed = session.undo_last()
    assert sorted(s.id for s in removed) == [s.id for s in held]
    assert [s.id for s in store.samples()] == [single.id]
    assert not any(p.exists() for p in paths)  # the files went to the trash, not deleted
    assert all((store.ws.trash_dir / p.name).exists() for p in paths)
    assert not store.journal.has_pending()
    # History: every add of the hold is marked undone, so `fingertui undo` skips them.
    assert all(e["undone"] for s in held for e in store.label_events(s.id))
    assert [s.id for s in session.undo_last()] == [single.id]  # the next u: the single one
    assert session.undo_last() == [] and store.count() == 0


def test_undo_skips_frames_deleted_elsewhere(store):
    session = CaptureSession(store)
    held = [session.capture(c, 3, burst="hold1") for c in crops(3)]
    store.delete(held[1].id)  # pruned in the gallery meanwhile
    assert sorted(s.id for s in session.undo_last()) == [held[0].id, held[2].id]
    assert store.count() == 0


def test_taking_back_a_hold_is_all_or_nothing(store, monkeypatch):
    session = CaptureSession(store)
    held = [session.capture(c, 3, burst="hold1") for c in crops(4)]
    real = store.history.mark_add_undone
    calls = []

    def fail_on_third(db, sid):
        calls.append(sid)
        if len(calls) == 3:
            raise RuntimeError("power cut")
        real(db, sid)

    monkeypatch.setattr(store.history, "mark_add_undone", fail_on_third)
    with pytest.raises(RuntimeError):
        store.remove_captures([s.id for s in held])
    assert [s.id for s in store.samples()] == [s.id for s in held]  # every row back
    assert all(Path(store.ws.abs(s.path)).exists() for s in held)  # every file in place
    assert not store.journal.has_pending()

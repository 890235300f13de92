"""Capture like Teachable Machine: hold a key to record, undo a whole take, the sample id
in the toast, the big predicted digit, labelling before any model exists."""

import numpy as np
import pytest
from PIL import Image

from fingertui.learn.model import Model
from fingertui.live.camera import ScriptedSource
from fingertui.review import queue
from fingertui.tui.app import make_app
from fingertui.tui.screens.capture import BURST_FRAMES
from fingertui.tui.widgets.panels import PredictionPanel
from tests.conftest import finger_image
from tests.helpers import wait_for
from tests.test_tui import stored


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        np.asarray(Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).resize((320, 240)))
        for _ in range(n)
    ]


def toasts(app) -> list[str]:  # noqa: ANN001
    """Every toast the app has shown (kept here: Textual drops expired ones, and a busy
    machine can take longer than a toast's life between two steps)."""
    if not hasattr(app, "_seen_toasts"):
        app._seen_toasts = []
        real = app.notify

        def notify(message, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
            app._seen_toasts.append(str(message))
            return real(message, *a, **k)

        app.notify = notify
    return app._seen_toasts


def screen_text(widget) -> str:  # noqa: ANN001
    """What a widget shows, as plain text, line by line."""
    return "\n".join(widget.render_line(y).text for y in range(widget.size.height))


@pytest.mark.slow
async def test_holding_a_digit_records_steadily_with_a_live_counter_and_u_takes_the_hold_back(ws):
    app = make_app(ws, ScriptedSource(frames(70)))
    toasts(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.capture_screen
        now = [1000.0]
        screen.clock = lambda: now[0]  # key repeat at a known pace, whatever the machine's load
        await pilot.press("1")  # an earlier single capture: u must not take it back
        app.source.advance()
        now[0] += 5
        start = now[0]
        for k in range(60):  # two seconds of a held 3 at 30 repeats a second
            now[0] = start + k / 30
            await pilot.press("3")
            app.source.advance()
        await stored(app)
        held = [s for s in app.store.samples() if s.label == 3]
        assert len(held) == 8  # at most 4 a second: at 0, 0.25, …, 1.75 s
        assert len({s.sha256 for s in held}) == 8 and len({s.group_key for s in held}) == 1
        counter = str(screen.query_one("#hold").render())
        assert "holding 3: 8 captured" in counter
        now[0] += 1.0  # let go: no repeat for longer than a repeat gap
        await wait_for(pilot, lambda: any(t.startswith("held 3: 8 captured") for t in toasts(app)))
        ids = sorted(s.id for s in held)
        assert any(f"samples {ids[0]}-{ids[-1]}" in t for t in toasts(app))
        assert "holding" not in str(screen.query_one("#hold").render())
        await pilot.press("u")
        await stored(app)
        assert [s.label for s in app.store.samples()] == [1]  # the whole hold, in one undo
        assert any("took back the last 8 captures (3)" in t for t in toasts(app))
        assert not any(ws.abs(s.path).exists() for s in held)


@pytest.mark.slow
async def test_a_still_picture_is_not_stored_twice_and_the_app_says_so(ws):
    app = make_app(ws, ScriptedSource(frames(1)))  # a paused camera: the same frame every time
    toasts(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.capture_screen
        now = [1000.0]
        screen.clock = lambda: now[0]
        for k in range(12):  # a held 2 over a still picture
            now[0] = 1000.0 + k / 30
            await pilot.press("2")
        await stored(app)
        [s] = app.store.samples()
        assert "holding 2: 1 captured (1 unchanged frames skipped)" in str(screen.query_one("#hold").render())
        now[0] += 5
        await pilot.press("2")  # a tap later: the same frame again
        await stored(app)
        assert app.store.count() == 1
        assert any(t.startswith(f"this frame is already stored as sample {s.id}") for t in toasts(app))


@pytest.mark.slow
async def test_u_after_a_burst_takes_back_the_whole_burst(ws):
    app = make_app(ws, ScriptedSource(frames(120), hold=False))
    toasts(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("b", "2")
        await wait_for(
            pilot, lambda: any(t.startswith(f"burst: {BURST_FRAMES} frames captured as 2") for t in toasts(app))
        )
        assert app.store.count() == BURST_FRAMES
        await pilot.press("u")
        await stored(app)
        assert app.store.count() == 0
        assert any(f"took back the last {BURST_FRAMES} captures (2)" in t for t in toasts(app))


@pytest.mark.slow
async def test_keys_are_answered_while_a_capture_is_being_stored(ws):
    import threading

    app = make_app(ws, ScriptedSource(frames(3)))
    toasts(app)
    stored_may_finish = threading.Event()
    capture = app.capture.capture

    def slow_capture(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        stored_may_finish.wait(10)  # a slow disk, a busy store
        return capture(*args, **kwargs)

    app.capture.capture = slow_capture
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("4", "m")
        await pilot.pause()
        # The mirror key was handled while the capture waits; nothing is stored yet.
        assert "mirror off" in str(app.screen.query_one("#status").render())
        assert app.store.count() == 0
        stored_may_finish.set()
        await stored(app)
        [s] = app.store.samples()
        assert s.label == 4 and any(t.startswith(f"captured sample {s.id} as 4") for t in toasts(app))


@pytest.mark.slow
async def test_the_capture_toast_names_the_sample_id(ws):
    app = make_app(ws, ScriptedSource(frames(3)))
    toasts(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("4")
        await stored(app)
        app.source.advance()
        await pilot.press("space")
        await stored(app)
        labelled, unlabelled = app.store.samples()
        assert any(t.startswith(f"captured sample {labelled.id} as 4") for t in toasts(app))
        assert any(t.startswith(f"captured sample {unlabelled.id}, unlabelled") for t in toasts(app))


async def test_the_predicted_digit_is_large_with_its_confidence_under_it():
    from textual.app import App
    from textual.widgets import Digits

    class Host(App):
        def compose(self):
            yield PredictionPanel(id="prediction")

    app = Host()
    async with app.run_test(size=(60, 20)) as pilot:
        panel = app.query_one(PredictionPanel)
        probs = [0.01, 0.02, 0.05, 0.87, 0.03, 0.02]
        panel.show(3, 0.87, probs, False, 0.6, "starter model", [0.1, 0.9, 0.9, 0.95, 0.2])
        await pilot.pause()
        digit = panel.query_one(Digits)
        confidence = panel.query_one("#confidence")
        assert digit.display and digit.value == "3" and digit.region.height == 3  # three rows tall
        assert confidence.region.y == digit.region.y + digit.region.height  # right under it
        assert "87% sure" in str(confidence.render())
        detail = screen_text(panel.query_one("#detail"))
        assert "starter model" in detail and "fingers" in detail and "87.0%" in detail
        panel.show(2, 0.41, probs, True, 0.6)
        await pilot.pause()
        assert digit.value == "2" and "41% unsure" in str(confidence.render()) and digit.has_class("unsure")
        panel.show_waiting("no hand found - show a hand in the square")
        await pilot.pause()
        assert not digit.display and "no hand found" in str(confidence.render())


def test_unlabelled_items_exist_before_any_run(store):
    from fingertui.data.capture import CaptureSession

    session = CaptureSession(store)
    a = session.capture(np.asarray(finger_image(2, 1)), None)
    session.capture(np.asarray(finger_image(3, 2)), 3)
    items = queue.unlabelled_items(store)
    assert [it.sample_id for it in items] == [a.id] and items[0].suggested is None and items[0].label is None


@pytest.mark.slow
async def test_review_without_a_run_shows_unlabelled_captures_with_the_starters_count(ws, monkeypatch):
    monkeypatch.setenv("FINGERTUI_DEV_HANDS", "1")  # the stand-in hand detector: the starter runs
    shots = [np.asarray(finger_image(k, 30 + k).resize((320, 240))) for k in (2, 4)]
    app = make_app(ws, ScriptedSource(shots))
    toasts(app)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        for _ in shots:
            await pilot.press("space")
            await stored(app)
            app.source.advance()
        first, second = app.store.samples()
        expected = Model.starter().predict_paths([ws.abs(first.path)])[0]
        await pilot.press("r")
        await wait_for(pilot, lambda: "left" in str(app.screen.query_one("#counter").render()))
        counter = str(app.screen.query_one("#counter").render())
        assert "2 left" in counter and f"sample {first.id}" in counter
        assert f"suggested {expected.label}" in counter
        assert f"starter model counts {expected.label}" in str(app.screen.query_one("#why").render())
        await pilot.press("5")
        await pilot.pause()
        assert app.store.get(first.id).label == 5 and app.store.get(first.id).split in ("train", "test")
        assert f"sample {second.id}" in str(app.screen.query_one("#counter").render())

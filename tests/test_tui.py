"""The capture screen, driven with Pilot and a scripted camera."""

import numpy as np
import pytest
from PIL import Image

from fingertui.data.importer import import_paths
from fingertui.learn import backbones
from fingertui.learn.heads import TrainConfig
from fingertui.learn.model import Model
from fingertui.live.camera import DemoSource, ScriptedSource, crop_square, open_source
from fingertui.train.pipeline import train_run
from fingertui.tui.app import make_app
from fingertui.tui.screens.capture import BURST_FRAMES
from fingertui.tui.widgets.panels import PredictionPanel
from tests.conftest import finger_image, write_bars
from tests.helpers import wait_for


async def stored(app) -> None:  # noqa: ANN001
    """Wait until every capture and undo asked for so far is stored (off the UI thread)."""
    writes = [w for w in app.workers if w.group == "store"]
    if writes:  # (an empty list would wait for every worker, the live view's among them)
        await app.workers.wait_for_complete(writes)


def frames(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return [
        np.asarray(Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).resize((320, 240)))
        for _ in range(n)
    ]


@pytest.mark.slow
async def test_digit_captures_the_square_with_that_label(ws):
    shots = frames()
    app = make_app(ws, ScriptedSource(shots))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("3")
        await stored(app)
        [s] = app.store.samples()
        assert s.label == 3 and s.source == "capture" and s.session == app.capture.id and s.split in ("train", "test")
        saved = np.asarray(Image.open(ws.abs(s.path)))
        assert np.array_equal(saved, crop_square(shots[0], 0.6, mirror=True))
        await pilot.press("m", "minus")  # mirror off, smaller square: what is saved follows
        await pilot.pause()
        app.source.advance()
        await pilot.press("5")
        await stored(app)
        s5 = app.store.samples()[-1]
        assert np.array_equal(np.asarray(Image.open(ws.abs(s5.path))), crop_square(shots[1], 0.55, mirror=False))


@pytest.mark.slow
async def test_space_stores_unlabelled_and_undo_removes_it_exactly(ws):
    app = make_app(ws, ScriptedSource(frames()))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("space")
        await stored(app)
        [s] = app.store.samples()
        assert s.label is None and s.split is None
        path = ws.abs(s.path)
        assert path.exists()
        await pilot.press("u")
        await stored(app)
        assert app.store.count() == 0 and not path.exists()


@pytest.mark.slow
async def test_burst_stores_eight_distinct_frames_in_one_group(ws):
    # 120 distinct frames, one per read: the 8 captures over 2 s each get a new frame.
    app = make_app(ws, ScriptedSource(frames(120), hold=False))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("b", "2")
        done = f"burst: {BURST_FRAMES} frames captured as 2"
        await wait_for(pilot, lambda: any(done in str(n.message) for n in app._notifications))
        samples = app.store.samples()
        assert len(samples) == BURST_FRAMES and {s.label for s in samples} == {2}
        assert len({s.sha256 for s in samples}) == BURST_FRAMES  # eight different frames, none dropped
        assert len({s.group_key for s in samples}) == 1 and len({s.split for s in samples}) == 1


def test_missing_camera_falls_back_to_demo_with_a_notice():
    src = open_source("webcam:9")
    try:
        assert isinstance(src, DemoSource) and "demo" in src.notice and "webcam" in src.notice
    finally:
        src.close()


@pytest.mark.slow
async def test_app_starts_on_demo_when_no_camera_and_says_so(ws):
    app = make_app(ws, "webcam:9")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: any("demo" in str(n.message) for n in app._notifications))
        assert isinstance(app.source, DemoSource)
        assert any("demo" in str(n.message) for n in app._notifications)
        assert "does not see it" in (app.pose_note or "")  # the drawn hand: pose says it is off
        await pilot.press("1")
        await stored(app)
        assert app.store.count() == 1


@pytest.mark.slow
async def test_prediction_panel_shows_the_active_runs_probabilities(ws, tmp_path, monkeypatch):
    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    from fingertui.data.store import Store

    write_bars(tmp_path / "bars", 6)
    store = Store(ws)
    import_paths(store, [tmp_path / "bars"])
    run = train_run(store, backbone="dev-random", cfg=TrainConfig(views=1, max_epochs=30))
    frame = np.asarray(finger_image(4, 777).resize((320, 240)))
    expected = Model.from_checkpoint(ws.abs(run.checkpoint)).predict_image(crop_square(frame, 0.6, True))
    app = make_app(ws, ScriptedSource([frame]))
    async with app.run_test(size=(120, 40)) as pilot:
        # The model and the hand tracker load first: slow on a busy machine.
        await wait_for(pilot, lambda: app.screen.query_one(PredictionPanel).shown is not None, seconds=120)
        label, probs, unsure = app.screen.query_one(PredictionPanel).shown
        assert label == expected.label and probs == pytest.approx(expected.probs, abs=1e-5)
        assert f"run {run.id}" in str(app.screen.query_one("#model").render())


@pytest.mark.slow
async def test_help_screen_lists_the_keys(ws):
    app = make_app(ws, ScriptedSource(frames()))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        text = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "burst" in text and "undo" in text and "mirror" in text
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "CaptureScreen"


@pytest.mark.slow
async def test_help_opened_and_closed_leaves_the_capture_screen_as_it_was(ws):
    import gc

    from textual._styles_cache import StylesCache
    from textual.widgets._footer import FooterKey

    app = make_app(ws, ScriptedSource(frames()))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()

        def footer_keys() -> list:
            return list(app.screen.query(FooterKey))

        def live_caches() -> int:
            gc.collect()
            return sum(1 for o in gc.get_objects() if type(o) is StylesCache)

        for _ in range(2):
            await pilot.press("question_mark", "question_mark")
        await pilot.pause()
        keys, caches = footer_keys(), live_caches()
        for _ in range(10):
            await pilot.press("question_mark")
            await pilot.pause()
            await pilot.press("question_mark")
            await pilot.pause()
        # The footer on return shows the same keys, not ten rebuilt copies of them ...
        assert footer_keys() == keys and "capture" in " ".join(str(k.render()) for k in keys)
        # ... and nothing that the ten help screens drew is kept.
        assert live_caches() <= caches + 5


@pytest.mark.slow
async def test_capture_keys_are_commands_in_the_palette(ws):
    app = make_app(ws, ScriptedSource(frames()))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Capture 0", "Capture 3", "Burst", "Undo", "Mirror", "Unlabelled", "Square +", "Help"} <= titles
        assert {"Train", "Review", "Results", "Runs"} <= titles  # app-wide keys too
        # Cancelling is offered only while a run is going on.
        assert "Cancel training" not in titles
        app.training = True
        assert "Cancel training" in {c.title for c in app.get_system_commands(app.screen)}
        app.training = False
        [cmd] = [c for c in app.get_system_commands(app.screen) if c.title == "Capture 3"]
        await cmd.callback()
        await pilot.pause()
        assert [s.label for s in app.store.samples()] == [3]


@pytest.mark.slow
async def test_every_screens_keys_are_commands_in_the_palette(ws):
    from fingertui.tui.screens.results import ResultsScreen
    from fingertui.tui.screens.review import ReviewScreen
    from fingertui.tui.screens.runs import RunsScreen

    def titles() -> dict[str, object]:
        return {c.title: c for c in app.get_system_commands(app.screen)}

    app = make_app(ws, ScriptedSource(frames()))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        for screen_cls, name in ((ReviewScreen, "Review"), (ResultsScreen, "Results"), (RunsScreen, "Runs")):
            await titles()[name].callback()
            await pilot.pause()
            assert isinstance(app.screen, screen_cls)
            got = titles()
            for b in screen_cls.BINDINGS:  # every key of the screen on show
                want = b.description if not b.key.isdigit() else f"{b.description.split()[0]} {b.key}"
                assert want.capitalize() in got, (screen_cls.__name__, want)
            await got["Back"].callback()  # runs the screen's own action, like esc
            await pilot.pause()
            assert app.screen.__class__.__name__ == "CaptureScreen"


async def test_training_bar_shows_phase_progress_and_hides():
    from textual.widgets import Label

    from fingertui.tui.widgets.panels import TrainingBar
    from tests.conftest import widget_app

    app = widget_app(TrainingBar)
    async with app.run_test(size=(100, 5)) as pilot:
        bar = app.query_one(TrainingBar)
        assert not bar.display
        bar.show_progress("embedding", 30, 120, 4.2)
        await pilot.pause()
        assert bar.display and (bar.k, bar.n) == (30, 120)
        text = " ".join(str(w.render()) for w in bar.query(Label))
        assert "embedding" in text and "30/120" in text and "4.2 s" in text
        bar.show_progress("training image", 3, 40, 6.0)  # a new phase: the bar starts again
        await pilot.pause()
        assert (bar.phase, bar.k, bar.n) == ("training image", 3, 40)
        assert "training image" in " ".join(str(w.render()) for w in bar.query(Label))
        bar.hide()
        await pilot.pause()
        assert not bar.display


@pytest.mark.slow
async def test_toasts_stay_above_the_training_bar_on_every_screen_while_it_trains(ws):
    from fingertui.tui.widgets.panels import TrainingBar

    app = make_app(ws, ScriptedSource(frames()))
    app.train_worker = lambda cancel: None  # the app's side of a run only: the bar and its ticker
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.pause()

        def gap(screen) -> int:  # noqa: ANN001
            """Rows between the bottom of the screen and the toasts."""
            return screen.query_one("ToastRack").styles.margin.bottom

        below = gap(app.screen)
        await pilot.press("t")
        app.notify("a toast while training")
        await pilot.pause()
        assert app.screen.query_one(TrainingBar).display and gap(app.screen) == below + 1
        await pilot.press("question_mark")  # a screen opened while it trains
        app.show_training("training image", 1, 9, 1.0)  # the next progress the run reports
        await pilot.pause()
        assert gap(app.screen) == below + 1
        await pilot.press("question_mark")
        app.training_over()
        await pilot.pause()
        assert gap(app.screen) == below


@pytest.mark.slow
async def test_the_square_follows_the_hand_and_captures_what_it_frames(ws, monkeypatch):
    # The stand-in detector finds a synthetic hand in any non-blank frame (landmarks in
    # the image's middle-left, fingertips high): the square must move onto it.
    monkeypatch.setenv("FINGERTUI_DEV_HANDS", "1")
    wide = [np.asarray(finger_image(2, 7).resize((320, 240)))]
    app = make_app(ws, ScriptedSource(wide))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.capture_screen
        await wait_for(pilot, lambda: app.track is not None and app.track.box is not None)
        box = app.track.box
        assert box != app.framing.square(wide[0].shape, None)  # not the fixed centred square
        assert "follows the hand" in screen.square_words()

        # The skeleton is drawn over the picture (its colour appears where the hand is).
        def skeleton_pixels() -> int:
            pic = screen.query_one("#camera").picture
            return 0 if pic is None else int(((np.asarray(pic) == (0, 200, 255)).all(axis=2)).sum())

        await wait_for(pilot, lambda: skeleton_pixels() > 20)  # the next frame is drawn with it
        await pilot.press("4")
        await stored(app)
        [s] = app.store.samples()
        x0, y0, x1, y1 = box
        view = wide[0][:, ::-1]
        assert np.array_equal(np.asarray(Image.open(ws.abs(s.path))), view[y0:y1, x0:x1])
        await pilot.press("f")  # back to the fixed square
        await pilot.pause()
        assert app.framing.square(wide[0].shape, app.track) == app.framing.square(wide[0].shape, None)
        assert "fixed square" in screen.square_words()


@pytest.mark.slow
async def test_no_hand_in_view_is_said_live(ws, monkeypatch):
    monkeypatch.setenv("FINGERTUI_DEV_HANDS", "1")
    blank = [np.full((240, 320, 3), 90, np.uint8)]
    app = make_app(ws, ScriptedSource(blank))
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(40):
            await pilot.pause(0.05)
        assert app.track is not None and app.track.box is None
        assert "no hand in view" in app.capture_screen.square_words()


@pytest.mark.slow
async def test_the_status_line_takes_the_rows_its_words_need(ws):
    # It is redrawn in place every second; the screen is laid out again only when the
    # number of rows changes, and then it must be.
    app = make_app(ws, ScriptedSource(frames()))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.capture_screen
        status = screen.query_one("#status")
        screen.update_status()
        await pilot.pause()
        short = status.size.height
        app.pose_note = "a note long enough to need a row of its own under the status line " * 2
        screen.update_status()
        await pilot.pause()
        assert status.size.height >= short + 2
        assert "row of its own" in "\n".join(status.render_line(y).text for y in range(status.size.height))
        app.pose_note = None
        screen.update_status()
        await pilot.pause()
        assert status.size.height == short

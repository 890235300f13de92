"""Training in a child process (the app's way): result, progress, cancel, errors, quit."""

from __future__ import annotations

import threading
import time

import pytest

from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.errors import Cancelled, UserError
from fingertui.learn import backbones
from fingertui.live.camera import ScriptedSource
from fingertui.runs.records import active_run, list_runs
from fingertui.train.process import train_in_child
from fingertui.tui.app import make_app, run_app
from tests.conftest import write_bars
from tests.helpers import wait_for
from tests.test_tui import frames

pytestmark = pytest.mark.slow


@pytest.fixture
def bars(ws, tmp_path, monkeypatch):
    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")  # the child inherits the environment
    store = Store(ws)
    import_paths(store, [write_bars(tmp_path / "bars", 6)])
    store.close()
    return ws


def test_a_run_trained_in_a_child_is_recorded_and_reported(bars):
    phases, warnings = [], []
    run_id = train_in_child(
        bars.root, backbone="dev-random", progress=lambda p, k, n: phases.append((p, k, n)), warn=warnings.append
    )
    store = Store(bars)
    try:
        assert active_run(store).id == run_id == 1
        assert {"loading model", "embedding", "recording"} <= {p for p, _, _ in phases}
        assert ("loading model", 1, 1) in phases
    finally:
        store.close()


def test_the_childs_own_error_comes_back_as_a_user_error(ws):
    Store(ws).close()  # an empty workspace: nothing to train on
    with pytest.raises(UserError, match="not enough labelled training images"):
        train_in_child(ws.root)


def test_cancel_stops_the_child_and_records_nothing(bars):
    cancel = threading.Event()
    started = threading.Event()

    def progress(phase, k, n):
        started.set()
        cancel.set()  # as soon as it reports anything

    with pytest.raises(Cancelled):
        train_in_child(bars.root, backbone="dev-random", progress=progress, cancel=cancel)
    assert started.is_set()
    store = Store(bars)
    try:
        assert list_runs(store) == []
    finally:
        store.close()


async def test_the_app_trains_in_a_child_and_shows_the_run(bars):
    from fingertui.tui.screens.results import ResultsScreen

    app = make_app(bars, ScriptedSource(frames()), backbone="dev-random")
    assert app.train_in == "process"
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        await pilot.press("t")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ResultsScreen) and any(t.row_count for t in app.screen.query("#matrix")),
            seconds=120,
        )
        await pilot.pause()
        assert isinstance(app.screen, ResultsScreen)
        assert app.active is not None and app.active.id == 1 and not app.training


def test_quit_while_a_child_trains_ends_it_and_keeps_the_store_whole(bars):
    app = make_app(bars, ScriptedSource(frames()), backbone="dev-random")

    async def pilot(p):
        await p.pause()
        await p.press("t")
        await wait_for(p, lambda: app._last_progress is not None and app._last_progress[0] != "loading model")
        await p.press("q")

    t0 = time.monotonic()
    assert run_app(app, headless=True, auto_pilot=pilot) == 0
    assert time.monotonic() - t0 < 120
    assert app._train_idle.is_set()  # the child had ended when run_app returned
    store = Store(bars)
    try:
        assert store.labelled()  # the index opens and reads after the child's cancel
    finally:
        store.close()

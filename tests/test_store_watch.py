"""The app follows changes another process makes to the store (`fingertui label` in another
terminal): counts, the review queue and the active run refresh without a retrain."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fingertui.data.store import Store
from fingertui.live.camera import ScriptedSource
from fingertui.review import queue
from fingertui.runs.records import set_active
from fingertui.tui.app import make_app
from fingertui.tui.screens.gallery import GalleryScreen
from fingertui.tui.screens.review import ReviewScreen
from fingertui.tui.widgets.panels import CountsPanel
from tests.conftest import add_sample
from tests.helpers import wait_for
from tests.test_tui import frames

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def add(store, seed, label=None, split=None):
    return add_sample(store, seed, label, split)


def test_data_version_moves_for_other_connections_only(ws):
    mine = Store(ws)
    before = mine.data_version()
    add(mine, 1, label=2, split="train")
    assert mine.data_version() == before  # its own writes the app shows already
    other = Store(ws)
    add(other, 2, label=3, split="train")
    assert mine.data_version() != before


async def test_counts_follow_a_label_given_in_another_terminal(ws):
    store = Store(ws)
    s = add(store, 7)
    store.close()
    app = make_app(ws, ScriptedSource(frames()))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        panel = app.screen.query_one(CountsPanel)
        assert panel.shown[1] == 1 and sum(panel.shown[0][3].values()) == 0
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "fingertui", "--home", str(ws.root), "label", str(s.id), "3"]
        done = await asyncio.to_thread(subprocess.run, cmd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        await wait_for(pilot, lambda: panel.shown[1] == 0, seconds=10)
        assert sum(panel.shown[0][3].values()) == 1


async def test_the_open_gallery_follows_a_relabel_made_elsewhere(ws):
    store = Store(ws)
    kept, moved = add(store, 1, label=0, split="train"), add(store, 2, label=0, split="train")
    store.close()
    app = make_app(ws, ScriptedSource(frames()))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("g")  # the gallery, on class 0
        await wait_for(pilot, lambda: isinstance(app.screen, GalleryScreen) and len(app.screen.samples) == 2)
        Store(ws).set_label(moved.id, 4, reason="elsewhere")
        await wait_for(pilot, lambda: [s.id for s in app.screen.samples] == [kept.id], seconds=10)


async def test_review_queue_drops_an_item_resolved_elsewhere(runs_ws):
    app = make_app(runs_ws, ScriptedSource(frames()), backbone="dev-random")
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen.items)
        screen = app.screen
        n = len(screen.items)
        sid = screen.current.sample_id
        before = app.capture_screen.query_one(CountsPanel).shown[2]
        other = Store(runs_ws)
        queue.apply_action(other, sid, "confirm")
        await wait_for(pilot, lambda: sid not in [it.sample_id for it in screen.items], seconds=15)
        assert len(screen.items) == n - 1
        assert f"{n - 1} left" in str(screen.query_one("#counter").render())
        # The capture screen underneath counts the queue again too.
        assert app.capture_screen.query_one(CountsPanel).shown[2] == before - 1


async def test_a_run_activated_elsewhere_becomes_the_live_model(runs_ws):
    app = make_app(runs_ws, ScriptedSource(frames()), backbone="dev-random")
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, lambda: app.model is not None)
        assert app.active.id == 2
        set_active(Store(runs_ws), 1)
        await wait_for(pilot, lambda: app.active.id == 1 and app.model is not None, seconds=30)
        assert "run 1" in str(app.capture_screen.query_one("#model").render())
        assert any("run 1 is the active model now" in str(n.message) for n in app._notifications)

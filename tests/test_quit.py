"""Quitting the app: prompt, and whatever is being written when `q` is pressed is kept."""

import fcntl
import os
import pty
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest
from textual import events

from fingertui.data.store import Store
from fingertui.data.workspace import Workspace
from fingertui.errors import Cancelled
from fingertui.learn.model import Model
from fingertui.live.camera import ScriptedSource
from fingertui.tui.app import make_app, run_app
from tests.conftest import add_sample
from tests.helpers import wait_for
from tests.test_tui import frames

ROOT = Path(__file__).resolve().parents[1]


def add(store, seed, label=2):
    return add_sample(store, seed, label)


def quit_when(app, ready):
    """An autopilot that presses q once ``ready()``; returns it and when q was pressed."""
    pressed = {}

    async def pilot(p):
        await wait_for(p, ready)
        pressed["at"] = time.monotonic()
        await p.press("q")

    return pilot, pressed


@pytest.mark.slow
def test_quit_does_not_wait_for_a_model_still_loading(ws, monkeypatch):
    # A model that takes long to load (importing torch took 10 s on a busy machine) used to
    # hold the quit until it had loaded: Textual joined every worker thread on the way out.
    loading, release, loaded = threading.Event(), threading.Event(), threading.Event()

    def slow_starter(cls, warn=None):
        loading.set()
        release.wait(60)
        loaded.set()

    monkeypatch.setattr(Model, "starter", classmethod(slow_starter))
    app = make_app(ws, ScriptedSource(frames()))
    pilot, pressed = quit_when(app, loading.is_set)
    try:
        code = run_app(app, headless=True, auto_pilot=pilot)
        took = time.monotonic() - pressed["at"]
        assert code == 0
        assert loading.is_set() and not loaded.is_set()  # it returned while the model still loaded
        assert took < 5.0, f"quit took {took:.1f} s"
    finally:
        release.set()


def test_closing_the_store_lets_a_write_under_way_finish(ws):
    store = Store(ws)
    inside = threading.Event()

    def writer():
        with store.writing():
            inside.set()
            time.sleep(0.3)
            add(store, 1, label=4)

    t = threading.Thread(target=writer)
    t.start()
    assert inside.wait(10)
    store.close()
    t.join(10)
    assert [s.label for s in Store(ws).samples()] == [4]


@pytest.mark.slow
def test_quit_during_training_waits_for_it_to_store_what_it_computed(ws, monkeypatch):
    from fingertui.train import pipeline

    store = Store(ws)
    for seed in range(3):
        add(store, seed)
    store.close()
    started = threading.Event()

    def fake_train(store, *, cancel, **kw):
        # Like the real one: cancelled, it still writes what it computed (the embedding
        # cache) before it gives up — here after a pause, so a quit that did not wait for
        # it would close the store first.
        started.set()
        cancel.wait(60)
        time.sleep(0.5)
        store.set_setting("computed-before-cancel", "kept")
        raise Cancelled

    monkeypatch.setattr(pipeline, "train", fake_train)
    app = make_app(ws, ScriptedSource(frames()), train_in="thread")

    async def pilot(p):
        await p.pause()
        await p.press("t")
        await wait_for(p, started.is_set)
        await p.press("q")

    assert run_app(app, headless=True, auto_pilot=pilot) == 0
    assert Store(ws).get_setting("computed-before-cancel") == "kept"


@pytest.mark.slow
def test_q_ends_the_process_in_a_second_and_keeps_the_capture(tmp_path):
    """The real thing, in a terminal: `fingertui --source demo`, capture, q."""
    home = tmp_path / "ws"
    env = {**os.environ, "FINGERTUI_HOME": str(home), "PYTHONPATH": str(ROOT)}
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 48, 160, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "fingertui", "--source", "demo"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(slave)
    stop = threading.Event()

    def drain():  # the app blocks if nobody reads the terminal
        while not stop.is_set():
            try:
                if not os.read(master, 65536):
                    return
            except OSError:
                return

    threading.Thread(target=drain, daemon=True).start()

    def captured():
        db = Workspace(home).db_path
        if not db.exists():
            return 0
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
                return c.execute("SELECT count(*) FROM samples WHERE label = 1").fetchone()[0]
        except sqlite3.Error:
            return 0

    try:
        deadline = time.monotonic() + 180
        while not captured():
            assert proc.poll() is None and time.monotonic() < deadline, "the app never captured"
            os.write(master, b"1")
            time.sleep(1.0)
        os.write(master, b"q")
        t0 = time.monotonic()
        code = proc.wait(30)
        took = time.monotonic() - t0
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert code == 0
    assert took < 2.0, f"q took {took:.1f} s to end the process"
    assert captured() >= 1


@pytest.mark.slow
def test_keys_typed_right_after_q_are_not_carried_out(ws):
    """`qu` typed fast: the app quits and the u does not take back the capture on the way
    out (it did: the capture was gone after the app closed)."""
    from tests.test_tui import stored

    app = make_app(ws, ScriptedSource(frames()))

    async def pilot(p):
        await p.pause()
        await p.press("1")
        await stored(app)
        app.post_message(events.Key("q", "q"))  # both in the queue before either is handled
        app.post_message(events.Key("u", "u"))

    assert run_app(app, headless=True, auto_pilot=pilot) == 0
    assert [s.label for s in Store(ws).samples()] == [1]

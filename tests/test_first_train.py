"""The first training starts visibly: the weights problem said once and remembered, the
progress bar at once with its phase and time left, a few lines when piped, and a screen
that stays drawn while hands are found on two threads."""

import json
import os
import threading
import time
import urllib.error

import pytest

from fingertui.cli import main
from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.learn import backbones, mediapipe_quirks, pretrained
from fingertui.learn.heads import TrainConfig
from fingertui.train.eta import PHASES, Eta, PhaseTimer, estimate_for, expected_seconds, say_left
from fingertui.train.pipeline import train_run
from tests.conftest import write_bars
from tests.helpers import wait_for

# --- the screen stays drawn --------------------------------------------------------------


def test_two_threads_muting_stderr_at_once_give_it_back(tmp_path):
    """The live view's tracker and a training run find hands at the same time; stderr (where
    Textual draws) must come back when both are done, not stay /dev/null for good."""
    target = tmp_path / "tty"
    saved = os.dup(2)
    try:
        with open(target, "wb") as f:
            os.dup2(f.fileno(), 2)
        first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

        def first() -> None:
            with mediapipe_quirks.quiet_stderr():
                first_in.set()
                second_in.wait(5)
            first_out.set()

        def second() -> None:
            first_in.wait(5)
            with mediapipe_quirks.quiet_stderr():
                second_in.set()
                first_out.wait(5)  # the first leaves while the second is still muted

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        os.write(2, b"drawn again\n")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    assert target.read_bytes() == b"drawn again\n"


# --- the ResNet-18 weights: said once, tried once a day ------------------------------------


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No cached ResNet-18 weights, and every download fails as offline; counts the tries."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(backbones.ENV_WEIGHTS, raising=False)
    # The fallback itself (a pretrained efficientnet-lite0) is tested in test_learning.py;
    # here the tiny network stands in for it, to keep these tests quick.
    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    monkeypatch.setattr(backbones, "OFFLINE_BACKBONE", "dev-random")
    backbones._CACHE.clear()
    tries = []

    def fail(url, dest):
        tries.append(url)
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(pretrained, "download", fail)
    yield tries
    backbones._CACHE.clear()


@pytest.mark.slow
def test_failed_download_is_said_once_in_one_line_and_not_tried_again_for_a_day(offline, store, monkeypatch):
    said = []
    bb = backbones.load("resnet18", warn=said.append, settings=store)
    assert bb.name == backbones.OFFLINE_BACKBONE
    assert len(offline) == 1 and len(said) == 1
    assert "\n" not in said[0] and "offline" in said[0] and "fingertui fetch-weights" in said[0]
    # The next runs (the app's, `fingertui train`'s) neither try nor say it again…
    for _ in range(3):
        assert backbones.load("resnet18", warn=said.append, settings=store).name == backbones.OFFLINE_BACKBONE
    assert len(offline) == 1 and len(said) == 1
    # …until a day has passed: then one more try, and one more line.
    later = time.time() + pretrained.RETRY_AFTER_S + 60
    monkeypatch.setattr(pretrained.time, "time", lambda: later)
    backbones.load("resnet18", warn=said.append, settings=store)
    assert len(offline) == 2 and len(said) == 2


@pytest.mark.slow
def test_fetch_weights_tries_at_once_and_clears_the_note(offline, store, monkeypatch, capsys):
    import torch
    from torchvision.models import resnet18

    backbones.load("resnet18", warn=lambda m: None, settings=store)
    assert pretrained.download_failed_recently(store) == "offline"
    store.close()
    home = str(store.ws.root)
    assert main(["--home", home, "fetch-weights"]) == 2  # still offline: tried again, said in one line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(offline) == 2 and len(err) == 1 and "could not download" in err[0]

    def works(url, dest):  # back online
        offline.append(url)
        torch.save(resnet18().state_dict(), dest)

    monkeypatch.setattr(pretrained, "download", works)
    assert main(["--home", home, "fetch-weights"]) == 0
    assert "ready" in capsys.readouterr().out
    assert pretrained.download_failed_recently(Store(store.ws)) is None
    assert pretrained.resnet18_cache_file().exists()


@pytest.mark.slow
def test_cli_train_offline_prints_no_downloading_line_and_says_it_once(offline, store, tmp_path, capsys):
    import_paths(store, [write_bars(tmp_path / "bars", 4)])
    store.close()
    home = str(store.ws.root)
    args = ["--home", home, "train", "--features", "image", "--views", "0", "--json"]
    assert main(args) == 0
    first = capsys.readouterr()
    json.loads(first.out)  # stdout is the JSON alone: no "Downloading: …" before it
    assert "Downloading" not in first.out + first.err
    assert sum("ResNet-18" in line for line in first.err.splitlines()) == 1
    assert main(args) == 0
    second = capsys.readouterr()
    assert "ResNet-18" not in second.err and len(offline) == 1


# --- the time left ----------------------------------------------------------------------


def test_phase_timer_records_each_phase_and_the_next_estimate_uses_it():
    now = [0.0]
    seen = []
    timer = PhaseTimer(lambda p, k, n: seen.append(p), clock=lambda: now[0])
    timer("loading model", 0, 1)
    now[0] = 2.0
    timer("embedding", 0, 40)
    now[0] = 22.0
    timer("embedding", 40, 40)
    timer("training image", 1, 60)
    now[0] = 25.0
    rec = timer.finish()
    assert seen == ["loading model", "embedding", "embedding", "training image"]
    assert rec == {
        "seconds": {"loading model": 2.0, "embedding": 20.0, "training image": 3.0},
        "items": {"embedding": 40},
    }
    # The next run with 10 new images: embedding at the last run's 0.5 s per image.
    exp = expected_seconds(rec, 10)
    assert exp["embedding"] == pytest.approx(5.0) and exp["loading model"] == 2.0 and exp["training image"] == 3.0


def test_eta_follows_the_pace_of_the_phase_and_adds_the_phases_after_it():
    expected = dict.fromkeys(PHASES, 1.0)
    eta = Eta(expected)
    later = len(PHASES) - PHASES.index("embedding") - 1
    assert eta.left("loading model", 0, 1, now=0.0) == pytest.approx(len(PHASES))
    eta.left("embedding", 0, 100, now=1.0)  # loading took the second it was expected to
    # 10 of 100 images in 5 s: 45 s more for this phase, then a second for each later one.
    assert eta.left("embedding", 10, 100, now=6.0) == pytest.approx(45.0 + later)
    assert say_left(47.0) == "about 45 s left" and say_left(1.0) == "almost done"
    assert say_left(300) == "about 5 min left"


def test_eta_scales_the_phases_to_come_by_how_the_run_has_gone_so_far():
    eta = Eta({"loading model": 10.0, "embedding": 10.0, "training image": 5.0, "evaluating": 5.0})
    eta.left("loading model", 0, 1, now=0.0)
    eta.left("embedding", 0, 10, now=20.0)  # loading took 20 s, 10 were expected: a busy machine
    assert eta.pace == pytest.approx(2.0)
    assert eta.left("embedding", 0, 10, now=20.0) == pytest.approx(2 * (10 + 5 + 5))


@pytest.mark.slow
def test_a_run_records_its_phases_and_the_next_estimate_counts_only_new_images(store, tmp_path, monkeypatch):
    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    import_paths(store, [write_bars(tmp_path / "bars", 4)])
    first_guess = estimate_for(store)
    run = train_run(store, backbone="dev-random", cfg=TrainConfig(views=0, max_epochs=10))
    phases = run.metrics["phases"]
    assert {"loading model", "embedding", "training image", "evaluating"} <= set(phases["seconds"])
    assert phases["items"]["embedding"] == 24
    again = estimate_for(store)
    assert again["embedding"] == 0.0 < first_guess["embedding"]  # nothing new to embed
    import_paths(store, [write_bars(tmp_path / "more", 5)])  # 6 new images (one per class)
    assert estimate_for(store)["embedding"] == pytest.approx(6 * phases["seconds"]["embedding"] / 24)


# --- the app: the bar at once ------------------------------------------------------------


@pytest.mark.slow
async def test_t_shows_the_bar_at_once_with_its_phase_and_time_left_and_it_ticks(ws, tmp_path, monkeypatch):
    from textual.widgets import Label

    from fingertui.live.camera import ScriptedSource
    from fingertui.train import pipeline
    from fingertui.tui.app import make_app
    from fingertui.tui.widgets.panels import TrainingBar
    from tests.test_tui import frames

    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    store = Store(ws)
    import_paths(store, [write_bars(tmp_path / "bars", 4)])
    store.close()
    release = threading.Event()
    real_train = pipeline.train

    def slow_start(*a, **kw):  # the first seconds of a first run: loading networks, nothing reported
        release.wait(20)
        return real_train(*a, **kw)

    monkeypatch.setattr(pipeline, "train", slow_start)
    app = make_app(ws, ScriptedSource(frames()), backbone="dev-random", train_in="thread")
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        bar = app.screen.query_one(TrainingBar)
        text = " ".join(str(w.render()) for w in bar.query(Label))
        assert bar.display and bar.phase == "loading model"
        # The whole run's time left, from the first-run budgets (a first run of 24 images).
        assert "loading model" in text and say_left(sum(estimate_for(app.store).values())) in text
        first = bar.elapsed
        await pilot.pause(2.2)  # nothing reported meanwhile: the clock still moves
        assert bar.elapsed >= first + 1.0
        release.set()
        await wait_for(pilot, lambda: not app.training)
        await pilot.pause(0.2)
        assert not any(b.display for s in app.screen_stack for b in s.query(TrainingBar))

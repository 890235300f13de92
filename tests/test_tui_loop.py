"""Review, training from the app, results, runs — driven with Pilot."""

import json
import time

import pytest
from textual.widgets import DataTable

from fingertui.cli import main
from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.learn import backbones
from fingertui.learn.heads import TrainConfig
from fingertui.live.camera import ScriptedSource
from fingertui.runs.records import active_run, compare, describe_comparison, list_runs
from fingertui.train.pipeline import train_run
from fingertui.tui.app import make_app
from fingertui.tui.screens.results import ResultsScreen
from fingertui.tui.screens.review import ReviewScreen
from fingertui.tui.screens.runs import RunsScreen
from fingertui.tui.widgets.panels import TrainingBar
from tests.conftest import finger_image, write_bars
from tests.helpers import wait_for
from tests.test_tui import frames

pytestmark = pytest.mark.slow


@pytest.fixture
def bars_ws(ws, tmp_path, monkeypatch):
    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    write_bars(tmp_path / "bars", 10)
    p = tmp_path / "pool" / "u.png"
    p.parent.mkdir(parents=True)
    finger_image(3, 4242).save(p)
    store = Store(ws)
    import_paths(store, [tmp_path / "bars"])
    import_paths(store, [tmp_path / "pool"], unlabeled=True)
    store.close()
    return ws


def app_for(ws, train_in=None):
    return make_app(ws, ScriptedSource(frames()), backbone="dev-random", train_in=train_in)


async def test_relabel_in_review_writes_an_event_and_undo_reverts_it(bars_ws):
    store = Store(bars_ws)
    train_run(store, backbone="dev-random", cfg=TrainConfig(views=1, max_epochs=20))
    [u] = store.samples(unlabelled=True)
    app = app_for(bars_ws)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen.items)
        screen = app.screen
        while screen.current.sample_id != u.id:
            await pilot.press("right")
        await pilot.press("4")
        await pilot.pause()
        assert app.store.get(u.id).label == 4 and app.store.get(u.id).split in ("train", "test")
        [ev] = [e for e in app.store.label_events(u.id) if e["kind"] == "label"]
        assert (ev["old"], ev["new"], ev["actor"], ev["reason"]) == (None, 4, "user", "review")
        await pilot.press("u")
        await pilot.pause()
        assert app.store.get(u.id).label is None


async def test_training_from_the_app_shows_the_same_matrix_as_eval(bars_ws, capsys, monkeypatch):
    shown_phases = []
    show = TrainingBar.show_progress

    def recording(self, phase, k, n, elapsed, left=""):
        shown_phases.append((phase, k, n))
        show(self, phase, k, n, elapsed, left)

    monkeypatch.setattr(TrainingBar, "show_progress", recording)
    app = app_for(bars_ws)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        await pilot.press("t")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ResultsScreen) and any(t.row_count for t in app.screen.query("#matrix")),
            seconds=180,
        )
        run = app.active
        # The bar named the real phases with their k/N, and is gone now the run is done.
        phases = [p for p, _, _ in shown_phases]
        assert {"embedding", "training image", "calibrating", "evaluating"} <= set(phases)
        assert any(p == "embedding" and k == n == run.n_train + run.n_test for p, k, n in shown_phases)
        assert not any(bar.display for bar in app.screen.query(TrainingBar))
        table = app.screen.query_one("#matrix", DataTable)
        shown = [[int(str(table.get_cell_at((r, c))).split()[0]) for c in range(1, 7)] for r in range(table.row_count)]
        # Capturing still works on the capture screen underneath, with the new model live.
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.model is not None)
    capsys.readouterr()
    assert main(["--home", str(bars_ws.root), "eval", "--run", str(run.id), "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)["metrics"]["confusion"]["counts"]
    present = [r for r in range(6) if sum(counts[r])]
    assert shown == [counts[r] for r in present]


async def test_cancelled_training_leaves_no_run_behind(bars_ws, monkeypatch):
    from fingertui.learn import embeddings

    # Slow the embedding down so that esc surely arrives while the run is still going.
    slow = embeddings.Embedder._embed_batch

    def slower(self, *a, **k):
        time.sleep(0.05)
        return slow(self, *a, **k)

    monkeypatch.setattr(embeddings.Embedder, "_embed_batch", slower)
    app = app_for(bars_ws, train_in="thread")  # the slowed embedder is this process's
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        await pilot.press("t", "escape")
        await wait_for(pilot, lambda: not app.training)
        await pilot.pause(0.2)
        assert list_runs(app.store) == []
        assert list(bars_ws.models_dir.glob("*")) == []
        assert any("cancelled" in str(n.message) for n in app._notifications)


async def test_runs_screen_lists_compares_and_rolls_back(bars_ws):
    store = Store(bars_ws)
    first = train_run(store, backbone="dev-random", cfg=TrainConfig(views=1, max_epochs=20, seed=0))
    second = train_run(store, backbone="dev-random", cfg=TrainConfig(views=1, max_epochs=20, seed=1))
    app = app_for(bars_ws)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.query_one("#runs").row_count)
        table = app.screen.query_one("#runs", DataTable)
        assert table.row_count == 2
        await pilot.press("space", "down", "space", "p")
        await pilot.pause()
        text = str(app.screen.query_one("#compare").render())
        assert describe_comparison(compare(app.store, first.id, second.id)) in text
        await pilot.press("up", "a")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert app.active.id == first.id and active_run(app.store).id == first.id
        await wait_for(pilot, lambda: app.model is not None)
        assert app.model.checkpoint.metrics == json.loads(
            json.dumps({"accuracy": first.metrics["test"]["accuracy"], "ece": first.metrics["test"]["ece"]})
        )
        await pilot.press("escape")
        await pilot.pause()
        # Back on the capture screen, the model box names the rolled-back run.
        assert f"run {first.id}" in str(app.screen.query_one("#model").render())


async def test_review_says_why_a_label_looks_wrong_and_a_confirmation_survives_retraining(bars_ws, monkeypatch):
    from fingertui.train.pipeline import train

    monkeypatch.setenv("FINGERTUI_DEV_HANDS", "1")  # the default features: image, hand pose, finger count
    store = Store(bars_ws)
    wrong = next(s for s in store.labelled() if s.split == "train" and s.label == 0)  # a fist labelled 5
    store.set_label(wrong.id, 5, actor="import", reason="planted")
    cfg = TrainConfig(views=1, max_epochs=20)
    train(store, backbone="dev-random", cfg=cfg)
    app = app_for(bars_ws)
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen.items)
        screen = app.screen
        assert screen.current.sample_id == wrong.id  # the planted error comes first
        why = str(screen.query_one("#why").render())
        assert "the label looks wrong: probably 0" in why and "out-of-fold: label 5 at" in why
        left = len(screen.items)
        await pilot.press("enter")  # the user insists: 5 is right
        await pilot.pause()
        assert len(screen.items) == left - 1
        await pilot.press("escape")
        train(store, backbone="dev-random", cfg=cfg)  # the next run disagrees again
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen.items)
        assert wrong.id not in {it.sample_id for it in app.screen.items}
        assert "left" in str(app.screen.query_one("#counter").render())

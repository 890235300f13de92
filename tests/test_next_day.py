"""Your labels must never make it worse: sessions, next-day validation, the novel-pattern
gate and the starter as the floor (fingertui/learn/nextday.py, sessions.py)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from fingertui.cli import main
from fingertui.data import sessions
from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace
from fingertui.learn import nextday
from fingertui.learn.pooling import novel_rows, pool_logits, softmax
from fingertui.runs.records import active_run, list_runs, set_active
from fingertui.train.pipeline import train
from tests.conftest import finger_image, write_bars
from tests.helpers import wait_for
from tests.test_pose_pipeline import FAST, dev  # noqa: F401 — the fixture

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


# --- sessions are data ---------------------------------------------------------------


def test_capture_times_split_an_import_into_sittings_and_the_rest_is_one_batch():
    day = 86_400.0
    taken = [1000.0, 1060.0, None, 1000.0 + day, 1030.0 + day]
    got = sessions.by_time(taken, "import batch")
    assert got[0] == got[1] != got[3] == got[4]
    assert got[2] == "import batch"


def test_import_names_the_session_and_stats_and_samples_show_it(store, tmp_path, capsys):
    tree = write_bars(tmp_path / "monday", 2)
    import_paths(store, [tree], session="monday kitchen")
    import_paths(store, [write_bars(tmp_path / "tuesday", 3)])  # no EXIF: the import batch
    names = {s.session for s in store.samples()}
    assert "monday kitchen" in names and len(names) == 2
    assert main(["--home", str(store.ws.root), "stats", "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["sessions"]["monday kitchen"]["total"] == 12
    assert main(["--home", str(store.ws.root), "samples"]) == 0
    assert "monday kitchen" in capsys.readouterr().out


def test_a_bad_session_name_is_one_line_and_exit_2(ws, tmp_path, capsys):
    tree = write_bars(tmp_path / "t", 1)
    assert main(["--home", str(ws.root), "import", str(tree), "--session", "a\x1b[2Jb"]) == 2
    err = capsys.readouterr().err
    assert "--session" in err and len(err.strip().splitlines()) == 1


def test_an_old_workspace_gets_sessions_when_opened(ws, tmp_path):
    store = Store(ws)
    import_paths(store, [write_bars(tmp_path / "t", 2)])
    store.close()
    db = sqlite3.connect(ws.db_path)
    db.execute("UPDATE samples SET session = NULL")
    db.execute("PRAGMA user_version = 9")  # as written before sessions were kept
    db.commit()
    db.close()
    again = Store(ws)
    assert all(s.session for s in again.samples())
    assert len({s.session for s in again.samples()}) == 1  # imported together: one sitting


def test_a_long_pause_in_the_app_starts_a_new_session(store, monkeypatch):
    from fingertui.data import capture

    clock = [1000.0]
    monkeypatch.setattr(capture.time, "monotonic", lambda: clock[0])
    cs = capture.CaptureSession(store)
    rng = np.random.default_rng(0)
    a = cs.capture(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), 1)
    clock[0] += 60
    b = cs.capture(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), 2)
    clock[0] += sessions.GAP_S + 1
    c = cs.capture(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), 3)
    assert a.session == b.session != c.session


# --- validation for the next day -------------------------------------------------------


def _bars(root: Path, per_class: int, offset: int) -> Path:
    for label in range(6):
        for k in range(per_class):
            p = root / str(label) / f"{k}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            finger_image(label, 10_000 + offset + label * 100 + k).save(p)
    return root


def _two_sittings(store: Store, tmp_path: Path) -> None:
    import_paths(store, [_bars(tmp_path / "a", 8, 0)], session="day 1")
    import_paths(store, [_bars(tmp_path / "b", 8, 50)], session="day 2")


@pytest.mark.slow
def test_with_two_sessions_the_pooling_is_chosen_on_held_out_sessions(store, tmp_path, dev):  # noqa: F811
    _two_sittings(store, tmp_path)
    run = train(store, backbone="dev-random", cfg=FAST, flags=False).run
    nd = run.metrics["next_day"]
    assert run.metrics["pooling_rule"] == nextday.RULE_SESSIONS and nd["rule"] == nextday.RULE_SESSIONS
    assert nd["sessions"] == 2 and not nd["same_sitting"]
    assert nd["n"] == run.n_train  # every training image scored by a model that never saw its sitting
    assert nd["starter"]["n"] == nd["n"] and nd["starter"]["starter_accuracy"] is not None


@pytest.mark.slow
def test_with_one_session_the_finger_expert_keeps_its_weight_and_the_figure_says_same_sitting(
    store,
    tmp_path,
    dev,  # noqa: F811
    capsys,
):
    import_paths(store, [write_bars(tmp_path / "a", 14)], session="only")
    run = train(store, backbone="dev-random", cfg=FAST, flags=False).run
    assert run.metrics["pooling_rule"] in (nextday.RULE_ONE_SESSION, nextday.RULE_SMALL)
    assert run.metrics["pooling"]["fingers"] == 1.0
    assert run.metrics["pooling"]["image"] <= 0.25 and run.metrics["pooling"]["pose"] <= 1.0
    assert run.metrics["next_day"]["same_sitting"]
    assert main(["--home", str(store.ws.root), "eval"]) == 0
    out = capsys.readouterr().out
    assert "same sitting" in out and "another" in out and "day may score lower" in out


# --- the starter is the floor ----------------------------------------------------------


def test_floor_is_a_paired_comparison_on_the_same_images():
    y = np.array([1, 2, 3, 3])
    eye = np.eye(6)
    run = eye[[1, 2, 4, 4]]  # two 3s read as 4
    starter = eye[[1, 2, 3, 0]]
    f = nextday.floor(y, run, starter, "held-out sessions")
    assert (f.run_correct, f.starter_correct, f.n) == (2, 3, 4) and f.held_back
    assert not nextday.floor(y, starter, run, "x").held_back


@pytest.mark.slow
def test_a_run_worse_than_the_starter_is_held_back_until_the_user_activates_it(store, tmp_path, dev, monkeypatch):  # noqa: F811
    _two_sittings(store, tmp_path)
    good = train(store, backbone="dev-random", cfg=FAST, flags=False).run
    assert active_run(store).id == good.id and not good.held_back

    real_floor = nextday.floor

    def worse(y, p_run, p_starter, where):
        f = real_floor(y, p_run, p_starter, where)
        return nextday.Floor(f.n, f.starter_correct - 1, f.starter_correct, where)

    monkeypatch.setattr(nextday, "floor", worse)
    bad = train(store, backbone="dev-random", cfg=FAST, flags=False).run
    assert bad.held_back and active_run(store).id == good.id  # the better one stays in use
    assert "not yet better than the starter" in nextday.held_back_message(bad.metrics["next_day"])
    set_active(store, bad.id)  # the user's word
    assert active_run(store).id == bad.id
    assert [r.id for r in list_runs(store)] == [good.id, bad.id]  # both kept and comparable


@pytest.mark.slow
def test_train_says_plainly_when_the_run_is_held_back(store, tmp_path, dev, monkeypatch, capsys):  # noqa: F811
    _two_sittings(store, tmp_path)
    monkeypatch.setattr(nextday, "floor", lambda y, p, s, where: nextday.Floor(len(y), 0, len(y), where))
    assert main(["--home", str(store.ws.root), "train", "--backbone", "dev-random"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "not yet better than the starter on a new sitting" in out and "runs activate" in out
    assert active_run(store) is None  # no run in use: the app and predict count with the starter
    assert main(["--home", str(store.ws.root), "eval"]) == 2  # says why no run is in use
    assert "worse than the starter" in capsys.readouterr().err
    assert main(["--home", str(store.ws.root), "runs"]) == 0
    assert "held" in capsys.readouterr().out


# --- counts, not shapes ----------------------------------------------------------------


def test_a_novel_finger_pattern_is_answered_by_the_finger_expert_alone():
    z_f = np.log(softmax(np.array([[0, 0, 0, 5.0, 0, 0], [0, 0, 0, 5.0, 0, 0]])))
    z_p = np.array([[0, 0, 0, 0, 9.0, 0], [0, 0, 0, 0, 9.0, 0]])  # the pose head insists on 4
    hand = np.array([True, True])
    w = {"fingers": 1.0, "pose": 1.0}
    p = pool_logits(None, z_p, hand, w, 1.0, 1.0, z_f, novel=np.array([False, True]))
    assert p[0].argmax() == 4 and p[1].argmax() == 3
    counts = {"11100": 50}
    up = np.array([[0.9, 0.9, 0.9, 0.1, 0.1], [0.1, 0.9, 0.9, 0.9, 0.1]])
    assert novel_rows(up, counts, 2).tolist() == [False, True]


@pytest.mark.slow
@pytest.mark.skipif(not (DATASETS / "sign-digits").is_dir(), reason=f"real photos not found at {DATASETS}")
def test_trained_on_one_wall_it_still_counts_a_three_shown_with_other_fingers(tmp_path, capsys):
    """sign-digits shows 3 as thumb + index + middle; hagrid's `three` is index + middle +
    ring. Trained on the first, the model counts the second as 3, and scores no lower than
    the starter on the same photos."""
    pick = tmp_path / "sd"
    for c in range(6):
        (pick / str(c)).mkdir(parents=True)
        for p in sorted((DATASETS / "sign-digits" / str(c)).iterdir())[:40]:
            shutil.copy(p, pick / str(c) / p.name)
    three = tmp_path / "three" / "3"
    three.mkdir(parents=True)
    for p in sorted((DATASETS / "hagrid-rooms" / "hands" / "3").glob("three_*")):
        shutil.copy(p, three / p.name)
    home = tmp_path / "ws"
    starter_home = tmp_path / "empty"
    assert main(["--home", str(home), "import", str(pick), "--json"]) == 0
    assert main(["--home", str(home), "train", "--features", "pose", "--json"]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), "eval", str(three.parent), "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)["metrics"]
    assert main(["--home", str(starter_home), "predict", *map(str, sorted(three.iterdir())), "--json"]) == 0
    starter = [p["label"] for p in json.loads(capsys.readouterr().out)["predictions"]]
    assert trained["accuracy"] >= 0.9
    assert trained["accuracy"] >= np.mean([lab == 3 for lab in starter])
    assert Workspace(home).root.exists()


@pytest.mark.slow
def test_a_photo_without_a_hand_says_why():
    from fingertui.learn.model import Model

    starter = Model.starter()
    if starter is None:
        pytest.skip("the hand-pose detector is not available here")
    dark = starter.predict_image(np.full((200, 200, 3), 10, np.uint8))
    assert dark.hand_found is False and "too dark" in dark.note
    flat = starter.predict_image(np.full((200, 200, 3), 128, np.uint8))
    assert "show the whole hand" in flat.note


@pytest.mark.slow
@pytest.mark.skipif(not (DATASETS / "hagrid-rooms").is_dir(), reason=f"real photos not found at {DATASETS}")
def test_a_hand_in_a_dim_room_is_still_found():
    from PIL import Image

    from fingertui.learn import streams

    if streams.pose_unavailable_reason() is not None:
        pytest.skip("the hand-pose detector is not available here")
    pose = streams.PoseStream()
    photos = sorted((DATASETS / "hagrid-rooms" / "frames" / "2").iterdir())[:6]
    found = 0
    for p in photos:
        dim = (np.asarray(Image.open(p).convert("RGB")).astype(np.float32) * 0.12).astype(np.uint8)
        found += pose.search(dim) is not None
    assert found >= 5  # at 1/8 of its light the detector alone finds about 2 in 5


@pytest.mark.slow
async def test_the_app_keeps_its_model_and_says_so_when_a_run_is_worse_than_the_starter(
    ws,
    tmp_path,
    dev,  # noqa: F811
    monkeypatch,
):
    from textual.widgets import Static

    from fingertui.live.camera import ScriptedSource
    from fingertui.tui.app import make_app
    from fingertui.tui.screens.results import ResultsScreen
    from fingertui.tui.widgets.panels import CountsPanel
    from tests.test_honest import shown as visible
    from tests.test_tui import frames

    store = Store(ws)
    _two_sittings(store, tmp_path)
    store.close()
    monkeypatch.setattr(nextday, "floor", lambda y, p, s, where: nextday.Floor(len(y), 0, len(y), where))
    app = make_app(ws, ScriptedSource(frames()), backbone="dev-random", train_in="thread")
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        assert app.screen.query_one(CountsPanel)._args[-1] == 2  # the counts panel's sessions
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen))
        await pilot.pause(0.2)
        box = str.maketrans("│╭╮╰╯─", "      ")  # the panel's frame, between wrapped lines
        shown = " ".join(visible(app.screen.query_one("#metrics", Static)).translate(box).split())
        assert "not yet better than the starter on a new sitting" in shown
        assert app.active is None  # still the starter, not the worse run
        assert any("not yet better than the starter" in n.message for n in app._notifications)


def test_the_hand_counts_only_for_a_model_with_a_hand_expert_and_without_an_image_expert_no_hand_says_nothing():
    z = np.log(np.array([[0.7, 0.1, 0.05, 0.05, 0.05, 0.05], [0.1, 0.1, 0.6, 0.1, 0.05, 0.05]]))
    hand = np.array([True, False])
    # Image expert alone: a found hand changes nothing, every row is the image at its temperature.
    p = pool_logits(z, None, hand, {"image": 3.0}, 2.0)
    assert np.allclose(p, softmax(z, 2.0))
    # No image expert: the row without a hand is uniform, the other is the pose expert's.
    p = pool_logits(None, z, hand, {"pose": 1.0}, 1.0)
    assert np.allclose(p[0], softmax(z)[0]) and np.allclose(p[1], 1 / 6)

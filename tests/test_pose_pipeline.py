"""The hand-pose stream in the pipeline, without real photos: a stand-in landmark source
(FINGERTUI_DEV_HANDS=1) finds a synthetic hand with as many fingers up as a drawn test
image has bars, so the whole loop — cache, experts, pooling, predict, review — runs here."""

import numpy as np
import pytest

from fingertui.cli import main
from fingertui.data.importer import import_paths
from fingertui.errors import UserError
from fingertui.learn import backbones, streams
from fingertui.learn.heads import TrainConfig
from fingertui.learn.model import Model
from fingertui.review import flags, queue
from fingertui.train.pipeline import train
from tests.conftest import finger_image, write_bars
from tests.helpers import wait_for

FAST = TrainConfig(views=1, max_epochs=40)


@pytest.fixture
def dev(monkeypatch):
    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    monkeypatch.setenv("FINGERTUI_DEV_HANDS", "1")


@pytest.fixture
def bars_store(store, tmp_path, dev):
    import_paths(store, [write_bars(tmp_path / "bars", 8)])
    return store


@pytest.mark.slow
def test_pose_features_count_where_random_image_features_cannot(bars_store):
    pose = train(bars_store, features="pose", backbone="dev-random", cfg=FAST, flags=False).run
    both = train(bars_store, features="both", backbone="dev-random", cfg=FAST, flags=False).run
    assert pose.features == "pose" and both.features == "both"
    assert pose.metrics["hands_found"]["train"] == pose.n_train  # every drawn image "holds" a hand
    assert pose.metrics["test"]["accuracy"] >= 0.9
    assert both.metrics["test"]["accuracy"] >= 0.9
    # The landmarks were searched once per image and cached, not again for the second run.
    assert bars_store.landmarks.count("dev-standin-hands/1") == len(bars_store.labelled())


@pytest.mark.slow
def test_with_fingers_off_leaves_the_finger_expert_out_of_the_run_and_its_model(bars_store):
    """bench/learning_curve.py's "fused head alone": the same run without the finger-state expert."""
    off = train(bars_store, backbone="dev-random", cfg=FAST, flags=False, with_fingers=False).run
    on = train(bars_store, backbone="dev-random", cfg=FAST, flags=False).run
    assert on.metrics["experts"] == ["fingers", "image", "pose"]
    assert off.metrics["experts"] == ["image", "pose"] and "fingers" not in off.metrics["pooling"]
    assert Model.for_run(bars_store, on).fingers is not None
    assert Model.for_run(bars_store, off).fingers is None
    assert off.metrics["test"]["accuracy"] >= 0.9  # the pose expert still counts


@pytest.mark.slow
def test_a_frame_without_a_hand_says_so_never_raises(bars_store):
    run = train(bars_store, features="both", backbone="dev-random", cfg=FAST, flags=False).run
    model = Model.for_run(bars_store, run)
    blank = np.full((96, 96, 3), 128, np.uint8)
    p = model.predict_image(blank)
    assert p.hand_found is False and "no hand" in p.note and p.label is not None  # the image answers alone
    three = model.predict_image(np.asarray(finger_image(3, 999)))
    assert three.hand_found is True and three.label == 3
    pose_only = train(bars_store, features="pose", backbone="dev-random", cfg=FAST, flags=False).run
    p = Model.for_run(bars_store, pose_only).predict_image(blank)
    assert p.label is None and p.hand_found is False and p.unsure


@pytest.mark.slow
def test_no_hand_images_are_flagged_for_review(bars_store, tmp_path):
    import hashlib

    from PIL import Image

    blank = tmp_path / "blank" / "2" / "blank.png"
    blank.parent.mkdir(parents=True)
    Image.new("RGB", (96, 96), (120, 120, 120)).save(blank)
    import_paths(bars_store, [tmp_path / "blank"])
    sid = bars_store.by_sha(hashlib.sha256(blank.read_bytes()).hexdigest()).id
    run = train(bars_store, features="both", backbone="dev-random", cfg=FAST).run
    found = run.metrics["hands_found"]
    assert found["train"] + found["test"] == len(bars_store.labelled()) - 1
    items = {it.sample_id: it for it in queue.items(bars_store)}
    assert "no-hand" in items[sid].reasons
    others = [it for i, it in items.items() if i != sid]
    assert all("no-hand" not in it.reasons for it in others)


@pytest.mark.slow
def test_without_the_hand_detector_training_falls_back_to_the_image_in_one_line(store, tmp_path, monkeypatch):
    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    monkeypatch.setattr(streams, "pose_unavailable_reason", lambda: "No module named 'mediapipe'")
    import_paths(store, [write_bars(tmp_path / "bars", 4)])
    said = []
    run = train(store, backbone="dev-random", cfg=FAST, warn=said.append, flags=False).run
    assert run.features == "image"
    assert said == ["hand pose is off: No module named 'mediapipe'; fingertui runs image-only"]
    with pytest.raises(UserError, match="--features pose needs the hand-pose detector"):
        train(store, features="pose", backbone="dev-random", cfg=FAST)


@pytest.mark.slow
def test_cli_features_pose_without_detector_is_one_line_exit_2(store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    monkeypatch.setattr(streams, "pose_unavailable_reason", lambda: "No module named 'mediapipe'")
    import_paths(store, [write_bars(tmp_path / "bars", 4)])
    assert (
        main(["--home", str(store.ws.root), "train", "--backbone", "dev-random", "--features", "pose", "--json"]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mediapipe" in err[0]


def test_a_fresh_workspace_counts_with_the_starter_model(store, tmp_path, dev, capsys):
    import json

    paths = []
    for k in (1, 3, 4):
        p = tmp_path / f"hand{k}.png"
        finger_image(k, 50 + k).save(p)
        paths.append(str(p))
    capsys.readouterr()
    assert main(["--home", str(store.ws.root), "predict", *paths, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "starter" and out["run"] is None
    assert [p["label"] for p in out["predictions"]] == [1, 3, 4]
    assert all("starter model" in p["note"] and len(p["fingers"]) == 5 for p in out["predictions"])


@pytest.mark.slow
async def test_the_app_counts_with_the_starter_before_any_training(ws, dev):
    from fingertui.live.camera import ScriptedSource
    from fingertui.tui.app import make_app
    from fingertui.tui.widgets.panels import PredictionPanel

    frame = np.asarray(finger_image(2, 11).resize((320, 240)))
    app = make_app(ws, ScriptedSource([frame]))
    async with app.run_test(size=(140, 45)) as pilot:
        # Importing torch alone takes seconds on a busy machine.
        await wait_for(pilot, lambda: app.screen.query_one(PredictionPanel).shown is not None, seconds=120)
        label, probs, unsure = app.screen.query_one(PredictionPanel).shown
        assert label == 2
        assert "starter model" in str(app.screen.query_one("#model").render())
        ups = app.screen.query_one(PredictionPanel).shown_fingers  # the fingers line under the bars
        assert ups is not None and [u > 0.5 for u in ups] == [False, True, True, False, False]


@pytest.mark.slow
def test_a_half_bent_finger_is_flagged_borderline(bars_store, monkeypatch):
    from fingertui.learn import fingers

    run = train(bars_store, features="both", backbone="dev-random", cfg=FAST, flags=False).run
    target = bars_store.labelled()[0]
    real = fingers.FingerHead.up

    def up(self, F):  # the first sample's index finger reads 0.5: neither up nor down
        out = real(self, F)
        if len(F) == len(bars_store.samples(excluded=False)):
            out[0, 1] = 0.5
        return out

    monkeypatch.setattr(fingers.FingerHead, "up", up)
    flags.recompute(bars_store, run)
    assert "finger-borderline" in bars_store.flags.open_for(target.id)


@pytest.mark.slow
def test_a_stored_photo_and_the_same_photo_from_its_file_are_seen_alike(bars_store):
    """The features training saw of a stored image (through the caches) are the ones
    predicting that image's file gives: what the model was checked on is what it answers."""
    from fingertui.data.images import open_rgb

    run = train(bars_store, features="both", backbone="dev-random", cfg=FAST, flags=False).run
    model = Model.for_run(bars_store, run)
    samples = bars_store.labelled()[::9]
    stored = model.features_of_samples(bars_store, samples)
    fresh = model.features_of_images([open_rgb(bars_store.ws.abs(s.path)) for s in samples])
    assert stored.hand.all() and stored.hand.tolist() == fresh.hand.tolist()
    assert stored.boxes == fresh.boxes
    for stream in ("image", "pose", "fingers"):
        assert np.array_equal(getattr(stored, stream), getattr(fresh, stream)), stream
    assert np.array_equal(model.probs(stored), model.probs(fresh))

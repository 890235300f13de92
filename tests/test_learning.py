"""Learning core: backbones, embedding cache, training, calibration, runs, export."""

import json
import urllib.error

import numpy as np
import pytest
from PIL import Image

from fingertui.cli import main
from fingertui.data.importer import import_paths
from fingertui.errors import Cancelled, UserError
from fingertui.export.build import export_torchscript
from fingertui.learn import backbones, embeddings, pretrained
from fingertui.learn.checkpoint import Checkpoint, save_fields
from fingertui.learn.fitting import TrainConfig
from fingertui.learn.heads import fit_linear, fit_temperature, group_folds, logits, training_views
from fingertui.learn.metrics import evaluate, mcnemar
from fingertui.learn.model import Model
from fingertui.learn.pooling import softmax
from fingertui.runs import records as runs
from fingertui.train.pipeline import train_run
from tests.conftest import SHARED, finger_image, needs_shared, write_bars

FAST = TrainConfig(views=1, max_epochs=40)


@pytest.fixture
def dev_backbone(monkeypatch):
    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")


@pytest.fixture
def bars(tmp_path):
    return write_bars(tmp_path / "bars", 8)


@pytest.fixture
def dataset(store, bars, dev_backbone):
    import_paths(store, [bars])
    return store


@pytest.mark.slow
def test_same_data_and_seed_give_the_same_run(dataset):
    a = train_run(dataset, backbone="dev-random", cfg=FAST)
    b = train_run(dataset, backbone="dev-random", cfg=FAST)
    assert a.data_hash == b.data_hash
    assert a.metrics["test"] == b.metrics["test"] and a.metrics["temperature"] == b.metrics["temperature"]
    ca = Checkpoint.load(dataset.ws.abs(a.checkpoint)).experts["image"]["head_state"]
    cb = Checkpoint.load(dataset.ws.abs(b.checkpoint)).experts["image"]["head_state"]
    assert all(np.array_equal(ca[k], cb[k]) for k in ca)
    assert [r["probs"] for r in runs.run_predictions(dataset, a.id)] == [
        r["probs"] for r in runs.run_predictions(dataset, b.id)
    ]


@pytest.mark.slow
def test_second_training_embeds_nothing_and_new_captures_only_themselves(dataset, tmp_path):
    first = train_run(dataset, backbone="dev-random", cfg=FAST)
    n_train, n_test = first.n_train, first.n_test
    assert first.metrics["embedded_new"] == n_train * (FAST.views + 1) + n_test
    second = train_run(dataset, backbone="dev-random", cfg=FAST)
    assert second.metrics["embedded_new"] == 0
    for k in range(3):
        p = tmp_path / "new" / "2" / f"{k}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        finger_image(2, 9000 + k).save(p)
    import_paths(dataset, [tmp_path / "new"])
    new = [s for s in dataset.labelled() if "new" in (s.origin or "")]
    third = train_run(dataset, backbone="dev-random", cfg=FAST)
    expected = sum(FAST.views + 1 if s.split == "train" else 1 for s in new)
    assert third.metrics["embedded_new"] == expected


@pytest.mark.slow
def test_cache_is_keyed_on_backbone_and_recipe(dataset, monkeypatch):
    cache = embeddings.EmbeddingCache(dataset)
    train_run(dataset, backbone="dev-random", cfg=FAST)
    before = cache.count("dev-random@seed0")
    monkeypatch.setattr(embeddings, "RECIPE_ID", "aug-changed")
    run = train_run(dataset, backbone="dev-random", cfg=FAST)
    # Plain views are reused; every augmented view is recomputed under the new recipe.
    assert run.metrics["embedded_new"] == run.n_train * FAST.views
    assert cache.count("dev-random@seed0") == before + run.n_train * FAST.views
    # A different backbone finds nothing of the other's.
    bb = backbones.load("efficientnet-lite0")
    emb = embeddings.Embedder(dataset, bb)
    sample = dataset.labelled()[0]
    emb.vectors([(sample.sha256, sample.path)], 0)
    assert emb.computed == 1 and cache.count(bb.id) == 1


def test_calibration_lowers_ece_on_a_held_out_fold():
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.integers(0, 6, n)
    true_logits = rng.normal(0, 1, (n, 6))
    true_logits[np.arange(n), y] += 1.5
    overconfident = true_logits * 4  # a model that is right ~70% of the time but says 99%
    from fingertui.learn.metrics import ece

    fold_a, fold_b = slice(0, n // 2), slice(n // 2, n)
    t = fit_temperature(overconfident[fold_a], y[fold_a])
    assert t > 2
    before = ece(softmax(overconfident[fold_b]), y[fold_b])
    after = ece(softmax(overconfident[fold_b], t), y[fold_b])
    assert after < before / 3


def test_metrics_match_scikit_learn():
    from sklearn import metrics as skm

    y = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 5])
    pred = np.array([0, 1, 1, 1, 2, 2, 2, 1, 2, 3, 0, 5])
    probs = np.eye(6)[pred] * 0.9 + 0.1 / 6
    m = evaluate(y, probs)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    labels = [0, 1, 2, 3, 5]
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    for i, c in enumerate(labels):
        row = m["per_class"][str(c)]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
    assert np.array_equal(np.array(m["confusion"]["counts"]), skm.confusion_matrix(y, pred, labels=range(6)))
    assert m["confusion"]["counts"][0][1] == 1  # row = true 0, column = predicted 1
    assert m["missing_classes"] == [4] and "4" not in m["per_class"]
    lo, hi = m["accuracy_ci95"]
    assert lo <= m["accuracy"] <= hi


def test_mcnemar_exact_on_a_hand_made_pair():
    a = np.array([True] * 10 + [True] * 9 + [False] * 1 + [False] * 5)
    b = np.array([True] * 10 + [False] * 9 + [True] * 1 + [False] * 5)
    r = mcnemar(a, b)
    assert (r["a_right_b_wrong"], r["a_wrong_b_right"]) == (9, 1)
    assert r["p_value"] == pytest.approx(2 * 11 / 1024)  # 2·P(X ≤ 1), X ~ Bin(10, ½)
    assert mcnemar(a, a)["p_value"] == 1.0


@pytest.mark.slow
def test_refused_checkpoints(dataset, tmp_path, capsys):
    run = train_run(dataset, backbone="dev-random", cfg=FAST)
    path = dataset.ws.abs(run.checkpoint)
    ckpt = Checkpoint.load(path).as_dict()
    other = tmp_path / "other.pt"
    experts = {**ckpt["experts"], "image": {**ckpt["experts"]["image"], "backbone": "efficientnet-lite0@00000000:b5g4"}}
    save_fields(other, {**ckpt, "experts": experts})
    with pytest.raises(UserError, match="trained on backbone efficientnet-lite0@00000000"):
        Model.from_checkpoint(other)
    # Same weights, run another way by an older fingertui (efficientnet-lite0 at 224 px):
    # say that, not "provide the same weights".
    older = backbones.load("efficientnet-lite0").id.replace(f"s{backbones.EFFNET_SIZE}", "")
    experts = {**ckpt["experts"], "image": {**ckpt["experts"]["image"], "backbone": older}}
    save_fields(other, {**ckpt, "experts": experts})
    with pytest.raises(UserError, match="older fingertui .*retrain") as e:
        Model.from_checkpoint(other)
    assert "--weights" not in str(e.value)
    save_fields(other, {**ckpt, "classes": [1, 2, 3, 4, 5]})
    with pytest.raises(UserError, match="classes"):
        Model.from_checkpoint(other)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    assert main(["--home", str(dataset.ws.root), "predict", str(next(iter(dataset.ws.images_dir.rglob("*.png"))))]) == 2
    err = capsys.readouterr().err
    assert "cannot be read" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_offline_resnet_falls_back_with_one_line_and_weights_file_works(monkeypatch, tmp_path):
    import torch
    from torchvision.models import resnet18

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(pretrained, "download", offline)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing cached
    monkeypatch.delenv(backbones.ENV_WEIGHTS, raising=False)
    backbones._CACHE.clear()
    said = []
    bb = backbones.load("resnet18", warn=said.append)
    assert bb.name == "efficientnet-lite0" and bb.pretrained
    assert len(said) == 1 and "no ResNet-18 weights" in said[0] and "--weights" in said[0] and "\n" not in said[0]
    weights = tmp_path / "r18.pth"
    torch.save(resnet18().state_dict(), weights)
    bb = backbones.load("resnet18", weights_file=str(weights), warn=said.append)
    assert bb.id.startswith("resnet18@file-") and bb.dim == 256 * 16 and len(said) == 1
    with pytest.raises(UserError, match="not a PyTorch state dict"):
        (tmp_path / "bad.pth").write_bytes(b"junk")
        backbones.load("resnet18", weights_file=str(tmp_path / "bad.pth"))


@pytest.mark.slow  # loading a backbone imports torch, even to refuse it
def test_random_backbone_is_developer_only(monkeypatch):
    monkeypatch.delenv(backbones.ENV_DEV_RANDOM, raising=False)
    monkeypatch.setattr(backbones, "_CACHE", {})  # as in a fresh process: none loaded yet
    with pytest.raises(UserError, match="development only"):
        backbones.load("dev-random")
    # One loaded while it was allowed is not handed out once it is not.
    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    assert backbones.load("dev-random").name == "dev-random"
    monkeypatch.delenv(backbones.ENV_DEV_RANDOM)
    with pytest.raises(UserError, match="development only"):
        backbones.load("dev-random")
    with pytest.raises(UserError, match="unknown backbone"):
        backbones.load("vgg16")


@pytest.mark.slow
def test_cancel_leaves_no_run_and_no_checkpoint(dataset):
    import threading

    cancel = threading.Event()

    def progress(phase, k, n):
        if phase.startswith("training"):
            cancel.set()

    with pytest.raises(Cancelled):
        train_run(dataset, backbone="dev-random", cfg=FAST, progress=progress, cancel=cancel)
    assert runs.list_runs(dataset) == []
    assert list(dataset.ws.models_dir.glob("*")) == []


def test_not_enough_data_is_a_clear_error(store, tmp_path, dev_backbone):
    p = tmp_path / "one" / "3" / "a.png"
    p.parent.mkdir(parents=True)
    finger_image(3, 1).save(p)
    import_paths(store, [tmp_path / "one"])
    with pytest.raises(UserError, match="not enough labelled training images"):
        train_run(store, backbone="dev-random")


def _blobs(n_per_class, classes, noise, seed, dim=40, spread=1.0):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0, spread, (6, dim))
    y = np.repeat(np.asarray(classes), n_per_class)
    return centres[y] + rng.normal(0, noise, (len(y), dim)), y


def test_linear_head_picks_its_regularisation_on_the_validation_fold():
    # Few, noisy training images in many dimensions: an unregularised fit memorises the
    # noise. The validation fold must steer λ to a strong value, and the kept head must be
    # the one with the lowest validation loss of the path.
    X, y = _blobs(8, range(6), noise=1.0, seed=0, dim=200, spread=0.15)
    Xv, yv = _blobs(40, range(6), noise=1.0, seed=1, dim=200, spread=0.15)
    Xt, yt = _blobs(200, range(6), noise=1.0, seed=2, dim=200, spread=0.15)
    cfg = TrainConfig(l2_path=(1.0, 1e-1, 1e-2, 1e-4, 1e-6))
    fit = fit_linear(X, y, cfg, val=(Xv, yv))
    assert len(fit.history) == 5 and fit.val_loss == min(fit.history)
    assert fit.l2 == cfg.l2_path[int(np.argmin(fit.history))]
    assert fit.l2 >= 1e-2
    weakest = fit_linear(X, y, cfg, l2=1e-6)
    nll = lambda head: -np.log(softmax(logits(head, Xt))[np.arange(len(yt)), yt]).mean()  # noqa: E731
    assert nll(fit.head) < nll(weakest.head)
    assert (logits(fit.head, Xt).argmax(1) == yt).mean() > 0.3  # chance is 1/6


def test_linear_head_never_predicts_a_class_it_has_not_seen():
    X, y = _blobs(20, [1, 3], noise=0.5, seed=0)  # two classes only
    fit = fit_linear(X, y, TrainConfig())
    Xt, yt = _blobs(30, range(6), noise=0.5, seed=1)
    pred = logits(fit.head, Xt).argmax(1)
    assert set(pred.tolist()) <= {1, 3}
    both = np.isin(yt, [1, 3])
    assert (pred[both] == yt[both]).mean() > 0.95


def test_linear_head_of_one_class_says_that_class():
    X, y = _blobs(5, [4], noise=0.5, seed=0)
    fit = fit_linear(X, y, TrainConfig(), val=(X, y))
    Xt, _ = _blobs(3, range(6), noise=0.5, seed=1)
    assert (logits(fit.head, Xt).argmax(1) == 4).all()


def test_augmented_views_go_to_scarce_classes():
    cfg = TrainConfig(views=2, class_vectors=30)
    y = np.array([0] * 5 + [1] * 20 + [2] * 40)
    keys = [f"img{i}" for i in range(len(y))]
    views = np.array(training_views(y, keys, cfg))
    assert (views[y == 0] == 2).all()  # 5 images: both views each (15 vectors, under 30)
    assert views[y == 1].sum() == 10 and set(views[y == 1].tolist()) == {0, 1}  # 20 → 30
    assert (views[y == 2] == 0).all()  # a class with 40 images needs none
    # One more image moves the extra views of at most a couple of the others.
    y2, keys2 = np.append(y, 1), [*keys, "new"]
    again = np.array(training_views(y2, keys2, cfg))[:-1]
    assert (again != views).sum() <= 2


def test_group_folds_keep_groups_together():
    y = np.repeat(np.arange(6), 10)
    groups = np.array([f"g{i // 2}" for i in range(60)])  # pairs of near-duplicates
    folds = group_folds(y, groups, 5, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(60))
    for f in folds:
        held = set(groups[f])
        rest = set(groups[np.setdiff1d(np.arange(60), f)])
        assert not held & rest


@pytest.mark.slow
def test_export_reproduces_fingertuis_probabilities(dataset, tmp_path):
    import torch

    run = train_run(dataset, backbone="dev-random", cfg=FAST)
    model = Model.from_checkpoint(dataset.ws.abs(run.checkpoint))
    dest = tmp_path / "model.pt"
    meta = export_torchscript(model, dest, run.id)
    assert meta["classes"] == [0, 1, 2, 3, 4, 5]
    paths = [dataset.ws.abs(s.path) for s in dataset.labelled()[:5]]
    ours = np.array([p.probs for p in model.predict_paths(paths)])
    extra = {"fingertui.json": ""}
    scripted = torch.jit.load(str(dest), _extra_files=extra)
    assert json.loads(extra["fingertui.json"])["run"] == run.id
    with torch.no_grad():
        theirs = np.concatenate(
            [
                scripted(
                    torch.from_numpy(np.asarray(Image.open(p).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
                ).numpy()
                for p in paths
            ]
        )
    assert np.allclose(ours, theirs, atol=2e-3)
    assert np.array_equal(ours.argmax(1), theirs.argmax(1))


@pytest.mark.slow
def test_cli_train_eval_predict_runs_json(dataset, capsys):
    home = ["--home", str(dataset.ws.root)]

    def js(argv):
        capsys.readouterr()
        assert main(argv) == 0
        return json.loads(capsys.readouterr().out)

    t1 = js([*home, "train", "--backbone", "dev-random", "--views", "1", "--json"])
    assert set(t1) == {"run", "metrics", "flags"} and t1["run"]["backbone"] == "dev-random@seed0"
    # Drawn bars hold no hand: the default feature set falls back to the image alone.
    assert t1["metrics"]["features"] == "image" and t1["metrics"]["hands_found"]["train"] == 0
    ev = js([*home, "eval", "--json"])
    assert ev["metrics"] == json.loads(json.dumps(t1["metrics"]["test"]))
    img = str(dataset.ws.abs(dataset.labelled()[0].path))
    pr = js([*home, "predict", img, "--json"])
    p = pr["predictions"][0]
    assert set(p) == {"path", "label", "confidence", "probs", "unsure", "hand_found", "note", "fingers"}
    assert sum(p["probs"]) == pytest.approx(1, abs=1e-4)
    assert p["confidence"] == max(p["probs"]) and p["unsure"] == (p["confidence"] < pr["threshold"])
    t2 = js([*home, "train", "--backbone", "dev-random", "--views", "1", "--seed", "1", "--json"])
    listed = js([*home, "runs", "--json"])["runs"]
    assert [r["id"] for r in listed] == [t1["run"]["id"], t2["run"]["id"]] and listed[-1]["active"]
    cmp = js([*home, "runs", "compare", str(t1["run"]["id"]), str(t2["run"]["id"]), "--json"])
    assert {"accuracy_delta", "mcnemar", "recall", "right_to_wrong", "wrong_to_right"} <= set(cmp)
    assert main([*home, "runs", "activate", str(t1["run"]["id"])]) == 0
    assert js([*home, "runs", "--json"])["runs"][0]["active"]
    assert main([*home, "eval", "--run", "99"]) == 2


@pytest.mark.slow
def test_eval_on_external_folder_adds_nothing(dataset, bars, capsys):
    train_run(dataset, backbone="dev-random", cfg=FAST)
    before = dataset.count()
    assert main(["--home", str(dataset.ws.root), "eval", str(bars), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"]["n"] == 48 and dataset.count() == before


def test_no_model_and_no_hand_pose_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    from fingertui.learn import streams

    # Without the hand-pose detector there is no starter model either.
    monkeypatch.setattr(streams, "pose_unavailable_reason", lambda: "No module named 'mediapipe'")
    img = tmp_path / "a.png"
    finger_image(1, 1).save(img)
    assert main(["--home", str(tmp_path / "h"), "predict", str(img)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no trained model yet" in err[0]


@needs_shared()
@pytest.mark.slow
def test_real_photos_offline_backbone_well_above_chance(store):
    import_paths(store, [SHARED])
    labelled = store.labelled()
    rng = np.random.default_rng(0)
    subset = []
    for c in range(6):
        for split, k in (("train", 40), ("test", 20)):
            pool = [s for s in labelled if s.label == c and s.split == split]
            subset += [pool[i] for i in rng.choice(len(pool), k, replace=False)]
    run = train_run(store, samples=subset, backbone="efficientnet-lite0", cfg=TrainConfig(views=1))
    assert run.backbone.startswith("efficientnet-lite0@")
    assert run.n_test == 120 and run.metrics["test"]["accuracy"] >= 0.85  # chance is 1/6

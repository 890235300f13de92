"""The heads without torch or scikit-learn: the NumPy linear head and its L-BFGS fit (the
same solutions as scikit-learn's), the folds, the .npz checkpoint (and the older torch
ones), and a pose-only run that never imports either library."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from fingertui.cli import main
from fingertui.data.importer import import_paths
from fingertui.errors import UserError
from fingertui.learn import backbones
from fingertui.learn.checkpoint import FORMAT_V2, Checkpoint, save_fields
from fingertui.learn.fitting import TrainConfig
from fingertui.learn.heads import _class_weights, fit_linear, fit_linear_quick, group_folds, logits
from fingertui.learn.model import Model
from fingertui.learn.pooling import softmax
from fingertui.train.pipeline import train
from tests.conftest import finger_image, write_bars

ROOT = Path(__file__).resolve().parents[1]
FAST = TrainConfig(views=1, max_epochs=40)


def _blobs(counts, dim=50, seed=0, noise=1.5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (6, dim))
    y = np.repeat(np.arange(len(counts)) if len(counts) == 6 else np.asarray([1, 4]), counts)
    return (centres[y] + rng.normal(0, noise, (len(y), dim))).astype(np.float32), y


def _standardised(X):
    mean = X.mean(0)
    return (X - mean) / np.maximum(X.std(0), 1e-3)


def _sklearn(Xs, y, C, *, tol=1e-4, max_iter=500, warm=None):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    lr = warm or LogisticRegression(tol=tol, max_iter=max_iter, warm_start=warm is not None)
    lr.set_params(C=C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return lr.fit(Xs, y, sample_weight=_class_weights(y))


@pytest.mark.slow
def test_linear_head_has_scikit_learns_solution_along_the_l2_path():
    # Unequal classes (the class weights matter), a validation fold choosing λ on a path
    # of warm-started fits: what fit_linear did with scikit-learn, redone with it here.
    X, y = _blobs([10, 20, 30, 15, 25, 12], seed=0)
    Xv, yv = _blobs([8] * 6, seed=1)
    cfg = TrainConfig(l2_path=(1e-1, 1e-2, 1e-3))
    fit = fit_linear(X, y, cfg, val=(Xv, yv))
    Xs = _standardised(X)
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(tol=1e-4, max_iter=500, warm_start=True)
    theirs = {}
    for lam in cfg.l2_path:
        _sklearn(Xs, y, 1.0 / (2 * lam * len(y)), warm=lr)
        theirs[lam] = lr.predict_proba(Xs)
    assert fit.l2 in cfg.l2_path and len(fit.history) == 3
    ours = softmax(logits(fit.head, X))
    assert np.abs(ours - theirs[fit.l2]).max() < 1e-3
    # A different λ gives visibly different probabilities: the comparison can tell them apart.
    other = next(lam for lam in cfg.l2_path if lam != fit.l2)
    assert np.abs(theirs[other] - theirs[fit.l2]).max() > 1e-2


def test_quick_out_of_fold_head_matches_scikit_learn_at_25_iterations():
    X, y = _blobs([100, 90, 80, 120, 70, 110], seed=2, noise=3.0)  # overlapping: 32 iterations to converge
    cfg = TrainConfig(oof_l2=1e-4)
    head = fit_linear_quick(X, y, cfg)
    lr = _sklearn(_standardised(X), y, 1.0 / (2 * cfg.oof_l2 * len(y)), max_iter=cfg.oof_iters)
    assert lr.n_iter_[0] == cfg.oof_iters  # the cap was reached: this compares the cut-short path
    assert np.abs(softmax(logits(head, X)) - lr.predict_proba(_standardised(X))).max() < 1e-3


def test_two_classes_are_a_multinomial_of_two_with_the_binary_optimum():
    # fit_linear always fits a multinomial over the classes present. For two classes that
    # is scikit-learn's binary model at twice the C (W = ±w/2 carries half the penalty).
    X, y = _blobs([30, 50], seed=3)
    lam = 1e-2
    fit = fit_linear(X, y, TrainConfig(), l2=lam)
    lr = _sklearn(_standardised(X), y, 1.0 / (lam * len(y)), tol=1e-10, max_iter=10_000)
    p = softmax(logits(fit.head, X))
    assert np.abs(p[:, [1, 4]] - lr.predict_proba(_standardised(X))).max() < 2e-3
    assert p[:, [0, 2, 3, 5]].max() < 1e-9  # classes it never saw


def test_group_folds_share_out_every_class_evenly():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(6), [7, 12, 5, 9, 20, 6])
    groups = np.array([f"g{i}" for i in rng.permutation(len(y))])  # one image per group
    for seed in range(3):
        folds = group_folds(y, groups, 5, seed)
        assert sorted(np.concatenate(folds).tolist()) == list(range(len(y)))
        mix = np.array([np.bincount(y[f], minlength=6) for f in folds])
        assert (mix.max(0) - mix.min(0) <= 1).all(), mix
    zero, one = group_folds(y, groups, 5, 0), group_folds(y, groups, 5, 1)
    assert not all(np.array_equal(a, b) for a, b in zip(zero, one, strict=True))  # the seed shuffles


def test_group_folds_even_out_big_groups():
    # Look-alike snapshots: most of a class in one group. Folds stay even in images (each
    # within the biggest group of the others) and no group is split.
    y = np.repeat(np.arange(6), 10)
    groups = np.array([f"big{c}" if k < 6 else f"s{c}-{k}" for c, k in zip(y, np.tile(np.arange(10), 6), strict=True)])
    folds = group_folds(y, groups, 5, 0)
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 6
    for f in folds:
        assert not set(groups[f]) & set(groups[np.setdiff1d(np.arange(len(y)), f)])


def _modules_after(code: str, env: dict | None = None) -> list[str]:
    probe = f"{code}\nimport sys\nprint(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    return json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_pipeline_and_model_import_neither_torch_nor_sklearn():
    assert (
        _modules_after(
            "import fingertui.train.pipeline, fingertui.learn.model, fingertui.learn.heads, fingertui.learn.metrics"
        )
        == []
    )


# --- checkpoints ------------------------------------------------------------------------


@pytest.fixture
def bars_store(store, tmp_path, monkeypatch):
    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    monkeypatch.setenv("FINGERTUI_DEV_HANDS", "1")
    import_paths(store, [write_bars(tmp_path / "bars", 8)])
    return store


def _as_torch_file(ckpt: dict, path: Path, fmt: str = FORMAT_V2) -> None:
    """What fingertui wrote before the .npz: torch.save of the same dict, arrays as tensors."""
    import torch

    def tensors(v):
        if isinstance(v, np.ndarray):
            return torch.from_numpy(v.copy())
        if isinstance(v, dict):
            return {k: tensors(x) for k, x in v.items()}
        return v

    torch.save({**tensors(ckpt), "format": fmt}, path)


@pytest.mark.slow
@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_torch_checkpoint_of_before_loads_and_predicts_the_same(bars_store, tmp_path, head):
    run = train(
        bars_store, features="both", backbone="dev-random", cfg=TrainConfig(views=1, head=head), flags=False
    ).run
    path = bars_store.ws.abs(run.checkpoint)
    assert path.suffix == ".npz" and path.name.startswith("run-")
    new = Checkpoint.load(path)
    assert new.experts["image"]["head"]["kind"] == head
    old = tmp_path / "run-old.pt"
    _as_torch_file(new.as_dict(), old)
    images = [np.asarray(finger_image(k, 500 + k)) for k in range(6)]
    a = Model.from_checkpoint(path).predict_images(images)
    b = Model.from_checkpoint(old).predict_images(images)
    assert [p.probs for p in a] == [p.probs for p in b]
    assert sum(p.label == k for k, p in enumerate(a)) >= 5  # a working model, not two broken alike


@pytest.mark.slow
def test_torch_checkpoint_without_torch_says_what_it_needs(bars_store, tmp_path, monkeypatch):
    run = train(bars_store, features="pose", backbone="dev-random", cfg=FAST, flags=False).run
    old = tmp_path / "run-old.pt"
    _as_torch_file(Checkpoint.load(bars_store.ws.abs(run.checkpoint)).as_dict(), old)
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(UserError, match="older fingertui and needs torch") as e:
        Checkpoint.load(old)
    assert "\n" not in str(e.value)
    assert Checkpoint.load(bars_store.ws.abs(run.checkpoint)).experts  # the .npz needs no torch


@pytest.mark.slow
def test_damaged_npz_checkpoints_say_so_in_one_line(bars_store, tmp_path, capsys):
    run = train(bars_store, features="pose", backbone="dev-random", cfg=FAST, flags=False).run
    path = bars_store.ws.abs(run.checkpoint)
    ckpt = Checkpoint.load(path)
    bad = tmp_path / "bad.npz"
    # Not ours: an .npz without our metadata.
    np.savez(bad, weights=np.zeros(3))
    with pytest.raises(UserError, match="not a fingertui checkpoint"):
        Checkpoint.load(bad)
    # A reference to an array that is not there.
    ckpt.save(bad)
    with np.load(bad) as f:
        kept = {k: f[k] for k in f.files if k != "a0"}
    np.savez(bad, **kept)
    with pytest.raises(UserError, match="damaged .*a0"):
        Checkpoint.load(bad)
    # A pose head that does not fit its dimension.
    experts = {**ckpt.experts, "pose": {**ckpt.experts["pose"]}}
    experts["pose"]["head"] = {**experts["pose"]["head"], "dim": experts["pose"]["head"]["dim"] + 1}
    save_fields(bad, {**ckpt.as_dict(), "experts": experts})
    with pytest.raises(UserError, match="does not fit its head"):
        Model.from_checkpoint(bad)
    # Truncated: the CLI says it in one line, exit 2.
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    capsys.readouterr()
    assert main(["--home", str(bars_store.ws.root), "predict", str(tmp_path / "bars" / "2" / "0.png")]) == 2
    err = capsys.readouterr().err
    assert "cannot be read" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_pose_only_run_trains_and_predicts_without_torch_or_sklearn(tmp_path):
    home, bars = tmp_path / "ws", write_bars(tmp_path / "bars", 8)
    env = {"FINGERTUI_DEV_HANDS": "1"}
    cli = "from fingertui.cli import main\nassert main({!r}) == 0"
    assert _modules_after(cli.format(["--home", str(home), "import", str(bars)]), env) == []
    assert _modules_after(cli.format(["--home", str(home), "train", "--features", "pose"]), env) == []
    (ckpt,) = (home / "data" / "models").iterdir()
    assert ckpt.suffix == ".npz"
    assert _modules_after(cli.format(["--home", str(home), "predict", str(bars / "3" / "0.png")]), env) == []


@pytest.mark.slow
def test_image_run_with_augmented_views_in_a_fresh_process(tmp_path):
    # Nothing imports torch up front any more; augmenting imports it on the decoding thread
    # while the network threads start (a fresh process, as from the CLI, with no vectors cached).
    bars = write_bars(tmp_path / "bars", 4)  # 4 per class: augmented views for every class
    for ws in ("warm", "fresh"):  # the first makes sure the backbone's ONNX export is cached
        home = str(tmp_path / ws)
        cmd = [sys.executable, "-m", "fingertui", "--home", home]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([*cmd, "import", str(bars)], check=True, capture_output=True, env=env)
        r = subprocess.run(
            [*cmd, "train", "--backbone", "efficientnet-lite0", "--features", "image", "--json"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert r.returncode == 0, r.stderr[-600:]
        assert json.loads(r.stdout)["run"]["features"] == "image"


@pytest.mark.slow
def test_a_model_saves_itself_and_loads_back_predicting_the_same(bars_store, tmp_path):
    run = train(bars_store, features="both", backbone="dev-random", cfg=FAST, flags=False).run
    model = Model.from_checkpoint(bars_store.ws.abs(run.checkpoint))
    model.save(tmp_path / "copy.npz")
    again = Model.from_checkpoint(tmp_path / "copy.npz")
    images = [np.asarray(finger_image(k, 700 + k)) for k in range(6)]
    assert [p.probs for p in again.predict_images(images)] == [p.probs for p in model.predict_images(images)]
    assert again.checkpoint.metrics == model.checkpoint.metrics and again.threshold == model.threshold


def test_the_starter_saves_and_loads_like_any_model(bars_store, tmp_path):
    starter = Model.starter()
    starter.save(tmp_path / "starter.npz")
    again = Model.from_checkpoint(tmp_path / "starter.npz")
    images = [np.asarray(finger_image(k, 800 + k)) for k in range(6)]
    assert again.is_starter and again.threshold == starter.threshold
    assert [p.probs for p in again.predict_images(images)] == [p.probs for p in starter.predict_images(images)]


def test_a_checkpoint_keeps_the_fields_a_later_fingertui_added(bars_store, tmp_path):
    run = train(bars_store, features="pose", backbone="dev-random", cfg=FAST, flags=False).run
    fields = Checkpoint.load(bars_store.ws.abs(run.checkpoint)).as_dict()
    save_fields(tmp_path / "later.npz", {**fields, "calibration_set": {"n": 3, "seen": np.arange(3)}})
    later = Checkpoint.load(tmp_path / "later.npz")
    later.save(tmp_path / "again.npz")
    kept = Checkpoint.load(tmp_path / "again.npz").extra["calibration_set"]
    assert kept["n"] == 3 and kept["seen"].tolist() == [0, 1, 2]

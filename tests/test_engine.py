"""ONNX Runtime runs the backbone on a CPU: the same vectors as torch to float16 precision,
cached apart from torch's, exported once and kept, and torch whenever it cannot run."""

import numpy as np
import pytest

from fingertui.data.importer import import_paths
from fingertui.learn import backbones, embeddings, engine, pretrained
from tests.conftest import write_bars

pytestmark = pytest.mark.slow


@pytest.fixture
def dataset(store, tmp_path, monkeypatch):
    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    import_paths(store, [write_bars(tmp_path / "bars", 3)])
    return store


def fresh(name="dev-random"):
    """A backbone of its own (not the process-wide one), on ONNX Runtime if it can."""
    bb = backbones.load_dev_random() if name == "dev-random" else backbones.LOADERS[name]()
    bb.use_onnxruntime()
    return bb


def images(store):
    return [embeddings.load_rgb(str(store.ws.abs(s.path))) for s in store.labelled()]


@pytest.mark.parametrize("name", ["dev-random", "efficientnet-lite0"])
def test_onnxruntime_gives_torchs_vectors_to_float16_precision(dataset, name):
    bb = fresh(name)
    assert bb.engine == engine.ORT, bb.engine_note
    imgs = images(dataset)
    on_ort = embeddings.Embedder.embed_images(bb, imgs)
    bb.ort, bb.engine = None, engine.TORCH
    on_torch = embeddings.Embedder.embed_images(bb, imgs)
    assert on_ort.shape == on_torch.shape == (len(imgs), bb.dim)
    # Mostly the very same float16 value; the rest a float16 step or so apart, a tiny
    # fraction of the vector's own scale (float32 sums in another order).
    scale = np.abs(on_torch).max(axis=1, keepdims=True)
    assert (np.abs(on_ort - on_torch) <= 2e-3 * scale).all()
    assert (on_ort == on_torch).mean() > 0.9


def test_vectors_of_one_engine_are_never_served_to_the_other(dataset):
    bb = fresh()
    samples = [(s.sha256, s.path) for s in dataset.labelled()]
    first = embeddings.Embedder(dataset, bb)
    first.vectors(samples, 0)
    assert first.computed == len(samples)
    bb.ort, bb.engine = None, engine.TORCH
    on_torch = embeddings.Embedder(dataset, bb)
    on_torch.vectors(samples, 0)
    assert on_torch.computed == len(samples)  # nothing taken from ONNX Runtime's vectors
    assert embeddings.plain_key(engine.ORT) != embeddings.plain_key(engine.TORCH)
    assert embeddings.views_key(engine.ORT) != embeddings.views_key(engine.TORCH)


def test_the_export_is_kept_and_a_damaged_one_is_made_again(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv(engine.ENV_CACHE, str(tmp_path / "cache"))
    calls = []
    real = engine.export_trunk
    monkeypatch.setattr(engine, "export_trunk", lambda *a: calls.append(1) or real(*a))
    reference = embeddings.Embedder.embed_images(fresh(), images(dataset))
    assert len(calls) == 1
    (kept,) = (tmp_path / "cache" / "onnx").glob("dev-random-*.onnx")
    fresh()
    assert len(calls) == 1  # the second process (here: backbone) loads the kept file
    kept.write_bytes(b"not an onnx model")
    bb = fresh()
    assert len(calls) == 2 and bb.engine == engine.ORT
    np.testing.assert_array_equal(embeddings.Embedder.embed_images(bb, images(dataset)), reference)


def test_torch_runs_it_when_onnxruntime_cannot(dataset, monkeypatch):
    monkeypatch.setenv(engine.ENV_ENGINE, "torch")
    bb = fresh()
    assert bb.engine == engine.TORCH and bb.ort is None and "FINGERTUI_ENGINE" in bb.engine_note
    assert backbones.expected_engine() == engine.TORCH
    monkeypatch.delenv(engine.ENV_ENGINE)

    def broken(*a):
        raise RuntimeError("unsupported operator")

    monkeypatch.setenv(engine.ENV_CACHE, str(dataset.ws.root / "empty-cache"))
    monkeypatch.setattr(engine, "export_trunk", broken)
    bb = fresh()
    assert bb.engine == engine.TORCH and "unsupported operator" in bb.engine_note
    vecs = embeddings.Embedder.embed_images(bb, images(dataset))
    assert np.isfinite(vecs).all() and vecs.shape[1] == bb.dim


def test_an_unwritable_cache_only_costs_the_export(dataset, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv(engine.ENV_CACHE, str(blocker))
    bb = fresh()
    assert bb.engine == engine.ORT, bb.engine_note
    assert blocker.read_text() == "a file where the cache folder would go"
    assert np.isfinite(embeddings.Embedder.embed_images(bb, images(dataset))).all()


@pytest.mark.parametrize(("h", "w", "size"), [(100, 100, 160), (336, 336, 160), (480, 640, 160), (97, 131, 64)])
def test_numpy_resize_gives_the_pixels_of_torchs_preprocessing(h, w, size):
    # The ONNX Runtime path resizes with numpy/PIL, the exported TorchScript file with torch:
    # both must see the same picture, enlarged (sign-digits' 100 px) or shrunk (webcam frames).
    import torch

    from fingertui.learn.torchnets import Preprocess

    img = np.random.default_rng(h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.3, 0.25)
    ours = engine.prepare(img, size, mean, std)
    theirs = Preprocess(size, list(mean), list(std))(torch.from_numpy(img).permute(2, 0, 1)[None]).numpy()
    assert ours.shape == theirs.shape == (1, 3, size, size) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


@pytest.mark.parametrize("side", [10, 7, 4, 2])
def test_numpy_pooling_is_torchs_adaptive_pooling(side):
    import torch
    from torch.nn import functional as F

    fmap = np.random.default_rng(side).standard_normal((2, 8, side, side)).astype(np.float32)
    want = F.adaptive_avg_pool2d(torch.from_numpy(fmap), backbones.GRID).flatten(1).numpy()
    np.testing.assert_allclose(engine.pooled(fmap, backbones.GRID), want, atol=1e-6)


def test_a_cached_export_runs_without_importing_torch(dataset, tmp_path, monkeypatch):
    # The first load exports the trunk (with torch); a later process finds the file and
    # embeds the same vectors without importing torch at all (~4 s of every command).
    import json
    import os
    import subprocess
    import sys

    if backbones._gpu_possible():
        pytest.skip("a GPU may be present here: choosing the engine imports torch")
    monkeypatch.setenv(engine.ENV_CACHE, str(tmp_path / "cache"))
    backbones._CACHE.clear()
    bb = backbones.load("dev-random")
    assert bb.features is not None and bb.engine == engine.ORT
    paths = [str(dataset.ws.abs(s.path)) for s in dataset.labelled()]
    here = embeddings.Embedder.embed_images(bb, [embeddings.load_rgb(p) for p in paths])
    code = (
        "import json, sys\n"
        "from fingertui.learn import backbones, embeddings\n"
        "bb = backbones.load('dev-random')\n"
        f"v = embeddings.Embedder.embed_images(bb, [embeddings.load_rgb(p) for p in {paths!r}])\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'id': bb.id, 'engine': bb.engine, 'v': v.tolist()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}, check=True
    ).stdout
    got = json.loads(out)
    assert got["torch"] is False
    assert (got["id"], got["engine"]) == (bb.id, engine.ORT)
    np.testing.assert_array_equal(np.array(got["v"], dtype=np.float32), here)


def test_ids_worked_out_without_torch_are_the_loaders_ids(tmp_path, monkeypatch):
    # The torch-free load names the backbone itself; a different name would file its vectors
    # (and its models) under another backbone.
    import torch
    from torchvision.models import ResNet18_Weights, resnet18

    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    for name in ("dev-random", "efficientnet-lite0"):
        assert backbones._exported_id(name, None, None) == (name, backbones.LOADERS[name]().id)
    weights = tmp_path / "r18.pth"
    torch.save(resnet18().state_dict(), weights)
    full = backbones.load_resnet18(str(weights))
    assert backbones._exported_id("resnet18", str(weights), None) == ("resnet18", full.id)
    # torchvision's file name, transforms and cache folder, as the torch-free side has them.
    w = ResNet18_Weights.IMAGENET1K_V1
    assert w.url.rsplit("/", 1)[-1] == pretrained.RESNET18_FILE
    spec = backbones.SPECS["resnet18"]
    t = w.transforms()
    assert (t.crop_size[0], tuple(t.mean), tuple(t.std)) == (spec.size, spec.mean, spec.std)
    assert full.dim == spec.dim
    from pathlib import Path

    from torch.hub import get_dir

    assert pretrained.resnet18_cache_file() == Path(get_dir()) / "checkpoints" / pretrained.RESNET18_FILE


def test_a_retrain_and_a_prediction_need_neither_torch_nor_scikit_learn(dataset, tmp_path, monkeypatch):
    # Every vector cached (the first train computed them, the augmented views too) and the
    # trunk's export cached: retraining and predicting as a whole process import neither
    # (torch alone took ~4 s of every such command).
    import json
    import os
    import subprocess
    import sys

    from fingertui.train.pipeline import train

    if backbones._gpu_possible():
        pytest.skip("a GPU may be present here: choosing the engine imports torch")
    monkeypatch.setenv(engine.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setenv("FINGERTUI_DEV_HANDS", "1")
    backbones._CACHE.clear()
    first = train(dataset, features="both", backbone="dev-random", flags=False).run
    photo = str(dataset.ws.abs(dataset.labelled()[0].path))
    home = str(dataset.ws.root)
    code = (
        "import contextlib, io, json, sys\n"
        "from fingertui.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    rc = main(['--home', {home!r}, 'train', '--backbone', 'dev-random', '--features', 'both', '--json'])\n"
        f"    rc2 = main(['--home', {home!r}, 'predict', {photo!r}, '--json'])\n"
        "print(json.dumps({'rc': [rc, rc2], 'loaded': [m for m in ('torch', 'sklearn') if m in sys.modules]}))\n"
    )
    got = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}, check=True
        ).stdout.splitlines()[-1]
    )
    assert got == {"rc": [0, 0], "loaded": []}
    from fingertui.runs.records import list_runs

    assert {r.id for r in list_runs(dataset)} - {first.id}  # the retrain was recorded


def test_a_first_train_that_augments_needs_no_torch(tmp_path, monkeypatch):
    # Few images per class: the first train draws augmented views (PIL), and with the
    # trunk's export cached it imports no torch at all (torchvision's transforms did: 4-5 s).
    import json
    import os
    import subprocess
    import sys

    if backbones._gpu_possible():
        pytest.skip("a GPU may be present here: choosing the engine imports torch")
    monkeypatch.setenv(engine.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    backbones._CACHE.clear()
    backbones.load("dev-random")  # exports the trunk once, as a first ever run would
    bars, home = write_bars(tmp_path / "bars", 4), str(tmp_path / "ws")
    code = (
        "import contextlib, io, json, sys\n"
        "from fingertui.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    assert main(['--home', {home!r}, 'import', {str(bars)!r}]) == 0\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    rc = main(['--home', {home!r}, 'train', '--backbone', 'dev-random', '--features', 'image', '--json'])\n"
        "m = json.loads(out.getvalue())['metrics']\n"
        "print(json.dumps({'rc': rc, 'new': m['embedded_new'], 'torch': 'torch' in sys.modules}))\n"
    )
    got = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}, check=True
        ).stdout.splitlines()[-1]
    )
    assert got["rc"] == 0 and got["torch"] is False
    assert got["new"] > 6 * 4  # more vectors than images: the augmented views were drawn

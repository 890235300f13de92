"""ONNX Runtime runs the backbone on a CPU: the same vectors as torch to float16 precision,
cached apart from torch's, exported once and kept, and torch whenever it cannot run."""

import numpy as np
import pytest

from fingertui import backbones, engine, features
from fingertui.importer import import_paths
from tests.conftest import write_bars


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
    return [features.load_rgb(str(store.ws.abs(s.path))) for s in store.labelled()]


@pytest.mark.parametrize("name", ["dev-random", "efficientnet-lite0"])
def test_onnxruntime_gives_torchs_vectors_to_float16_precision(dataset, name):
    bb = fresh(name)
    assert bb.engine == engine.ORT, bb.engine_note
    imgs = images(dataset)
    on_ort = features.Embedder.embed_images(bb, imgs)
    bb.ort, bb.engine = None, engine.TORCH
    on_torch = features.Embedder.embed_images(bb, imgs)
    assert on_ort.shape == on_torch.shape == (len(imgs), bb.dim)
    # Mostly the very same float16 value; the rest a float16 step or so apart, a tiny
    # fraction of the vector's own scale (float32 sums in another order).
    scale = np.abs(on_torch).max(axis=1, keepdims=True)
    assert (np.abs(on_ort - on_torch) <= 2e-3 * scale).all()
    assert (on_ort == on_torch).mean() > 0.9


def test_vectors_of_one_engine_are_never_served_to_the_other(dataset):
    bb = fresh()
    samples = [(s.sha256, s.path) for s in dataset.labelled()]
    first = features.Embedder(dataset, bb)
    first.vectors(samples, 0)
    assert first.computed == len(samples)
    bb.ort, bb.engine = None, engine.TORCH
    on_torch = features.Embedder(dataset, bb)
    on_torch.vectors(samples, 0)
    assert on_torch.computed == len(samples)  # nothing taken from ONNX Runtime's vectors
    assert features.plain_key(engine.ORT) != features.plain_key(engine.TORCH)
    assert features.views_key(engine.ORT) != features.views_key(engine.TORCH)


def test_the_export_is_kept_and_a_damaged_one_is_made_again(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv(engine.ENV_CACHE, str(tmp_path / "cache"))
    calls = []
    real = engine.export_trunk
    monkeypatch.setattr(engine, "export_trunk", lambda *a: calls.append(1) or real(*a))
    reference = features.Embedder.embed_images(fresh(), images(dataset))
    assert len(calls) == 1
    (kept,) = (tmp_path / "cache" / "onnx").glob("dev-random-*.onnx")
    fresh()
    assert len(calls) == 1  # the second process (here: backbone) loads the kept file
    kept.write_bytes(b"not an onnx model")
    bb = fresh()
    assert len(calls) == 2 and bb.engine == engine.ORT
    np.testing.assert_array_equal(features.Embedder.embed_images(bb, images(dataset)), reference)


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
    vecs = features.Embedder.embed_images(bb, images(dataset))
    assert np.isfinite(vecs).all() and vecs.shape[1] == bb.dim


def test_an_unwritable_cache_only_costs_the_export(dataset, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv(engine.ENV_CACHE, str(blocker))
    bb = fresh()
    assert bb.engine == engine.ORT, bb.engine_note
    assert blocker.read_text() == "a file where the cache folder would go"
    assert np.isfinite(features.Embedder.embed_images(bb, images(dataset))).all()

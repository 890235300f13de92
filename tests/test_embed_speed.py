"""The pipelined embedding path: same vectors as one image at a time, cancellable, deterministic."""

import threading
import time

import numpy as np
import pytest

from fingertui.data.importer import import_paths
from fingertui.errors import Cancelled
from fingertui.learn import backbones, embeddings
from tests.conftest import write_bars
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

VIEWS = 2


@pytest.fixture
def dataset(store, tmp_path, monkeypatch):
    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    import_paths(store, [write_bars(tmp_path / "bars", 4)])
    return store


@pytest.fixture
def bb(dataset):
    return backbones.load("dev-random")


def pairs(store):
    return [(s.sha256, s.path) for s in store.labelled()]


def reference(store, bb, sha, path, views):
    """Each view embedded on its own, the plain way, without the pipeline or the cache."""
    img = embeddings.load_rgb(str(store.ws.abs(path)))
    tensors = [img] + [embeddings.augmented_view(img, sha, v) for v in range(1, views + 1)]
    return np.stack([embeddings.Embedder.embed_images(bb, [t])[0] for t in tensors])


def test_fresh_and_cached_vectors_are_identical_and_match_one_at_a_time(dataset, bb):
    samples = pairs(dataset)
    fresh = embeddings.Embedder(dataset, bb)
    first = fresh.vectors(samples, VIEWS)
    assert fresh.computed == len(samples) * (VIEWS + 1)
    again = embeddings.Embedder(dataset, bb)
    cached = again.vectors(samples, VIEWS)
    assert again.computed == 0
    for a, b, (sha, path) in zip(first, cached, samples, strict=True):
        assert a.shape == (VIEWS + 1, bb.dim)
        assert np.array_equal(a, b)
        assert np.array_equal(a, reference(dataset, bb, sha, path, VIEWS))
    # Augmented views differ from the plain one (the augmenter did run).
    assert not np.array_equal(first[0][0], first[0][1])


def test_augmented_views_are_the_same_every_time_even_from_several_threads(dataset):
    samples = pairs(dataset)[:6]
    imgs = {sha: embeddings.load_rgb(str(dataset.ws.abs(path))) for sha, path in samples}
    serial = {(sha, v): embeddings.augmented_view(img, sha, v) for sha, img in imgs.items() for v in (1, 2)}
    assert not np.array_equal(serial[(samples[0][0], 1)], serial[(samples[0][0], 2)])
    results: list[dict] = []

    def work() -> None:
        got = {}
        for _ in range(5):
            for (sha, v), _ in serial.items():
                got.setdefault((sha, v), []).append(embeddings.augmented_view(imgs[sha], sha, v))
        results.append(got)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3
    for got in results:
        for key, outs in got.items():
            assert all(np.array_equal(o, serial[key]) for o in outs)


def test_cancel_mid_way_keeps_a_consistent_cache_and_resumes(dataset, bb, monkeypatch):
    samples = pairs(dataset)
    total = len(samples) * (VIEWS + 1)
    cancel = threading.Event()
    calls = {"n": 0}
    real = embeddings.Embedder._embed_batch

    def counting(self, inputs):
        calls["n"] += 1
        if calls["n"] == 10:
            cancel.set()
        return real(self, inputs)

    monkeypatch.setattr(embeddings.Embedder, "_embed_batch", counting)
    progress: list[tuple[str, int, int]] = []
    emb = embeddings.Embedder(dataset, bb)
    with pytest.raises(Cancelled):
        emb.vectors(samples, VIEWS, lambda *a: progress.append(a), cancel)
    assert progress[0] == ("embedding", 0, len(samples))
    assert 0 < emb.computed < total
    # What was computed before the cancel is in the cache, and every stored vector is right.
    cache = embeddings.EmbeddingCache(dataset)
    assert cache.count(bb.id) == emb.computed
    keys = [(sha, v) for sha, _ in samples for v in range(VIEWS + 1)]
    stored = cache.get(bb.id, embeddings.plain_key(bb.engine), [k for k in keys if k[1] == 0])
    stored.update(cache.get(bb.id, embeddings.views_key(bb.engine), [k for k in keys if k[1] > 0]))
    assert len(stored) == emb.computed
    refs = {sha: reference(dataset, bb, sha, path, VIEWS) for sha, path in samples}
    for (sha, v), vec in stored.items():
        assert np.array_equal(vec, refs[sha][v])
    assert not [t for t in threading.enumerate() if t.name == "fingertui-embed-feed"]
    # A second run computes only the rest and ends with the whole set, reported to the end.
    progress.clear()
    resumed = embeddings.Embedder(dataset, bb)
    out = resumed.vectors(samples, VIEWS, lambda *a: progress.append(a))
    assert resumed.computed == total - emb.computed
    assert progress[-1][1] == progress[-1][2]
    for (sha, _), vecs in zip(samples, out, strict=True):
        assert np.array_equal(vecs, refs[sha])


def test_an_image_asked_for_twice_with_different_views_is_embedded_once(dataset, bb):
    (sha, path), *_ = pairs(dataset)
    emb = embeddings.Embedder(dataset, bb)
    plain, full = emb.vectors([(sha, path), (sha, path)], [0, VIEWS])
    assert emb.computed == VIEWS + 1
    assert plain.shape == (1, bb.dim) and np.array_equal(plain[0], full[0])


def test_an_unreadable_image_is_reported_and_stops_the_decoding_thread(dataset, bb):
    samples = pairs(dataset)[:3]
    bad = dataset.ws.root / "broken.jpg"
    bad.write_bytes(b"not a picture")
    emb = embeddings.Embedder(dataset, bb)
    with pytest.raises(Exception, match="broken.jpg|cannot identify"):
        emb.vectors([*samples, ("0" * 64, str(bad))], 0)
    assert not [t for t in threading.enumerate() if t.name == "fingertui-embed-feed"]
    # The images before it were embedded and kept.
    assert embeddings.EmbeddingCache(dataset).count(bb.id) == len(samples)


async def test_live_view_predicts_slower_while_a_training_runs_and_says_so(dataset):
    from fingertui.learn.heads import TrainConfig
    from fingertui.live.camera import ScriptedSource
    from fingertui.train.pipeline import train_run
    from fingertui.tui.app import make_app
    from fingertui.tui.services import TRAINING_PREDICT_EVERY_S
    from tests.test_tui import frames

    train_run(dataset, backbone="dev-random", cfg=TrainConfig(views=1, max_epochs=20))
    app = make_app(dataset.ws, ScriptedSource(frames(), hold=False), backbone="dev-random")  # a new frame each look
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, lambda: app.prediction is not None)
        made: list[float] = []
        predict = app.model.predict_image
        app.model.predict_image = lambda img, **kw: (made.append(time.monotonic()), predict(img, **kw))[1]
        app.training = True  # what the app sets while its training worker runs
        await pilot.pause(2.5)
        status = str(app.screen.query_one("#status").render())
        # Stop live prediction before the app closes (a late prediction would find no screen).
        app.model = None
        await pilot.pause(0.2)
    assert "predicting slower while training" in status
    gaps = np.diff(made[1:])  # the first may have started before training did
    assert len(made) >= 2 and (gaps >= TRAINING_PREDICT_EVERY_S).all()

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from PIL import Image, ImageDraw
from textual.app import App, ComposeResult
from textual.widget import Widget

from fingertui.data.store import Sample, Store
from fingertui.data.workspace import Workspace
from tests.helpers import RUN_DIR_ENV, built_once

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "sign-digits"
# A test that never marks a timeout of its own gets this one when it is not slow: a fast
# test that hangs (a lock never released, a worker never done) fails in a minute, not at
# the suite's 300 s (pyproject.toml).
FAST_TIMEOUT_S = 60
_RUN = pytest.StashKey[str]()
Test = TypeVar("Test", bound=Callable[..., object])


def pytest_configure(config: pytest.Config) -> None:
    # The run's own folder (helpers.built_once), made before pytest-xdist starts its workers
    # so that they inherit it; a worker finds it set. The backbone exported for ONNX Runtime
    # (learn/engine.py) is cached there too, not in the user's cache: one export for all
    # workers (it is written atomically).
    if RUN_DIR_ENV not in os.environ:
        config.stash[_RUN] = os.environ[RUN_DIR_ENV] = tempfile.mkdtemp(prefix="fingertui-tests-")
        os.environ.setdefault("FINGERTUI_CACHE", os.path.join(os.environ[RUN_DIR_ENV], "cache"))


def pytest_unconfigure(config: pytest.Config) -> None:
    if (made := config.stash.get(_RUN, None)) is not None:
        shutil.rmtree(made, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "two_runs" in getattr(item, "fixturenames", ()):  # it trains (once a process)
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("slow") is None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(FAST_TIMEOUT_S))


def needs_shared() -> Callable[[Test], Test]:
    """Skips a test without the real photos; marks it slow (it reads them)."""
    skip = pytest.mark.skipif(
        not SHARED.is_dir(), reason=f"real photos not found at {SHARED} (a user checkout has no ../shared)"
    )
    return lambda test: pytest.mark.slow(skip(test))


def noise_image(seed: int, size: int = 48) -> Image.Image:
    """A distinct random image (its perceptual hash is far from every other seed's)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR)


def near_copy(img: Image.Image, seed: int) -> Image.Image:
    """A consecutive-frame look-alike: the same picture with a little sensor noise."""
    rng = np.random.default_rng(seed)
    arr = np.asarray(img).astype(np.int16) + rng.integers(-4, 5, np.asarray(img).shape)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def save(img: Image.Image, path: Path, fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def add_sample(store: Store, seed: int, label: int | None = 3, split: str | None = "train") -> Sample:
    """Store one 48 px noise image straight through the store (its own group and hash)."""
    return store.add_image(
        png_bytes(noise_image(seed)),
        "png",
        width=48,
        height=48,
        source="import",
        label=label,
        split=split,
        group_key=f"g{seed}",
        phash=f"{seed:016x}",
    ).sample


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


@pytest.fixture
def store(ws: Workspace) -> Iterator[Store]:
    s = Store(ws)
    yield s
    s.close()


@pytest.fixture
def labelled_tree(tmp_path: Path) -> Path:
    """A digit-named folder tree: 10 distinct images for each label 0–5."""
    root = tmp_path / "tree"
    for label in range(6):
        for k in range(10):
            save(noise_image(label * 100 + k), root / str(label) / f"img{k}.png")
    return root


def finger_image(label: int, seed: int) -> Image.Image:
    """A stand-in hand: ``label`` bright bars on a noisy background."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 90, (96, 96, 3), dtype=np.uint8))
    d = ImageDraw.Draw(img)
    for k in range(label):
        x = 10 + k * 16 + int(rng.integers(0, 4))
        d.rectangle([x, 20 + int(rng.integers(0, 8)), x + 8, 90], fill=(230, 200, 170))
    return img


def write_bars(root: Path, per_class: int) -> Path:
    """A labelled folder tree of stand-in hands: ``per_class`` images for each label 0–5."""
    for label in range(6):
        for k in range(per_class):
            p = root / str(label) / f"{k}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            finger_image(label, label * 100 + k).save(p)
    return root


def _train_two_runs(root: Path) -> None:
    from fingertui.data.importer import import_paths
    from fingertui.learn import backbones
    from fingertui.learn.heads import TrainConfig
    from fingertui.train.pipeline import train

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(backbones.ENV_DEV_RANDOM, "1")
        store = Store(Workspace(root / "ws"))
        import_paths(store, [write_bars(root / "bars", 8)])
        for seed in (0, 1):
            train(store, backbone="dev-random", features="image", cfg=TrainConfig(views=1, max_epochs=20, seed=seed))
        store.close()


@pytest.fixture(scope="session")
def two_runs() -> Path:
    """A workspace of drawn bars (8 per class) with two trained runs (dev-random backbone,
    image features, review flags computed), run 2 active: trained once per test run, this
    test process's copy. Shared by its tests: copy it before changing it."""
    return built_once("two-runs", _train_two_runs) / "ws"


@pytest.fixture
def runs_ws(two_runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A copy of ``two_runs`` of this test's own, the dev-random backbone allowed."""
    import shutil

    from fingertui.learn import backbones

    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    shutil.copytree(two_runs, tmp_path / "two-runs")
    return Workspace(tmp_path / "two-runs")


def widget_app(make: Callable[[], Widget]) -> App:
    """An app showing one fresh widget alone (for testing a widget by itself)."""

    class Host(App):
        def compose(self) -> ComposeResult:
            yield make()

    return Host()

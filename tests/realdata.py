"""A model trained on a few real photos, shared by the API, `watch` and export tests: made
once per test run (about 10-20 s on 2 cores), in a temporary workspace."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tests.helpers import built_once

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
DIGITS = DATASETS / "sign-digits"
FRAMES = DATASETS / "hagrid-rooms" / "frames"
HANDS = DATASETS / "hagrid-rooms" / "hands"
Test = TypeVar("Test", bound=Callable[..., object])


def needs_datasets() -> Callable[[Test], Test]:
    """Skips a test without the real photos; marks it slow (it reads them)."""
    skip = pytest.mark.skipif(
        not (DIGITS.is_dir() and FRAMES.is_dir()),
        reason=f"real photos not found at {DATASETS} (a user checkout has no ../shared)",
    )
    return lambda test: pytest.mark.slow(skip(test))


def photos(root: Path, per_class: int, start: int) -> list[tuple[Path, int]]:
    """``per_class`` photos of each count from ``root``, every third from ``start`` (0, 1
    and 2 give disjoint sets: training photos are never test photos)."""
    out = []
    for c in range(6):
        files = sorted(p for p in (root / str(c)).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        out += [(f, c) for f in files[start::3][:per_class]]
    return out


@functools.cache
def trained_workspace() -> Path:
    """A workspace with one run (features both, efficientnet-lite0) trained on 8 sign-digits
    photos and 6 hagrid-rooms frames a count (photos ``start=0``): trained once per test
    run, this test process's copy."""
    return built_once("realdata", _train) / "ws"


def _train(root: Path) -> None:
    from fingertui.data.importer import import_paths
    from fingertui.data.store import Store
    from fingertui.data.workspace import Workspace
    from fingertui.train.pipeline import train

    tree = root / "train"
    for i, (f, c) in enumerate(photos(DIGITS, 8, 0) + photos(FRAMES, 6, 0)):
        (tree / str(c)).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, tree / str(c) / f"{i}{f.suffix}")
    store = Store(Workspace(root / "ws"))
    try:
        import_paths(store, [tree])
        train(store, features="both", backbone="efficientnet-lite0", flags=False)
    finally:
        store.close()

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fingertui.store import Store
from fingertui.workspace import Workspace

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "sign-digits"


def needs_shared() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not SHARED.is_dir(), reason=f"real photos not found at {SHARED} (a user checkout has no ../shared)"
    )


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


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws")


@pytest.fixture
def store(ws: Workspace) -> Store:
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

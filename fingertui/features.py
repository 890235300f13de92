"""Embeddings of stored images, computed once per (image, backbone, view) and cached.

View 0 is the plain image (used for test, validation and prediction); views 1..V are
augmented copies used only for training. Each augmented view is drawn from a seed made
of the image hash and the view index, so it is the same every time and can be cached.
The cache key includes the backbone id and a hash of the augmentation recipe: change
either and the old vectors are simply not found.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from fingertui.backbones import Backbone
from fingertui.errors import Cancelled
from fingertui.store import Store

# The augmentation recipe. Changing anything here changes RECIPE_ID and so the cache key.
RECIPE = {
    "crop_scale": [0.7, 1.0],
    "crop_ratio": [0.85, 1.18],
    "rotate_deg": 12,
    "jitter": [0.3, 0.3, 0.25, 0.03],
    "hflip": 0.5,  # a mirrored hand shows the same count
}
RECIPE_ID = "aug-" + hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:8]
PLAIN = "plain"
# Images per forward pass. On a CPU, small batches run fastest (measured on 2 cores:
# efficientnet-lite0 cut at block 5, 15 ms for one image, 35 ms per image in batches of 16).
BATCH = 1

Progress = Callable[[str, int, int], None]


def load_rgb(path: str) -> torch.Tensor:
    """(3, H, W) uint8 tensor of an image file (decoded safely and bounded: images.py)."""
    from fingertui.images import open_rgb

    return torch.from_numpy(open_rgb(path)).permute(2, 0, 1)


def image_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    """(3, H, W) uint8 tensor from a PIL image or an RGB array."""
    arr = np.asarray(img.convert("RGB")) if isinstance(img, Image.Image) else np.asarray(img)
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)


def _augmenter(size: tuple[int, int]):  # noqa: ANN202
    from torchvision.transforms import v2

    r = RECIPE
    return v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=tuple(r["crop_scale"]), ratio=tuple(r["crop_ratio"]), antialias=True),
            v2.RandomRotation(r["rotate_deg"]),
            v2.ColorJitter(*r["jitter"]),
            v2.RandomHorizontalFlip(r["hflip"]),
        ]
    )


def augmented_view(img: torch.Tensor, sha256: str, view: int) -> torch.Tensor:
    """The ``view``-th augmented copy of an image: the same for the same (image, view)."""
    seed = int(hashlib.sha256(f"{sha256}:{view}".encode()).hexdigest()[:15], 16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _augmenter(tuple(img.shape[-2:]))(img)


class EmbeddingCache:
    """Vectors keyed by image hash, backbone id, recipe and view (the store's embeddings table)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, backbone_id: str, recipe: str, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], np.ndarray]:
        return self.store.embeddings.get(backbone_id, recipe, keys)

    def put(self, backbone_id: str, recipe: str, items: dict[tuple[str, int], np.ndarray]) -> None:
        self.store.embeddings.put(backbone_id, recipe, items)

    def count(self, backbone_id: str | None = None) -> int:
        return self.store.embeddings.count(backbone_id)


class Embedder:
    """Embeds stored samples through the cache; only missing vectors are computed."""

    def __init__(self, store: Store, backbone: Backbone) -> None:
        self.store = store
        self.bb = backbone
        on_cpu = next(backbone.features.parameters()).device.type == "cpu"
        self.batch = BATCH if on_cpu else 32
        self.cache = EmbeddingCache(store)
        self.computed = 0  # vectors computed (not found in the cache) by this embedder
        self._lock = threading.Lock()

    def vectors(
        self,
        samples: Sequence[tuple[str, str]],
        views: int | Sequence[int],
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> list[np.ndarray]:
        """For (sha256, path) pairs, a (views+1, dim) float32 array each: view 0 plain,
        then the augmented views. ``views`` is one count for all or one per sample."""
        per = [views] * len(samples) if isinstance(views, int) else list(views)
        keys = [(sha, v) for (sha, _), n in zip(samples, per, strict=True) for v in range(n + 1)]
        found: dict[tuple[str, int], np.ndarray] = {}
        found.update(self.cache.get(self.bb.id, PLAIN, [k for k in keys if k[1] == 0]))
        if any(k[1] > 0 for k in keys):
            found.update(self.cache.get(self.bb.id, RECIPE_ID, [k for k in keys if k[1] > 0]))
        todo = [
            (sha, path, n)
            for (sha, path), n in zip(samples, per, strict=True)
            if any((sha, v) not in found for v in range(n + 1))
        ]
        total = len(todo)
        if progress:
            progress("embedding", 0, total)
        for start in range(0, total, self.batch):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            batch = todo[start : start + self.batch]
            new = self._embed_batch(batch, found)
            self.cache.put(self.bb.id, PLAIN, {k: v for k, v in new.items() if k[1] == 0})
            self.cache.put(self.bb.id, RECIPE_ID, {k: v for k, v in new.items() if k[1] > 0})
            found.update(new)
            if progress:
                progress("embedding", start + len(batch), total)
        return [np.stack([found[(sha, v)] for v in range(n + 1)]) for (sha, _), n in zip(samples, per, strict=True)]

    def _embed_batch(
        self, batch: Sequence[tuple[str, str, int]], found: dict[tuple[str, int], np.ndarray]
    ) -> dict[tuple[str, int], np.ndarray]:
        tensors, keys = [], []
        for sha, path, views in batch:
            img = load_rgb(str(self.store.ws.abs(path)))
            for v in range(views + 1):
                if (sha, v) in found:
                    continue
                tensors.append(img if v == 0 else augmented_view(img, sha, v))
                keys.append((sha, v))
        vecs = self.embed_images(self.bb, tensors)
        with self._lock:
            self.computed += len(keys)
        return {k: vecs[i] for i, k in enumerate(keys)}

    @staticmethod
    def embed_images(bb: Backbone, tensors: Sequence[torch.Tensor]) -> np.ndarray:
        """Embed (3, H, W) uint8 images of any sizes; returns (N, dim) float32."""
        if not tensors:
            return np.zeros((0, bb.dim), dtype=np.float32)
        with torch.inference_mode():
            # Resize each image on its own (sizes differ), then run the network batched.
            dev = next(bb.features.parameters()).device
            prepped = torch.cat([bb.preprocess(t.unsqueeze(0).to(dev)) for t in tensors])
            x = prepped.contiguous(memory_format=torch.channels_last)
            # Round-trip through float16 so fresh and cached vectors are identical.
            return bb.features(x).float().cpu().numpy().astype(np.float16).astype(np.float32)

"""Embeddings of stored images, computed once per (image, backbone, view) and cached.

View 0 is the plain image (used for test, validation and prediction); views 1..V are
augmented copies used only for training. Each augmented view is drawn from a seed made
of the image hash and the view index, so it is the same every time and can be cached.
The cache key includes the backbone id and a hash of the augmentation recipe: change
either and the old vectors are simply not found.

Missing vectors are computed by a small pipeline: one thread decodes and augments the
next images while a pool of network threads, one per core, each resizes one view and runs
the network on it single-threaded (PIL, torch and ONNX Runtime release the GIL), and new
vectors reach the cache in a few large transactions. A single-threaded forward pass gives
the same vector whatever the machine's core count or load; torch's own 2-thread split of a
batch-1 pass is slower under load (each op waits for the busier core) and gives some values
one float16 step apart from the single-threaded pass's. On a CPU the pass runs in ONNX
Runtime (engine.py), with numpy resizing and pooling around it, whose vectors agree with
torch's to float16 precision but not bit for bit: the cache keys name the engine
("plain-ort2", "plain-t1" for torch), so one's vectors never stand in for the other's.
Images travel as (H, W, 3) uint8 arrays; torch is imported only where torch runs the
network.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import functools
import hashlib
import json
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from fingertui.errors import Cancelled
from fingertui.learn.engine import CACHE_TAG
from fingertui.progress import Progress

if TYPE_CHECKING:
    from fingertui.data.store import Store
    from fingertui.learn.backbones import Backbone


class Recipe(TypedDict):
    crop_scale: list[float]
    crop_ratio: list[float]
    rotate_deg: float
    jitter: list[float]
    hflip: float
    impl: str


# The augmentation recipe. Changing anything here changes RECIPE_ID and so the cache key.
RECIPE: Recipe = {
    "crop_scale": [0.7, 1.0],
    "crop_ratio": [0.85, 1.18],
    "rotate_deg": 12,
    # Brightness, contrast, saturation, hue. No hue: shifting it (±0.03) costs more than
    # the other three together, on the one thread that decodes and augments for the network.
    "jitter": [0.3, 0.3, 0.25, 0.0],
    "hflip": 0.5,  # a mirrored hand shows the same count
    # Who draws the views: PIL, from a NumPy generator per (image, view), so a first
    # training never imports torch for them (a slow import).
    "impl": "pil-1",
}
# The cache keys below add the engine's tag (engine.CACHE_TAG): "t1" (single-threaded torch
# passes) or "ort2" (ONNX Runtime, numpy around it).
RECIPE_ID = "aug-" + hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:8]


def plain_key(engine: str) -> str:
    """The cache's recipe key of plain views: names the engine that ran the network
    ("plain-t1": single-threaded torch; "plain-ort2": ONNX Runtime), so vectors from one
    are never mixed with the other's."""
    return f"plain-{CACHE_TAG.get(engine, engine)}"


def views_key(engine: str) -> str:
    """The cache's recipe key of augmented views (the recipe and the engine)."""
    return f"{RECIPE_ID}-{CACHE_TAG.get(engine, engine)}"


# Images per forward pass. On a CPU, batches of one run fastest, on torch (channels-last)
# and on ONNX Runtime alike: a view takes longer in a batch than alone. So the pipeline
# feeds the network single views, back to back.
BATCH = 1
# Network threads (each a single-threaded forward pass): one per core, at most 8.
NET_WORKERS = max(1, min(8, os.cpu_count() or 1))
# Vectors written to the cache per transaction: a few large ones for a whole run; a
# cancelled or failed run still writes what it computed.
FLUSH_EVERY = 512
# Prepared views waiting for the network: enough to hide a slow decode, little memory.
PREFETCH = 16
# Progress reports at most this often (seconds): each one may wait on a UI thread.
PROGRESS_EVERY = 0.1


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """(H, W, 3) uint8 RGB array of an image file (decoded safely and bounded: images.py)."""
    from fingertui.data.images import open_rgb

    return open_rgb(path)


def load_rgb(path: str | os.PathLike[str], box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB array of an image file, cropped to ``box`` (x0, y0, x1, y1) if given."""
    arr = read_rgb(path)
    if box is not None:
        x0, y0, x1, y1 = box
        arr = np.ascontiguousarray(arr[y0:y1, x0:x1])
    return arr


def augmented_view(img: np.ndarray, sha256: str, view: int) -> np.ndarray:
    """The ``view``-th augmented copy of an (H, W, 3) uint8 image, the same for the same
    (image, view) in any thread (its own generator, seeded by both): RECIPE's random crop
    of 70–100 % of the area at an aspect ratio of 0.85–1.18 resized back to the image's
    size, a rotation of up to ±12° (black corners), brightness, contrast and saturation
    each scaled by up to ±30 / 30 / 25 % in a random order, and a mirror half the time."""
    from PIL import Image, ImageEnhance, ImageOps

    r = RECIPE
    rng = np.random.default_rng(int(hashlib.sha256(f"{sha256}:{view}".encode()).hexdigest()[:15], 16))
    h, w = img.shape[:2]
    x0, y0, cw, ch = 0, 0, w, h  # after 10 failed draws: the whole image (as torchvision does)
    for _ in range(10):
        area = h * w * rng.uniform(r["crop_scale"][0], r["crop_scale"][1])
        ratio = math.exp(rng.uniform(math.log(r["crop_ratio"][0]), math.log(r["crop_ratio"][1])))
        tw, th = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < tw <= w and 0 < th <= h:
            x0, y0, cw, ch = int(rng.integers(0, w - tw + 1)), int(rng.integers(0, h - th + 1)), tw, th
            break
    pil = Image.fromarray(np.ascontiguousarray(img)).resize(
        (w, h), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch)
    )
    pil = pil.rotate(rng.uniform(-r["rotate_deg"], r["rotate_deg"]), Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    enhancers = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)
    for k in rng.permutation(3):
        spread = r["jitter"][k]
        pil = enhancers[k](pil).enhance(rng.uniform(1 - spread, 1 + spread))
    if rng.random() < r["hflip"]:
        pil = ImageOps.mirror(pil)
    return np.array(pil)


def _single_threaded() -> None:
    """This thread's torch passes on one thread (OpenMP keeps the setting per thread). Called
    before each torch pass rather than when a network thread starts: the network threads
    also serve ONNX Runtime's path, which never imports torch."""
    import torch

    torch.set_num_threads(1)


@functools.lru_cache(maxsize=1)
def _net_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The network threads, shared by every embedder in the process (started on first use)."""
    return concurrent.futures.ThreadPoolExecutor(NET_WORKERS, thread_name_prefix="fingertui-net")


def run_network(fn: Callable[..., np.ndarray], *args: object) -> concurrent.futures.Future:
    """Run ``fn(*args)`` (a forward pass) on a network thread."""
    return _net_pool().submit(fn, *args)


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


class _Failed:
    """Carries an exception from the decoding thread to the caller."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class Embedder:
    """Embeds stored samples through the cache; only missing vectors are computed."""

    def __init__(self, store: Store, backbone: Backbone) -> None:
        self.store = store
        self.bb = backbone
        self.batch = BATCH if backbone.on_cpu else 32
        self.cache = EmbeddingCache(store)
        self.computed = 0  # vectors computed (not found in the cache) by this embedder
        self._lock = threading.Lock()
        self._boxes: dict[str, tuple[int, int, int, int]] = {}

    def vectors(
        self,
        samples: Sequence[tuple[str, str]],
        views: int | Sequence[int],
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
        boxes: dict[str, tuple[int, int, int, int]] | None = None,
    ) -> list[np.ndarray]:
        """For (key, path) pairs, a (views+1, dim) float32 array each: view 0 plain,
        then the augmented views. ``views`` is one count for all or one per sample.
        The key names the image as embedded: its sha256, or with ``boxes[key]`` the
        crop of it that is embedded (``streams.framed_identity``)."""
        self._boxes = boxes or {}
        per = [views] * len(samples) if isinstance(views, int) else list(views)
        keys = [(sha, v) for (sha, _), n in zip(samples, per, strict=True) for v in range(n + 1)]
        found: dict[tuple[str, int], np.ndarray] = {}
        found.update(self.cache.get(self.bb.id, plain_key(self.bb.engine), [k for k in keys if k[1] == 0]))
        if any(k[1] > 0 for k in keys):
            found.update(self.cache.get(self.bb.id, views_key(self.bb.engine), [k for k in keys if k[1] > 0]))
        missing: dict[str, tuple[str, set[int]]] = {}  # sha → (path, views); an image twice is read once
        for (sha, path), n in zip(samples, per, strict=True):
            for v in range(n + 1):
                if (sha, v) not in found:
                    missing.setdefault(sha, (path, set()))[1].add(v)
        todo = [(sha, path, sorted(vs)) for sha, (path, vs) in missing.items()]
        if progress:
            progress("embedding", 0, len(todo))
        if todo:
            self._compute(todo, found, progress, cancel)
        return [np.stack([found[(sha, v)] for v in range(n + 1)]) for (sha, _), n in zip(samples, per, strict=True)]

    def _compute(
        self,
        todo: Sequence[tuple[str, str, list[int]]],
        found: dict[tuple[str, int], np.ndarray],
        progress: Progress | None,
        cancel: threading.Event | None,
    ) -> None:
        """Run the network on every missing view, ``self.batch`` views at a time on the
        network threads, while a decoding thread prepares the images ahead of them. The
        calling thread collects the vectors in order, writes the cache and reports."""
        pending: dict[tuple[str, int], np.ndarray] = {}
        done, last_report = 0, time.monotonic()
        in_flight: collections.deque = collections.deque()

        def keep(batch: list, new: np.ndarray) -> None:
            nonlocal done
            with self._lock:
                self.computed += len(batch)
            for (key, _, last), vec in zip(batch, new, strict=True):
                found[key] = pending[key] = vec
                done += int(last)

        def collect() -> None:
            nonlocal last_report
            batch, fut = in_flight.popleft()
            keep(batch, fut.result())
            if len(pending) >= FLUSH_EVERY:
                self._flush(pending)
            if progress and (done == len(todo) or time.monotonic() - last_report >= PROGRESS_EVERY):
                progress("embedding", done, len(todo))
                last_report = time.monotonic()

        # closing(): stop the decoding thread at once, also when the network raises.
        with contextlib.closing(self._batches(todo, cancel)) as batches:
            try:
                for batch in batches:
                    in_flight.append((batch, run_network(self._embed_batch, [x for _, x, _ in batch])))
                    # Two views per network thread in flight: each finds its next one ready.
                    while len(in_flight) > 2 * NET_WORKERS or (in_flight and in_flight[0][1].done()):
                        collect()
                while in_flight:
                    collect()
            finally:
                # Also on cancel or error: every vector computed so far is right, keep it
                # (the few views in flight finish first: at most two per network thread).
                for batch, fut in in_flight:
                    if fut.exception() is None:
                        keep(batch, fut.result())
                self._flush(pending)

    def _batches(
        self, todo: Sequence[tuple[str, str, list[int]]], cancel: threading.Event | None
    ) -> Generator[list[tuple[tuple[str, int], np.ndarray, bool]], None, None]:
        """Network-ready views in batches of ``self.batch``: (key, input, last view of its
        image?). Raises Cancelled between batches once ``cancel`` is set."""
        ready: queue.Queue = queue.Queue(maxsize=PREFETCH)
        stop = threading.Event()
        feeder = threading.Thread(target=self._feed, args=(todo, ready, stop), name="fingertui-embed-feed", daemon=True)
        feeder.start()
        batch: list[tuple[tuple[str, int], np.ndarray, bool]] = []
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                try:
                    item = ready.get(timeout=0.1)
                except queue.Empty:
                    continue
                if isinstance(item, _Failed):
                    raise item.error
                if item is not _END:
                    batch.append(item)
                if batch and (len(batch) == self.batch or item is _END):
                    yield batch
                    batch = []
                if item is _END:
                    return
        finally:
            stop.set()
            feeder.join()

    def _feed(self, todo: Sequence[tuple[str, str, list[int]]], ready: queue.Queue, stop: threading.Event) -> None:
        """Decode and augment each image's missing views, in order."""

        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    ready.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for sha, path, missing in todo:
                img = load_rgb(self.store.ws.abs(path), self._boxes.get(sha))
                for i, v in enumerate(missing):
                    view = img if v == 0 else augmented_view(img, sha, v)
                    if not put(((sha, v), view, i == len(missing) - 1)):
                        return
        except BaseException as e:  # the caller re-raises it
            put(_Failed(e))
            return
        put(_END)

    def _embed_batch(self, views: Sequence[np.ndarray]) -> np.ndarray:
        """Resize and normalise views ((H, W, 3) uint8 each) and run the network on them:
        (N, dim) float32. On a network thread, so the resizing is spread over the cores
        too (at 160 px it is a fair part of a view's work)."""
        return self._forward(self.bb, self.bb.prepare(views))

    def _flush(self, pending: dict[tuple[str, int], np.ndarray]) -> None:
        if not pending:
            return
        plain = {k: v for k, v in pending.items() if k[1] == 0}
        augmented = {k: v for k, v in pending.items() if k[1] > 0}
        if plain:
            self.cache.put(self.bb.id, plain_key(self.bb.engine), plain)
        if augmented:
            self.cache.put(self.bb.id, views_key(self.bb.engine), augmented)
        pending.clear()

    @staticmethod
    def _forward(bb: Backbone, x: object) -> np.ndarray:
        if bb.ort is None:
            _single_threaded()
        # Round-trip through float16 so fresh and cached vectors are identical.
        return bb.forward(x).astype(np.float16).astype(np.float32)

    @staticmethod
    def embed_images(bb: Backbone, images: Sequence[np.ndarray]) -> np.ndarray:
        """Embed (H, W, 3) uint8 RGB images of any sizes; returns (N, dim) float32."""
        if not len(images):
            return np.zeros((0, bb.dim), dtype=np.float32)
        x = bb.prepare(images)
        # On a network thread: the same single-threaded pass as the cached vectors.
        return run_network(Embedder._forward, bb, x).result()

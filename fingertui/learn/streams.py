"""Feature streams: what the model's experts see of an image.

- ``ImageStream``: the frozen backbone's embedding of the image, framed on the hand when
  the hand is small in the picture (whole-frame photos, a person across the room);
- ``PoseStream``: features of the hand's landmarks (``pose.py``) from the hand-pose
  detector (``hands.py``), augmented on the landmarks themselves for training.

Stored images are searched for hands once per (image, detector) and the result is cached
in the store (``landmarks``), like the embeddings. The framed crop is derived, never
stored: its embedding is cached under an identity that names the image and the box.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import hashlib
import itertools
import os
import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from fingertui.errors import Cancelled
from fingertui.learn.boxes import Box, crop_box, hand_from_box
from fingertui.progress import Progress

if TYPE_CHECKING:
    from fingertui.data.store import Sample, Store
    from fingertui.learn.backbones import Backbone
    from fingertui.learn.hands import Hand

# Frame the image on the hand when the framed square is smaller than this fraction of the
# picture's short side; a capture (already framed) or a close-up is left whole.
FRAMING = {"margin": 0.25, "frame_below": 0.8}
POSE_VIEW = "still"  # landmarks of stored images come from the still-image detector
# The search for a still image's hand, in order; each step runs only if the ones before it
# found nothing, so a close-up (sign-digits) costs one try.
# 1. The picture as it is: finds 181 of 193 hagrid-rooms frames (93.8 %,
#    bench/results/pose_experiment.json).
# 2. The picture zoomed out (``ZOOM_OUT``: its edges replicated outwards by 0.35 × its sides,
#    the detector's own recipe for small crops, see hands.PAD). The misses of step 1 are
#    mostly close-ups, where the hand fills or overflows the frame and the palm detector
#    has no context: zoomed out it finds most of them (narrower, black or grey borders
#    found fewer or no more). With this step the whole search finds 191 of the 193 frames
#    and 167 of the 169 hand crops, without it 189 and 165, and it takes 42.0 ms a frame
#    instead of 51.5 (fewer tile tries; bench/results/hand_search.json).
# 3. Overlapping tiles (each ``frac`` of the short side, padded and upscaled by the
#    detector), a finer grid only if the coarser found nothing, the best hand wins: for a
#    hand too small for the palm detector (a person across the room). On the misses of
#    step 1 alone they find most, but many of those are a part of a hand filling the frame
#    (landmarks of two or three fingers: counted wrong); after step 2 they find nothing
#    more on hagrid frames (the last 2 hands are found by no recipe tried: tiles of 4×4 at
#    0.35, contrast equalised (CLAHE), mirrored, borders of 0.6). They stay as the last
#    resort: a pose from part of a hand is right more often than the image alone. The
#    grids, 2×2 of 0.6 then 3×3 of 0.5, found more of those misses than one grid alone or
#    finer ones.
# 4. A dark photo (mean brightness below ``DARK_RETRY``) where steps 1–3 found nothing is
#    brightened (``brighten``) and searched again, steps 1–3: the landmarks are positions,
#    the same in both. hagrid-rooms frames darkened to 1/4 of their brightness: found in
#    88.6 % without this step, 98.4 % with it (bench/results/hand_found.json).
ZOOM_OUT = 0.35
TILE_GRIDS = ((2, 0.6), (3, 0.5))  # (n, frac): n×n tiles of frac × the short side, coarser first
TILE_MIN_SIDE = 200  # a picture with a shorter side is not tiled
DARK_RETRY = 80.0
# Names the search recipe (part of the landmarks cache key, see PoseStream.detector_id).
TILES_ID = f"tiles-zoom{ZOOM_OUT}+" + "+".join(f"{n}x{n}-{frac}" for n, frac in TILE_GRIDS) + f"+dark{DARK_RETRY:g}"


def brighten(img: np.ndarray) -> np.ndarray:
    """A dark RGB image stretched so its 99th percentile is white, then lifted (gamma 0.7)."""
    a = img.astype(np.float32)
    a = np.clip(a * (255.0 / max(float(np.percentile(a, 99)), 1.0)), 0, 255)
    return (255.0 * (a / 255.0) ** 0.7).astype(np.uint8)


# Still detectors searching stored images at once (one per core, at most this many).
MAX_DETECTORS = 4


def _dev_hands() -> bool:
    return os.environ.get("FINGERTUI_DEV_HANDS") == "1"


def pose_unavailable_reason() -> str | None:
    """Why hand pose cannot run here (one line), or None when it can."""
    if _dev_hands():
        return None
    from fingertui.learn import hands

    return hands.unavailable_reason()


def _untiled(stream_id: str) -> str:
    """A pose stream's id without its tile-search recipe."""
    return re.sub(r"\+tiles-[^|]*", "", stream_id)


def frame_box(hand: Hand | None, shape: tuple[int, ...], framing: dict | None) -> Box | None:
    """The square to embed instead of the whole image, or None to embed it whole."""
    if hand is None or not framing:
        return None
    box = crop_box(hand, margin=framing["margin"])
    side = box[2] - box[0]
    if side >= framing["frame_below"] * min(shape[0], shape[1]):
        return None
    return box


def _crop(img: np.ndarray, box: Box | None) -> np.ndarray:
    if box is None:
        return img
    x0, y0, x1, y1 = box
    return np.ascontiguousarray(img[y0:y1, x0:x1])


def framed_identity(sha: str, box: Box | None) -> str:
    """The embedding cache's name for an image as embedded: its hash, plus the box if framed."""
    return sha if box is None else f"{sha}@{box[0]},{box[1]},{box[2]},{box[3]}"


class ImageStream:
    """The backbone's embedding. The network itself is loaded on first use (``loader``):
    a review queue whose vectors are all cached never needs it."""

    name = "image"

    def __init__(
        self,
        backbone: Backbone | None = None,
        framing: dict | None = None,
        *,
        ident: str | None = None,
        dim: int | None = None,
        loader: Callable[[], Backbone] | None = None,
    ) -> None:
        self._bb = backbone
        self._loader = loader
        self.framing = framing
        if backbone is not None:
            ident, dim = backbone.id, backbone.dim
        if ident is None or dim is None:
            raise ValueError("an ImageStream needs a backbone, or the id and dim of the one its loader loads")
        self.id: str = ident
        self.dim: int = dim

    @property
    def bb(self) -> Backbone:
        """The network, loaded now if it was not."""
        if self._bb is None:
            if self._loader is None:
                raise ValueError("an ImageStream needs a backbone or a loader")
            self._bb = self._loader()
        return self._bb

    @property
    def engine(self) -> str:
        """What runs (or would run) the network: the cache keys its vectors by it."""
        if self._bb is not None:
            return self._bb.engine
        from fingertui.learn.backbones import expected_engine

        return expected_engine()

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, dim) embeddings of (H, W, 3) uint8 RGB images (loads the network if need be)."""
        from fingertui.learn.embeddings import Embedder  # here: not in an exported model's runtime

        return Embedder.embed_images(self.bb, [np.asarray(i) for i in images])


class Detector(Protocol):
    """A hand detector: MediaPipe's (hands.HandDetector) or the stand-in (devhands.py)."""

    def detect(self, rgb: np.ndarray) -> list[Hand]: ...


class PoseStream:
    name = "pose"

    def __init__(self, still: Detector | None = None) -> None:
        from fingertui.learn import hands, pose

        # The stand-in detector (development and tests) has its own id, so its landmarks
        # and models never mix with MediaPipe's.
        self.detector_id = f"{hands.DETECTOR_ID}+{TILES_ID}" if not _dev_hands() else "dev-standin-hands/1"
        self.dim = pose.FEATURE_DIM
        # Names the detector and the feature function (its landmark space and length).
        self.id = f"{self.detector_id}|pose-{pose.DEFAULT_SPACE}-{pose.FEATURE_DIM}"
        self._still = still
        self._spare: queue.SimpleQueue = queue.SimpleQueue()  # still detectors not in use
        self._made = 0
        self._track: Detector | None = None
        self._lock = threading.Lock()

    @classmethod
    def create(cls, warn: Callable[[str], None] | None = None) -> PoseStream | None:
        """A pose stream, or None (with one line to ``warn``) when the detector cannot run."""
        reason = pose_unavailable_reason()
        if reason is not None:
            if warn:
                warn(f"hand pose is off: {reason}; fingertui runs image-only")
            return None
        return cls()

    @classmethod
    def for_checkpoint(cls, spec: dict, warn: Callable[[str], None] | None = None) -> PoseStream | None:
        stream = cls.create(warn)
        # The tile search only finds more hands; the landmarks and features of a hand are
        # the same, so a model trained with another tile recipe still fits.
        if stream is not None and spec.get("stream") is not None and _untiled(spec["stream"]) != _untiled(stream.id):
            from fingertui.errors import UserError

            raise UserError(
                f"the model's hand-pose features ({spec.get('stream')}) differ from this fingertui's ({stream.id}); "
                "retrain with `fingertui train`"
            )
        return stream

    def detector(self, tracking: bool = False) -> Detector:
        """The stream's own detector, in tracking mode (consecutive video frames) or still."""
        from fingertui.learn.hands import HandDetector

        if _dev_hands():
            from fingertui.learn.devhands import StandInDetector

            return StandInDetector()
        with self._lock:
            if tracking:
                if self._track is None:
                    self._track = HandDetector(mode="track", max_hands=1)
                return self._track
            if self._still is None:
                self._still = HandDetector(mode="still", max_hands=2)
            return self._still

    def workers(self, images: int) -> int:
        """How many still detectors to search ``images`` images with: one per core."""
        return max(1, min(os.cpu_count() or 1, MAX_DETECTORS, images))

    @contextlib.contextmanager
    def _borrowed(self) -> Iterator[Detector]:
        """A still detector of its own for the calling thread (made on first need, kept)."""
        if _dev_hands():
            yield self.detector()
            return
        try:
            det = self._spare.get_nowait()
        except queue.Empty:
            from fingertui.learn.hands import HandDetector

            with self._lock:
                # The first one lent is the stream's own still detector.
                own = self._still if self._made == 0 else None
                det = own or HandDetector(mode="still", max_hands=2)
                if self._still is None:
                    self._still = det
                self._made += 1
        try:
            yield det
        finally:
            self._spare.put(det)

    def search_file(self, path: str | os.PathLike[str]) -> Hand | None:
        """``search`` on an image file, with a detector of this thread's own (so several
        threads search at once)."""
        from fingertui.data.images import open_rgb

        img = open_rgb(path)
        with self._borrowed() as det:
            return self.search(img, det)

    def detect(self, img: np.ndarray, tracking: bool = False) -> Hand | None:
        """The most confident hand of one detector pass over an RGB image, or None: no
        zooming out, no tiles (``search`` does those, for a still image)."""
        found = self.detector(tracking).detect(img)
        return found[0] if found else None

    def search(self, img: np.ndarray, det: Detector | None = None) -> Hand | None:
        """A still image's hand, searched for step by step: the whole picture first, then
        zoomed out, then tiles, and all of that again brightened when the photo is dark (see
        ``TILES_ID``); each step a detector pass. ``det``: the still detector to use
        (default: the stream's own)."""
        use = det or self.detector()

        def detect(im: np.ndarray) -> Hand | None:
            found = use.detect(im)
            return found[0] if found else None

        hand = self._search(img, detect)
        if hand is None and not _dev_hands() and img.size and float(img.mean()) < DARK_RETRY:
            hand = self._search(brighten(img), detect)
        return hand

    @staticmethod
    def _search(img: np.ndarray, detect: Callable[[np.ndarray], Hand | None]) -> Hand | None:
        """Steps 1–3 of the search (see ``TILES_ID``), ``detect`` being one detector pass."""
        from fingertui.learn.hands import with_border

        hand = detect(img)
        if hand is not None or _dev_hands():
            return hand
        h, w = img.shape[:2]
        wide, px, py = with_border(img, ZOOM_OUT)
        hand = detect(wide)
        if hand is not None:
            return hand_from_box(hand, (-px, -py, w + px, h + py), (w, h))
        if min(h, w) < TILE_MIN_SIDE:
            return None
        for n, frac in TILE_GRIDS:
            side = int(min(h, w) * frac)
            best = None
            for gy in range(n):
                for gx in range(n):
                    x0 = round(gx * (w - side) / (n - 1))
                    y0 = round(gy * (h - side) / (n - 1))
                    got = detect(np.ascontiguousarray(img[y0 : y0 + side, x0 : x0 + side]))
                    if got is not None and (best is None or got.handedness_score > best.handedness_score):
                        best = hand_from_box(got, (x0, y0, x0 + side, y0 + side), (w, h))
            if best is not None:
                return best
        return None

    def features(self, hands: Sequence[Hand | None]) -> np.ndarray:
        """(N, dim) features of hands (zeros where None)."""
        return self.view_features(hands, [""] * len(hands), 0)[:, 0]

    def view_features(
        self, hands: Sequence[Hand | None], keys: Sequence[str], views: int | Sequence[int]
    ) -> np.ndarray:
        """(N, width, dim): each hand's plain features, then its ``views`` landmark
        augmentations (the same for the same image key and view); a hand with fewer views
        than the widest repeats its plain features, a missing hand is zeros. All hands at
        once (pose.pose_feature_matrix)."""
        from fingertui.learn.pose import HandArrays, augment_arrays, pose_feature_matrix

        per = [views] * len(hands) if isinstance(views, int) else list(views)
        width = max(per, default=0) + 1
        out = np.zeros((len(hands), width, self.dim), dtype=np.float32)
        rows = [i for i, h in enumerate(hands) if h is not None]
        if not rows:
            return out
        arrays = HandArrays.of([h for h in hands if h is not None])
        out[rows] = pose_feature_matrix(arrays)[:, None, :]
        for v in range(1, width):
            sel = [k for k, i in enumerate(rows) if per[i] >= v]
            if not sel:
                continue
            seeds = [int(hashlib.sha256(f"{keys[rows[k]]}:pose:{v}".encode()).hexdigest()[:15], 16) for k in sel]
            sub = HandArrays(arrays.landmarks[sel], arrays.world[sel], arrays.sizes[sel], arrays.right[sel])
            out[[rows[k] for k in sel], v] = pose_feature_matrix(augment_arrays(sub, seeds))
        return out


# Below this mean brightness (0–255) a photo is too dark for the hand detector, above
# the second too washed out; below MIN_SIDE pixels a hand has too few to be found.
DARK, BRIGHT, MIN_SIDE = 45.0, 225.0, 48


def why_no_hand(img: np.ndarray) -> str:
    """A short reason a hand was not found in an RGB image, and what to do about it."""
    h, w = img.shape[:2]
    if min(h, w) < MIN_SIDE:
        return f"the image is only {w}×{h} pixels: use a larger photo"
    luma = float(img[..., :3].astype(np.float32).mean()) if img.size else 0.0
    if luma < DARK:
        return "the photo is too dark: add light in front of the hand"
    if luma > BRIGHT:
        return "the photo is washed out: avoid a bright light behind or on the hand"
    return "no hand shape found: show the whole hand, closer to the camera, fingers apart"


@dataclass
class Observation:
    hand: Hand | None
    box: Box | None
    framed: np.ndarray


def observe(
    images: Sequence[np.ndarray],
    pose: PoseStream | None,
    *,
    tracking: bool = False,
    framing: dict | None = None,
    hands: Sequence[Hand | None] | None = None,
) -> list[Observation]:
    """Find the hand in each frame (if pose is on; or take ``hands`` as found) and frame
    the image on it."""
    out = []
    for n, img in enumerate(images):
        if hands is not None:
            hand = hands[n] if pose is not None else None
        elif pose is None:
            hand = None
        else:
            hand = pose.detect(img, tracking=True) if tracking else pose.search(img)
        box = frame_box(hand, img.shape, framing)
        out.append(Observation(hand, box, _crop(img, box)))
    return out


def stored_hands(
    store: Store,
    pose: PoseStream,
    samples: Sequence[Sample],
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> list[Hand | None]:
    """The best hand of each stored sample, from the landmarks cache (searching the
    images not searched yet with still-image detectors, one per core, in parallel: a
    MediaPipe graph works one image at a time on about one core)."""
    from fingertui.learn.hands import hands_from_bytes, hands_to_bytes, quiet

    cached = store.landmarks.get(pose.detector_id, POSE_VIEW, [s.sha256 for s in samples])
    todo = list({s.sha256: s for s in samples if s.sha256 not in cached}.values())
    if progress:
        progress("finding hands", 0, len(todo))
    pending: dict[str, bytes] = {}
    # One mute around the whole search: each detector's model-opening wait overlaps the work.
    with (
        quiet(),
        concurrent.futures.ThreadPoolExecutor(pose.workers(len(todo)), thread_name_prefix="fingertui-hands") as pool,
    ):
        # Submitted a window at a time, so a cancel stops within a few images.
        window = 4 * pose.workers(len(todo))
        futures: collections.deque = collections.deque()
        it = iter(todo)
        for s in itertools.islice(it, window):
            futures.append((s, pool.submit(pose.search_file, store.ws.abs(s.path))))
        k = 0
        try:
            while futures:
                s, fut = futures.popleft()
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                found = fut.result()
                pending[s.sha256] = cached[s.sha256] = hands_to_bytes([found] if found is not None else [])
                for nxt in itertools.islice(it, 1):
                    futures.append((nxt, pool.submit(pose.search_file, store.ws.abs(nxt.path))))
                if len(pending) >= 64:  # a few transactions, and little lost to a crash
                    store.landmarks.put(pose.detector_id, POSE_VIEW, pending)
                    pending = {}
                k += 1
                if progress:
                    progress("finding hands", k, len(todo))
        finally:
            for _, fut in futures:
                fut.cancel()
            store.landmarks.put(pose.detector_id, POSE_VIEW, pending)
    out = []
    for s in samples:
        got = hands_from_bytes(cached[s.sha256])
        out.append(got[0] if got else None)
    return out

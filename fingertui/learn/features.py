"""What the experts see of images, and the one path from images to it.

- ``Features``: for N images, per stream an (N, dim) matrix (the image's embedding, the
  hand's pose features, the fingers' features), which images had a hand, and the square
  each image was framed on;
- ``SampleFeatures``: the same for stored samples, with the training views: (N, views+1,
  dim) per stream; ``plain()`` gives their ``Features``.

``sample_features`` computes them for stored samples, through the store's caches (the
hands: streams.stored_hands; the embeddings: embeddings.Embedder); ``image_features`` for
images in memory (a photo, a frame of the live view). Training, evaluation, review and
prediction all take their features from these two.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fingertui.learn.embeddings import Embedder, plain_key
from fingertui.learn.fingers import finger_matrix
from fingertui.learn.streams import Box, ImageStream, PoseStream, frame_box, framed_identity, observe, stored_hands
from fingertui.progress import Progress

if TYPE_CHECKING:
    from fingertui.data.store import Sample, Store
    from fingertui.learn.hands import Hand


@dataclass
class Features:
    """What the experts see for N images: per stream an (N, dim) matrix, plus which images
    had a hand (pose rows of the others are zeros and are not used)."""

    image: np.ndarray | None = None
    pose: np.ndarray | None = None
    fingers: np.ndarray | None = None  # (N, 5, K) finger features (fingers.finger_matrix)
    hand: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    boxes: list[Box | None] = field(default_factory=list)


@dataclass
class SampleFeatures:
    """Features of stored samples with training views: streams are (N, views+1, dim)."""

    image: np.ndarray | None
    pose: np.ndarray | None
    hand: np.ndarray
    boxes: list[Box | None]
    embedded_new: int = 0  # embeddings computed (not found in the cache)
    fingers: np.ndarray | None = None  # (N, 5, K) finger features, no views (plain only)

    def plain(self, rows: np.ndarray | None = None) -> Features:
        """The plain views' ``Features`` (of ``rows`` only, if given)."""
        sel = slice(None) if rows is None else rows
        return Features(
            image=None if self.image is None else self.image[sel, 0],
            pose=None if self.pose is None else self.pose[sel, 0],
            fingers=None if self.fingers is None else self.fingers[sel],
            hand=self.hand[sel],
            boxes=self.boxes if rows is None else [self.boxes[i] for i in np.arange(len(self.boxes))[sel]],
        )


def image_features(
    images: Sequence[np.ndarray],
    image: ImageStream | None,
    pose: PoseStream | None,
    *,
    pose_features: bool = True,
    finger_features: bool = True,
    tracking: bool = False,
    hands: Sequence[Hand | None] | None = None,
) -> Features:
    """Features of RGB frames (H, W, 3 uint8): each frame's hand found (or taken from
    ``hands``, e.g. the live tracker's), the frame framed on it, embedded; with ``pose``,
    the hand's pose features and finger features (as asked)."""
    obs = observe(images, pose, tracking=tracking, framing=image.framing if image else None, hands=hands)
    f = Features(hand=np.array([o.hand is not None for o in obs], dtype=bool), boxes=[o.box for o in obs])
    if image is not None:
        f.image = image.embed([o.framed for o in obs])
    if pose is not None:
        found = [o.hand for o in obs]
        if pose_features:
            f.pose = pose.features(found)
        if finger_features:
            f.fingers = finger_matrix(found)[0]
    return f


def sample_features(
    store: Store,
    samples: Sequence[Sample],
    image: ImageStream | None,
    pose: PoseStream | None,
    *,
    views: int | Sequence[int] = 0,
    pose_views: int | Sequence[int] | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> SampleFeatures:
    """Every stream's features of stored samples, through the caches. ``views``: augmented
    image views per sample (one count, or one per sample); ``pose_views`` the same for the
    landmarks (default: as ``views``)."""
    per = [views] * len(samples) if isinstance(views, int) else list(views)
    if pose_views is None:
        pose_views = per
    per_pose = [pose_views] * len(samples) if isinstance(pose_views, int) else list(pose_views)
    hands: list[Hand | None] = [None] * len(samples)
    if pose is not None:
        hands = stored_hands(store, pose, samples, progress, cancel)
    hand = np.array([h is not None for h in hands], dtype=bool)
    boxes: list[Box | None] = [
        # The hand's own image size: the one the detector saw (images.py bounds big ones).
        frame_box(h, (h.image_size[1], h.image_size[0]), image.framing if image else None) if h is not None else None
        for h in hands
    ]
    X_img = None
    new = 0
    if image is not None:
        X_img, new = _image_vectors(store, samples, image, boxes, per, progress, cancel)
    X_pose = F = None
    if pose is not None:
        X_pose = pose.view_features(hands, [s.sha256 for s in samples], per_pose)
        F = finger_matrix(hands)[0]
    return SampleFeatures(X_img, X_pose, hand, boxes, new, F)


def _image_vectors(
    store: Store,
    samples: Sequence[Sample],
    image: ImageStream,
    boxes: Sequence[Box | None],
    per: Sequence[int],
    progress: Progress | None,
    cancel: threading.Event | None,
) -> tuple[np.ndarray, int]:
    """(N, max views+1, dim) embeddings of stored samples as framed (``boxes``), and how
    many were computed. Plain views all cached: read without loading the network."""
    idents = [framed_identity(s.sha256, b) for s, b in zip(samples, boxes, strict=True)]
    cached = (
        store.embeddings.get(image.id, plain_key(image.engine), [(i, 0) for i in idents])
        if max(per, default=0) == 0
        else {}
    )
    new = 0
    if len(cached) == len(set(idents)):  # all there: no network needed
        vecs = [cached[(i, 0)][None] for i in idents]
    else:
        emb = Embedder(store, image.bb)
        vecs = emb.vectors(
            [(i, s.path) for i, s in zip(idents, samples, strict=True)],
            per,
            progress,
            cancel,
            boxes={i: b for i, b in zip(idents, boxes, strict=True) if b is not None},
        )
        new = emb.computed
    width = max(per, default=0) + 1
    X = np.zeros((len(samples), width, image.dim), dtype=np.float32)
    for n, v in enumerate(vecs):
        X[n, : len(v)] = v
        X[n, len(v) :] = v[0]  # rows with fewer views (test) repeat the plain one
    return X, new

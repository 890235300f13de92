"""Pose features of a hand: numbers that describe its shape and nothing else.

A raised-finger count does not change when the hand moves, grows, turns in the picture or
is mirrored, so the features are made invariant to all four: the wrist is the origin, the
palm size the unit, the wrist→middle-knuckle line the up axis, and the mirror image is
folded onto one chirality. What is left is the hand's shape.

Two landmark sets exist. ``image`` landmarks are the 2D points in the picture (plus a
relative depth); ``world`` landmarks are MediaPipe's 3D guess in metres, which lets the
full 3D rotation be removed, not only the in-plane one. bench/pose_experiment.py measured
both (results in bench/results/pose_experiment.json); see ``DEFAULT_SPACE``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, TypedDict

import numpy as np

from fingertui.learn.hands import N_LANDMARKS, Hand

Space = Literal["image", "world", "both"]

WRIST = 0
MIDDLE_MCP = 9
INDEX_MCP = 5
PINKY_MCP = 17
KNUCKLES = (5, 9, 13, 17)
# Landmark chains, thumb first: each finger's four points from its base outwards.
FINGERS = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))
TIPS = tuple(f[-1] for f in FINGERS)
# The knuckle a finger's reach is measured against: the MCP (the thumb's is landmark 2).
FINGER_KNUCKLE = (2, 5, 9, 13, 17)
_TIP_PAIRS = [(a, b) for i, a in enumerate(TIPS) for b in TIPS[i + 1 :]]

# Image landmarks, measured (bench/results/pose_experiment.json, logistic regression, image
# fallback where no hand is found): 5-fold CV on hagrid frames image 96.4 %, world 95.3 %, both 95.9 %;
# on hagrid hand crops 98.8 / 97.0 / 98.8 %; trained on sign-digits, tested on hagrid hands
# 1–5: 86.6 / 85.2 / 85.9 %. World landmarks remove 3D rotation but are a model's guess of
# depth, and it shows; both together add nothing but length.
DEFAULT_SPACE: Space = "image"
FINGER_FEATURES = 6  # k in finger_features' (5, k)


# Every function below works on one hand's points (21, d) or on a batch (N, 21, d): the
# landmarks of a thousand stored images are turned into features in one numpy pass, not a
# thousand (a per-hand loop would be a large part of a sign-digits retrain).


def norms(a: np.ndarray) -> np.ndarray:
    return np.sqrt((a * a).sum(-1))


def _palm_sizes(points: np.ndarray) -> np.ndarray:
    reach = norms(points[..., list(KNUCKLES), :] - points[..., [WRIST], :]).mean(-1)
    span = norms(points[..., INDEX_MCP, :] - points[..., PINKY_MCP, :])
    return np.maximum((reach + span) / 2, 1e-9)


def palm_size(points: np.ndarray) -> float:
    """Mean wrist-to-knuckle distance plus the knuckle span, halved: the unit of length.
    Several bones averaged, so one badly placed knuckle moves it little."""
    return float(_palm_sizes(points))


def pixel_points(landmarks: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Image landmarks (N, 21, 3) of pictures (N, 2) = (width, height) → pixels, z in the
    same units as x (so a rotation of a non-square picture is a rotation of these points)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    scale = np.stack([sizes[..., 0], sizes[..., 1], sizes[..., 0]], -1)[..., None, :]
    return np.asarray(landmarks, dtype=np.float64) * scale


def image_points(hand: Hand) -> np.ndarray:
    """(21, 3) image landmarks in pixels (z in the same units as x)."""
    return pixel_points(hand.landmarks, np.array(hand.image_size))


def canonical_pixels(px: np.ndarray) -> np.ndarray:
    """``canonical_image`` of pixel points (21, 3) or (N, 21, 3)."""
    p = px - px[..., [WRIST], :]
    p = p / _palm_sizes(p[..., :2])[..., None, None]
    up = p[..., MIDDLE_MCP, :2]
    ang = np.arctan2(up[..., 0], up[..., 1])[..., None]  # rotate the middle knuckle onto +y
    c, s = np.cos(ang), np.sin(ang)
    x, y = p[..., 0].copy(), p[..., 1].copy()
    p[..., 0], p[..., 1] = x * c - y * s, x * s + y * c
    flip = p[..., INDEX_MCP, 0] < p[..., PINKY_MCP, 0]
    p[..., 0] = np.where(flip[..., None], -p[..., 0], p[..., 0])
    return p


def canonical_image(hand: Hand) -> np.ndarray:
    """(21, 3) image landmarks with translation, scale, in-plane rotation and mirror removed.

    Mirror is decided by geometry, not by the handedness label: the index knuckle is put on
    the +x side. In 2D a right palm and a left back of the hand look the same, so folding
    them together loses nothing that the picture could tell apart anyway.
    """
    return canonical_pixels(image_points(hand))


def canonical_world_points(world: np.ndarray, is_right: np.ndarray | bool) -> np.ndarray:
    """``canonical_world`` of world points (21, 3) or (N, 21, 3) with handedness (N,)."""
    p = np.asarray(world, dtype=np.float64)
    p = p - p[..., [WRIST], :]
    p = p / _palm_sizes(p)[..., None, None]
    y = p[..., MIDDLE_MCP, :] / norms(p[..., MIDDLE_MCP, :])[..., None]
    x = p[..., INDEX_MCP, :] - p[..., PINKY_MCP, :]
    x = x - (x * y).sum(-1)[..., None] * y
    x = x / np.maximum(norms(x), 1e-9)[..., None]
    z = np.cross(x, y)
    out = np.einsum("...ij,...kj->...ik", p, np.stack([x, y, z], -2))
    out[..., 2] = np.where(np.asarray(is_right)[..., None], out[..., 2], -out[..., 2])
    return out


def canonical_world(hand: Hand) -> np.ndarray:
    """(21, 3) world landmarks in the hand's own frame: y wrist→middle knuckle, x toward the
    index knuckle, z out of the palm. That removes every 3D rotation, not only in-plane.

    A mirrored hand has the same x and y in this frame and the opposite z; MediaPipe's
    handedness label says which it is, so left hands have z negated.
    """
    return canonical_world_points(hand.world, hand.is_right)


_PAIR_A = [a for a, _ in _TIP_PAIRS]
_PAIR_B = [b for _, b in _TIP_PAIRS]
_CHAINS = np.array([[WRIST, *chain] for chain in FINGERS])  # (5, 5)
_BASES = [chain[0] for chain in FINGERS]


def _shape_features(p: np.ndarray) -> np.ndarray:
    """Canonical coordinates (wrist dropped, it is always 0) + fingertip-to-fingertip and
    fingertip-to-wrist distances: a linear head cannot compute distances itself."""
    tips = norms(p[..., _PAIR_A, :] - p[..., _PAIR_B, :])
    reach = norms(p[..., list(TIPS), :])
    flat = p[..., 1:, :].reshape(*p.shape[:-2], -1)
    return np.concatenate([flat, tips, reach], -1)


def canonical_finger_features(p: np.ndarray) -> np.ndarray:
    """``finger_features`` of canonical points (21, 3) or (N, 21, 3): (…, 5, 6) float64."""
    width = np.maximum(norms(p[..., INDEX_MCP, :] - p[..., PINKY_MCP, :]), 1e-9)
    pts = p[..., _CHAINS, :]  # (…, 5 fingers, 5 points, 3)
    bones = np.diff(pts, axis=-2)
    lengths = np.maximum(norms(bones), 1e-9)
    unit = bones / lengths[..., None]
    out = np.zeros((*p.shape[:-2], 5, FINGER_FEATURES))
    out[..., :3] = (unit[..., :-1, :] * unit[..., 1:, :]).sum(-1)
    tip, base = p[..., list(TIPS), :], p[..., _BASES, :]
    knuckle = p[..., list(FINGER_KNUCKLE), :]
    out[..., 3] = norms(tip) / np.maximum(norms(knuckle), 1e-9)
    out[..., 4] = norms(tip - base) / lengths[..., 1:].sum(-1)
    out[..., 5] = norms(tip - p[..., [MIDDLE_MCP], :]) / width[..., None]
    return out


def finger_features(hand: Hand, space: Literal["image", "world"] = "world") -> np.ndarray:
    """(5, 6) per finger, thumb first: cosines of its three joint angles (1 = straight),
    tip-to-wrist over knuckle-to-wrist, straightness (base-to-tip over the summed bones),
    and tip distance to the middle knuckle over the palm width."""
    p = canonical_world(hand) if space == "world" else canonical_image(hand)
    return canonical_finger_features(p).astype(np.float32)


@dataclass
class HandArrays:
    """Many hands' landmarks as arrays, for the batch functions: ``landmarks`` and
    ``world`` (N, 21, 3), ``sizes`` (N, 2) picture (width, height), ``right`` (N,) bool."""

    landmarks: np.ndarray
    world: np.ndarray
    sizes: np.ndarray
    right: np.ndarray

    @classmethod
    def of(cls, hands: Sequence[Hand]) -> HandArrays:
        if not hands:
            z = np.zeros((0, N_LANDMARKS, 3))
            return cls(z, z.copy(), np.zeros((0, 2)), np.zeros(0, dtype=bool))
        return cls(
            np.stack([h.landmarks for h in hands]).astype(np.float64),
            np.stack([h.world for h in hands]).astype(np.float64),
            np.array([h.image_size for h in hands], dtype=np.float64),
            np.array([h.is_right for h in hands], dtype=bool),
        )

    def __len__(self) -> int:
        return len(self.landmarks)


def pose_feature_matrix(hands: HandArrays, space: Space = DEFAULT_SPACE) -> np.ndarray:
    """(N, feature_dim(space)) float32: ``pose_features`` of many hands at once."""
    parts = []
    if space in ("image", "both"):
        p = canonical_pixels(pixel_points(hands.landmarks, hands.sizes))
        parts += [_shape_features(p), canonical_finger_features(p).reshape(len(p), -1)]
    if space in ("world", "both"):
        p = canonical_world_points(hands.world, hands.right)
        parts += [_shape_features(p), canonical_finger_features(p).reshape(len(p), -1)]
    return np.concatenate(parts, -1).astype(np.float32)


def pose_features(hand: Hand, space: Space = DEFAULT_SPACE) -> np.ndarray:
    """(feature_dim(space),) float32 shape features of one hand."""
    return pose_feature_matrix(HandArrays.of([hand]), space)[0]


def feature_dim(space: Space = DEFAULT_SPACE) -> int:
    """Length of ``pose_features`` for a landmark space."""
    one = (N_LANDMARKS - 1) * 3 + len(_TIP_PAIRS) + len(TIPS) + 5 * FINGER_FEATURES
    return 2 * one if space == "both" else one


FEATURE_DIM = feature_dim()


# --- augmentation on the landmarks themselves ------------------------------------------
# Changing the recipe changes AUG_ID, so cached augmented features are never mixed up.
class Augmentation(TypedDict):
    roll_deg: float
    tilt_deg: float
    scale: list[float]
    jitter: float
    mirror: float


AUG: Augmentation = {
    "roll_deg": 20,  # in-plane
    "tilt_deg": 25,  # out of plane, about the image x and y axes
    "scale": [0.85, 1.15],
    "jitter": 0.02,  # landmark noise, × palm size
    "mirror": 0.5,
}
AUG_ID = "paug-" + hashlib.sha256(json.dumps(AUG, sort_keys=True).encode()).hexdigest()[:8]


def _rotation(rng: np.random.Generator) -> np.ndarray:
    a, b, g = np.deg2rad(rng.uniform(-1, 1, 3) * [AUG["tilt_deg"], AUG["tilt_deg"], AUG["roll_deg"]])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(g), -np.sin(g), 0], [np.sin(g), np.cos(g), 0], [0, 0, 1]])
    return rz @ ry @ rx


def augment_arrays(hands: HandArrays, seeds: Sequence[int]) -> HandArrays:
    """A plausible variant of each hand: tilted, turned, resized, jittered, maybe mirrored.
    The same (hand, seed) always gives the same variant. Image and world landmarks get the
    same rotation, so the two stay consistent."""
    n = len(hands)
    rot = np.zeros((n, 3, 3))
    scale = np.zeros(n)
    flipped = np.zeros(n, dtype=bool)
    noise_px = np.zeros((n, N_LANDMARKS, 3))
    noise_w = np.zeros((n, N_LANDMARKS, 3))
    for i, seed in enumerate(seeds):  # the draws, per hand and in a fixed order
        rng = np.random.default_rng(seed)
        rot[i] = _rotation(rng)
        scale[i] = rng.uniform(AUG["scale"][0], AUG["scale"][1])
        flipped[i] = rng.random() < AUG["mirror"]
        noise_px[i] = rng.standard_normal((N_LANDMARKS, 3))
        noise_w[i] = rng.standard_normal((N_LANDMARKS, 3))
    flip = np.where(flipped[:, None], np.array([-1.0, 1.0, 1.0]), np.ones(3))[:, None, :]

    px = pixel_points(hands.landmarks, hands.sizes)
    centre = px.mean(1, keepdims=True)
    unit = _palm_sizes(px[..., :2])
    d = np.einsum("nij,nkj->nik", px - centre, rot) * scale[:, None, None]
    d += noise_px * (AUG["jitter"] * unit * scale)[:, None, None]
    px = d * flip + centre  # mirrored about the hand's own centre: it stays in the picture
    w, h = hands.sizes[:, 0], hands.sizes[:, 1]
    landmarks = px / np.stack([w, h, w], -1)[:, None, :]

    wp = hands.world
    wunit = _palm_sizes(wp)
    wp = np.einsum("nij,nkj->nik", wp, rot) + noise_w * (AUG["jitter"] * wunit)[:, None, None]
    wp = wp * flip  # no scale: world landmarks are metres, which camera distance leaves alone
    return HandArrays(
        landmarks.astype(np.float32).astype(np.float64),
        wp.astype(np.float32).astype(np.float64),
        hands.sizes,
        hands.right ^ flipped,
    )


def augment(hand: Hand, seed: int) -> Hand:
    """``augment_arrays`` of one hand."""
    out = augment_arrays(HandArrays.of([hand]), [seed])
    label = hand.handedness
    if out.right[0] != hand.is_right:
        label = "Left" if hand.is_right else "Right"
    return replace(
        hand, landmarks=out.landmarks[0].astype(np.float32), world=out.world[0].astype(np.float32), handedness=label
    )


def mirror(hand: Hand) -> Hand:
    """The hand in the mirrored picture (x flipped, handedness swapped)."""
    lm = hand.landmarks.copy()
    lm[:, 0] = 1.0 - lm[:, 0]
    wp = hand.world.copy()
    wp[:, 0] = -wp[:, 0]
    return replace(hand, landmarks=lm, world=wp, handedness="Left" if hand.is_right else "Right")

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
from dataclasses import replace
from typing import Literal

import numpy as np

from fingertui.hands import N_LANDMARKS, Hand

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

# Image landmarks, measured (bench/pose_experiment.py, logistic regression, image fallback
# where no hand is found): 5-fold CV on hagrid frames image 96.4 %, world 95.3 %, both 95.9 %;
# on hagrid hand crops 98.8 / 97.0 / 98.8 %; trained on sign-digits, tested on hagrid hands
# 1–5: 86.6 / 85.2 / 85.9 %. World landmarks remove 3D rotation but are a model's guess of
# depth, and it shows; both together add nothing but length.
DEFAULT_SPACE: Space = "image"
FINGER_FEATURES = 6  # k in finger_features' (5, k)


def palm_size(points: np.ndarray) -> float:
    """Mean wrist-to-knuckle distance plus the knuckle span, halved: the unit of length.
    Several bones averaged, so one badly placed knuckle moves it little."""
    reach = np.linalg.norm(points[list(KNUCKLES)] - points[WRIST], axis=1).mean()
    span = np.linalg.norm(points[INDEX_MCP] - points[PINKY_MCP])
    return float(max((reach + span) / 2, 1e-9))


def image_points(hand: Hand) -> np.ndarray:
    """(21, 3) image landmarks in pixels (z in the same units as x), so that a rotation of
    a non-square picture is a rotation of these points."""
    w, _ = hand.image_size
    return hand.landmarks.astype(np.float64) * np.array([w, hand.image_size[1], w])


def canonical_image(hand: Hand) -> np.ndarray:
    """(21, 3) image landmarks with translation, scale, in-plane rotation and mirror removed.

    Mirror is decided by geometry, not by the handedness label: the index knuckle is put on
    the +x side. In 2D a right palm and a left back of the hand look the same, so folding
    them together loses nothing that the picture could tell apart anyway.
    """
    p = image_points(hand)
    p = p - p[WRIST]
    p /= palm_size(p[:, :2])
    up = p[MIDDLE_MCP, :2]
    ang = np.arctan2(up[0], up[1])  # rotate the middle knuckle onto +y
    c, s = np.cos(ang), np.sin(ang)
    rot = np.array([[c, -s], [s, c]])
    p[:, :2] = p[:, :2] @ rot.T
    if p[INDEX_MCP, 0] < p[PINKY_MCP, 0]:
        p[:, 0] = -p[:, 0]
    return p


def canonical_world(hand: Hand) -> np.ndarray:
    """(21, 3) world landmarks in the hand's own frame: y wrist→middle knuckle, x toward the
    index knuckle, z out of the palm. That removes every 3D rotation, not only in-plane.

    A mirrored hand has the same x and y in this frame and the opposite z; MediaPipe's
    handedness label says which it is, so left hands have z negated.
    """
    p = hand.world.astype(np.float64)
    p = p - p[WRIST]
    p /= palm_size(p)
    y = p[MIDDLE_MCP] / np.linalg.norm(p[MIDDLE_MCP])
    x = p[INDEX_MCP] - p[PINKY_MCP]
    x = x - (x @ y) * y
    x /= max(np.linalg.norm(x), 1e-9)
    z = np.cross(x, y)
    out = p @ np.stack([x, y, z]).T
    if not hand.is_right:
        out[:, 2] = -out[:, 2]
    return out


def _shape_features(p: np.ndarray) -> np.ndarray:
    """Canonical coordinates (wrist dropped, it is always 0) + fingertip-to-fingertip and
    fingertip-to-wrist distances: a linear head cannot compute distances itself."""
    tips = np.array([np.linalg.norm(p[a] - p[b]) for a, b in _TIP_PAIRS])
    reach = np.linalg.norm(p[list(TIPS)], axis=1)
    return np.concatenate([p[1:].reshape(-1), tips, reach])


def finger_features(hand: Hand, space: Literal["image", "world"] = "world") -> np.ndarray:
    """(5, 6) per finger, thumb first: cosines of its three joint angles (1 = straight),
    tip-to-wrist over knuckle-to-wrist, straightness (base-to-tip over the summed bones),
    and tip distance to the middle knuckle over the palm width."""
    p = canonical_world(hand) if space == "world" else canonical_image(hand)
    width = max(float(np.linalg.norm(p[INDEX_MCP] - p[PINKY_MCP])), 1e-9)
    out = np.zeros((5, FINGER_FEATURES), dtype=np.float64)
    for i, chain in enumerate(FINGERS):
        pts = p[[WRIST, *chain]]
        bones = np.diff(pts, axis=0)
        lengths = np.maximum(np.linalg.norm(bones, axis=1), 1e-9)
        unit = bones / lengths[:, None]
        out[i, :3] = (unit[:-1] * unit[1:]).sum(1)
        tip, base = p[chain[-1]], p[chain[0]]
        knuckle = p[FINGER_KNUCKLE[i]]
        out[i, 3] = np.linalg.norm(tip) / max(float(np.linalg.norm(knuckle)), 1e-9)
        out[i, 4] = np.linalg.norm(tip - base) / lengths[1:].sum()
        out[i, 5] = np.linalg.norm(tip - p[MIDDLE_MCP]) / width
    return out.astype(np.float32)


def pose_features(hand: Hand, space: Space = DEFAULT_SPACE) -> np.ndarray:
    """(feature_dim(space),) float32 shape features of one hand."""
    parts = []
    if space in ("image", "both"):
        parts += [_shape_features(canonical_image(hand)), finger_features(hand, "image").reshape(-1)]
    if space in ("world", "both"):
        parts += [_shape_features(canonical_world(hand)), finger_features(hand, "world").reshape(-1)]
    return np.concatenate(parts).astype(np.float32)


def feature_dim(space: Space = DEFAULT_SPACE) -> int:
    """Length of ``pose_features`` for a landmark space."""
    one = (N_LANDMARKS - 1) * 3 + len(_TIP_PAIRS) + len(TIPS) + 5 * FINGER_FEATURES
    return 2 * one if space == "both" else one


FEATURE_DIM = feature_dim()

# --- augmentation on the landmarks themselves ------------------------------------------
# Changing the recipe changes AUG_ID, so cached augmented features are never mixed up.
AUG = {
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


def augment(hand: Hand, seed: int) -> Hand:
    """A plausible variant of ``hand``: tilted, turned, resized, jittered, maybe mirrored.
    The same (hand, seed) always gives the same variant. Image and world landmarks get the
    same rotation, so the two stay consistent."""
    rng = np.random.default_rng(seed)
    rot = _rotation(rng)
    scale = rng.uniform(*AUG["scale"])
    flipped = rng.random() < AUG["mirror"]
    flip = np.array([-1.0 if flipped else 1.0, 1.0, 1.0])

    w, h = hand.image_size
    px = image_points(hand)
    centre = px.mean(0)
    unit = palm_size(px[:, :2])
    d = ((px - centre) @ rot.T) * scale
    d += rng.normal(0, AUG["jitter"] * unit * scale, d.shape)
    px = d * flip + centre  # mirrored about the hand's own centre: it stays in the picture
    landmarks = px / np.array([w, h, w])

    wp = hand.world.astype(np.float64)
    wunit = palm_size(wp)
    wp = (wp @ rot.T) + rng.normal(0, AUG["jitter"] * wunit, wp.shape)
    wp = wp * flip  # no scale: world landmarks are metres, which camera distance leaves alone

    label = hand.handedness
    if flipped:
        label = "Left" if hand.is_right else "Right"
    return replace(hand, landmarks=landmarks.astype(np.float32), world=wp.astype(np.float32), handedness=label)


def mirror(hand: Hand) -> Hand:
    """The hand in the mirrored picture (x flipped, handedness swapped)."""
    lm = hand.landmarks.copy()
    lm[:, 0] = 1.0 - lm[:, 0]
    wp = hand.world.copy()
    wp[:, 0] = -wp[:, 0]
    return replace(hand, landmarks=lm, world=wp, handedness="Left" if hand.is_right else "Right")

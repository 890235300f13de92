from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from fingertui.learn import pose as P
from fingertui.learn.hands import Hand

# A synthetic right hand in metres (x right, y down as in the picture, z away from the
# camera): knuckle positions and bone lengths of an adult hand, each finger bent by its curl.
_KNUCKLES = {0: (0.022, -0.025), 1: (0.030, -0.080), 2: (0.010, -0.087), 3: (-0.010, -0.082), 4: (-0.028, -0.072)}
_BONES = {0: (0.035, 0.030, 0.028), 1: (0.040, 0.024, 0.020), 2: (0.044, 0.028, 0.021), 3: (0.040, 0.026, 0.021)}
_BONES[4] = (0.032, 0.020, 0.018)


def synthetic_world(curls: tuple[float, ...]) -> np.ndarray:
    """(21, 3) world landmarks; curls[i] in radians per joint for finger i (thumb first)."""
    pts = np.zeros((21, 3))
    for f in range(5):
        base = np.array([*_KNUCKLES[f], 0.0])
        direction = base / np.linalg.norm(base)
        if f == 0:
            direction = np.array([0.8, -0.6, 0.0])  # the thumb points out sideways
        chain = [base]
        angle = 0.0
        for bone in _BONES[f]:
            angle += curls[f]
            # Bend toward the palm (+z) while keeping the finger's in-plane heading.
            d = np.cos(angle) * direction + np.sin(angle) * np.array([0.0, 0.0, 1.0])
            chain.append(chain[-1] + bone * d)
        pts[1 + 4 * f : 5 + 4 * f] = chain
    return pts - pts.mean(0)  # MediaPipe's world origin is the hand's centre


def synthetic_hand(
    curls: tuple[float, ...] = (0, 0, 0, 0, 0), size: tuple[int, int] = (640, 480), ppm: float = 1500.0
) -> Hand:
    """A hand seen straight on at (320, 300) px, ``ppm`` pixels per metre."""
    world = synthetic_world(curls)
    w, h = size
    px = world[:, :2] * ppm + np.array([320.0, 300.0])
    z = (world[:, 2] - world[0, 2]) * ppm / w
    lm = np.column_stack([px[:, 0] / w, px[:, 1] / h, z]).astype(np.float32)
    return Hand(lm, world.astype(np.float32), "Right", 0.97, 0.9, size)


OPEN = synthetic_hand()
FIST = synthetic_hand((0.9, 1.2, 1.2, 1.2, 1.2))
TWO = synthetic_hand((0.9, 0.0, 0.0, 1.2, 1.2))


def transform_image(hand: Hand, angle_deg: float, scale: float, shift: tuple[float, float]) -> Hand:
    """The same hand rotated in the picture, resized and moved (in pixels)."""
    w, h = hand.image_size
    p = hand.landmarks.astype(np.float64) * np.array([w, h, w])
    c = p[:, :2].mean(0)
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    p[:, :2] = (p[:, :2] - c) @ rot.T * scale + c + np.array(shift)
    p[:, 2] *= scale
    world = hand.world.astype(np.float64)
    world[:, :2] = world[:, :2] @ rot.T  # the camera's roll turns the world points too
    return replace(hand, landmarks=(p / np.array([w, h, w])).astype(np.float32), world=world.astype(np.float32))


def rotate_world_3d(hand: Hand, seed: int) -> Hand:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]  # a rotation, not a reflection
    return replace(hand, world=(hand.world.astype(np.float64) @ q.T + rng.normal(size=3)).astype(np.float32))


@pytest.mark.parametrize("space", ["image", "world", "both"])
@pytest.mark.parametrize("hand", [OPEN, FIST, TWO], ids=["open", "fist", "two"])
def test_features_invariant_to_rotation_scale_translation(hand: Hand, space: P.Space) -> None:
    ref = P.pose_features(hand, space)
    for angle, scale, shift in [(35, 1.0, (0, 0)), (-80, 0.4, (-150, 60)), (170, 2.2, (40, -200))]:
        moved = P.pose_features(transform_image(hand, angle, scale, shift), space)
        np.testing.assert_allclose(moved, ref, atol=1e-4)


@pytest.mark.parametrize("space", ["image", "world", "both"])
def test_features_invariant_to_mirror(space: P.Space) -> None:
    for hand in (OPEN, FIST, TWO):
        np.testing.assert_allclose(P.pose_features(P.mirror(hand), space), P.pose_features(hand, space), atol=1e-4)
        # Mirrored and also turned: both at once.
        turned = transform_image(P.mirror(hand), 120, 0.7, (10, 10))
        np.testing.assert_allclose(P.pose_features(turned, space), P.pose_features(hand, space), atol=1e-4)


def test_world_features_invariant_to_any_3d_rotation() -> None:
    for seed in range(5):
        np.testing.assert_allclose(
            P.pose_features(rotate_world_3d(TWO, seed), "world"), P.pose_features(TWO, "world"), atol=1e-4
        )


def test_features_tell_shapes_apart() -> None:
    # Invariance alone is easy (a constant is invariant); the shapes must still differ.
    for space in ("image", "world"):
        o, f, t = (P.pose_features(h, space) for h in (OPEN, FIST, TWO))
        assert np.linalg.norm(o - f) > 1.0
        assert np.linalg.norm(o - t) > 0.5
        assert np.linalg.norm(f - t) > 0.5


def test_feature_dim_matches() -> None:
    for space in ("image", "world", "both"):
        v = P.pose_features(OPEN, space)
        assert v.shape == (P.feature_dim(space),) and v.dtype == np.float32 and np.isfinite(v).all()
    assert P.FEATURE_DIM == P.feature_dim(P.DEFAULT_SPACE)


def test_finger_features_straight_and_curled() -> None:
    f = P.finger_features(TWO)
    assert f.shape == (5, P.FINGER_FEATURES)
    # Index and middle are straight: joints' cosines ~1, straightness ~1, tip far from wrist.
    for i in (1, 2):
        assert f[i, 1:3].min() > 0.99 and f[i, 4] > 0.99 and f[i, 3] > 1.8
    # Ring and pinky are curled: bent joints, short reach.
    for i in (3, 4):
        assert f[i, 1:3].max() < 0.5 and f[i, 4] < 0.7 and f[i, 3] < f[1, 3] * 0.75
    np.testing.assert_allclose(P.finger_features(P.mirror(TWO)), f, atol=1e-5)


def test_augmentation_is_deterministic_and_varies() -> None:
    a = P.augment(TWO, seed=7)
    b = P.augment(TWO, seed=7)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    np.testing.assert_array_equal(a.world, b.world)
    assert a.handedness == b.handedness
    c = P.augment(TWO, seed=8)
    assert not np.allclose(a.landmarks, c.landmarks)
    assert {P.augment(TWO, seed=s).handedness for s in range(20)} == {"Left", "Right"}


def test_augmentation_keeps_the_shape() -> None:
    # World features remove 3D rotation and mirror, so an augmented hand differs from the
    # original only by the landmark jitter — far less than a different finger count does.
    ref = P.pose_features(TWO, "world")
    other = np.linalg.norm(P.pose_features(OPEN, "world") - ref)
    for s in range(10):
        aug = P.augment(TWO, seed=s)
        assert np.linalg.norm(P.pose_features(aug, "world") - ref) < other / 3
        assert np.isfinite(P.pose_features(aug, "both")).all()


def test_training_features_of_many_hands_are_the_live_features_of_each() -> None:
    # Training computes the landmark features of every stored image in one batch; the live
    # view computes one hand at a time. They must agree, or the model sees other numbers
    # live than it was trained on.
    from fingertui.learn.fingers import finger_matrix, hand_fingers
    from fingertui.learn.streams import PoseStream

    hands = [OPEN, None, FIST, P.mirror(TWO), P.augment(TWO, seed=3), replace(TWO, image_size=(300, 900))]
    stream = PoseStream.__new__(PoseStream)
    stream.dim = P.FEATURE_DIM
    X = stream.view_features(hands, [f"img{i}" for i in range(len(hands))], [2, 2, 0, 1, 2, 0])
    assert X.shape == (len(hands), 3, P.FEATURE_DIM)
    assert not X[1].any()  # no hand: zeros
    for i, h in enumerate(hands):
        if h is None:
            continue
        for space in ("image", "world", "both"):
            one = P.pose_features(h, space)
            np.testing.assert_allclose(P.pose_feature_matrix(P.HandArrays.of([h, OPEN]), space)[0], one, atol=1e-6)
        np.testing.assert_allclose(X[i, 0], P.pose_features(h), atol=1e-6)
    # An image's augmented views are the augmentations of its hand, and rows with fewer
    # views repeat the plain features.
    seed = int(hashlib.sha256(b"img0:pose:2").hexdigest()[:15], 16)
    np.testing.assert_allclose(X[0, 2], P.pose_features(P.augment(OPEN, seed)), atol=1e-6)
    np.testing.assert_array_equal(X[3, 2], X[3, 0])
    assert not np.allclose(X[0, 1], X[0, 0])
    F, mask = finger_matrix(hands)
    assert mask.tolist() == [h is not None for h in hands]
    for i, h in enumerate(hands):
        if h is not None:
            np.testing.assert_allclose(F[i], hand_fingers(h), atol=1e-9)

"""The finger-state head: count the fingers, not the pictures.

Each finger gets a logistic "up" probability from its own few pose features (its joint
angles, its reach, …; see ``hand_fingers``); the count distribution is the exact sum of
those five Bernoullis (the Poisson-binomial). The head is trained from count labels alone,
by the likelihood of the labelled count, so no one has to label single fingers. Because
it knows what a count *is* (a sum of raised fingers) it needs no examples of a particular
way to show 3 — the reason it carries over from one set of photos to another room.

95 numbers in all (19 per finger), so a starter fitted on sign-digits ships with the package
(``load_starter``) and a user's own fit is pulled towards it by an L2 penalty
(``FingerHead.fit(..., prior=load_starter())``). ``log_probs`` is what the pooled model
takes as this expert's logits.

NumPy only at prediction time (no torch import): the live view calls it on every frame.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any, TypedDict

import numpy as np

from fingertui.learn.hands import Hand
from fingertui.learn.pose import (
    FINGER_FEATURES,
    INDEX_MCP,
    MIDDLE_MCP,
    PINKY_MCP,
    TIPS,
    WRIST,
    HandArrays,
    canonical_finger_features,
    canonical_pixels,
    canonical_world_points,
    image_points,
    norms,
    pixel_points,
)

N_FINGERS = 5
THUMB_CMC, THUMB_MCP, THUMB_TIP = 1, 2, 4
N_COUNTS = N_FINGERS + 1
HEAD_VERSION = 2
# Joint angles and reach from the image landmarks: on sign-digits → hagrid-rooms frames
# they transfer better than the same features from MediaPipe's 3D world guess (those six
# alone, by bench/starter.py's protocol); the thumb's extras use both.
FF_SPACE = "image"
EXTRA_SPACES = ("image", "world")
EXTRA_PER_SPACE = 6
EXTRA = EXTRA_PER_SPACE * len(EXTRA_SPACES)
K = FINGER_FEATURES + EXTRA
# Names the feature function and the head's form; a head whose id differs cannot read
# these features.
FINGERS_ID = (
    f"fingers/{HEAD_VERSION}:ff{FINGER_FEATURES}-{FF_SPACE}-thumb-no-cmc+thumb{EXTRA}-{'+'.join(EXTRA_SPACES)}-folded"
)

# A lapse rate: with probability LAPSE the count is anything (uniform). It keeps one badly
# placed landmark from making the true count impossible (log-prob floor log(LAPSE/6)),
# which matters when these log-probabilities are pooled with another expert's.
LAPSE = 0.02
# Label smoothing: 0.1 keeps the starter from over-trusting sign-digits' one way of showing
# each count (by bench/starter.py's protocol it barely moves hagrid-rooms either way).
DEFAULT_SMOOTH = 0.1
# The starter's pull towards zero, in units of one image's loss (see FingerHead.fit): a
# pull of 10 cost accuracy on hagrid-rooms, so 1 is what ships.
STARTER_L2 = 1.0


def _extras(p: np.ndarray) -> np.ndarray:
    """(…, 5, 6) for canonical points ``p`` (…, 21, d) (palm units, thumb-side knuckle on +x).

    The thumb's row: its tip's distance to the little-finger knuckle; where its tip lies
    across the palm (0 at the index knuckle, 1 at the little one); the x part of its
    MCP→tip direction (out from the palm or across it); then the same three *folded*:
    how far the tip lies across the palm past the index knuckle, how much the thumb points
    across the palm, how far its tip lies on the little-finger side of the index knuckle
    (each 0 for a thumb beside the index or out to the side). Each finger's row: its tip's
    distance to the thumb tip (a finger bent to touch the thumb, sign-digits' O, is down),
    then zeros.

    The folded columns say "folded across the palm" without also saying "spread out to
    the side": sign-digits only shows a raised thumb spread out, so the three plain ones
    alone taught the starter that a thumb held straight beside the index (hagrid's
    "stop") is down.

    Every thumb column describes the thumb alone. A "nearest fingertip" column scored
    higher on hagrid-rooms frames but made the thumb's state depend on the other
    fingers: four raised fingers made a folded thumb count as up (a synthetic 4 read 5).
    """
    tips = p[..., list(TIPS), :]
    out = np.zeros((*p.shape[:-2], 5, EXTRA_PER_SPACE))
    across = p[..., PINKY_MCP, :] - p[..., INDEX_MCP, :]
    thumb = p[..., THUMB_TIP, :] - p[..., THUMB_MCP, :]
    out[..., 0, 0] = norms(tips[..., 0, :] - p[..., PINKY_MCP, :])
    out[..., 0, 1] = ((tips[..., 0, :] - p[..., INDEX_MCP, :]) * across).sum(-1) / np.maximum(
        (across * across).sum(-1), 1e-9
    )
    out[..., 0, 2] = thumb[..., 0] / np.maximum(norms(thumb), 1e-9)
    out[..., 0, 3] = np.maximum(0.0, out[..., 0, 1])
    out[..., 0, 4] = np.minimum(0.0, out[..., 0, 2])
    out[..., 0, 5] = np.minimum(0.0, tips[..., 0, 0] - p[..., INDEX_MCP, 0])
    out[..., 1:, 0] = norms(tips[..., 1:, :] - tips[..., :1, :])
    return out


def hand_fingers(hand: Hand) -> np.ndarray:
    """(5, K) float64 features of one hand, thumb first: ``pose.finger_features`` in image
    space, then ``_extras`` in image and in world space.

    Why the extras: joint angles alone cannot tell a thumb held straight beside the palm
    (hagrid's "stop", up) from one folded across it (sign-digits' 4, down), nor a finger
    bent to touch the thumb from a raised one. With them the starter (fitted on
    sign-digits, no user labels) counts more hagrid-rooms frames right.

    The thumb's first joint angle (wrist–CMC–MCP) is left out (0): it says how far the
    thumb is spread from the palm, not whether it is folded, and with it the starter read
    a thumb held beside the index as down whatever the rest said (README, "Starter")."""
    return finger_feature_matrix(HandArrays.of([hand]))[0]


def finger_feature_matrix(hands: HandArrays) -> np.ndarray:
    """(N, 5, K) ``hand_fingers`` of many hands at once."""
    img = canonical_pixels(pixel_points(hands.landmarks, hands.sizes))
    cols = {"image": img[..., :2], "world": canonical_world_points(hands.world, hands.right)}
    # Rounded to float32 as pose.finger_features returns them (the shipped starter was fitted so).
    own = canonical_finger_features(img if FF_SPACE == "image" else cols["world"]).astype(np.float32).astype(np.float64)
    own[:, 0, 0] = 0.0
    return np.concatenate([own, *(_extras(cols[space]) for space in EXTRA_SPACES)], axis=-1)


def finger_matrix(hands: Sequence[Hand | None]) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5, K) features and an (N,) bool mask of rows that have a hand (the other rows
    are zeros and mean nothing)."""
    mask = np.array([h is not None for h in hands], dtype=bool)
    F = np.zeros((len(hands), N_FINGERS, K))
    if mask.any():
        F[mask] = finger_feature_matrix(HandArrays.of([h for h in hands if h is not None]))
    return F, mask


def count_distribution(p: np.ndarray) -> np.ndarray:
    """(N, 6) Poisson-binomial: the exact distribution of the number of successes of five
    independent Bernoullis with probabilities ``p`` (N, 5), by convolving them in turn."""
    p = np.asarray(p, dtype=np.float64)
    n, m = p.shape
    out = np.zeros((n, m + 1))
    out[:, 0] = 1.0
    for i in range(m):
        q = p[:, i : i + 1]
        out[:, 1:] = out[:, 1:] * (1 - q) + out[:, :-1] * q
        out[:, 0] *= 1 - q[:, 0]
    return out


def _leave_one_out(p: np.ndarray) -> np.ndarray:
    """(N, 5, 5): per finger i the count distribution of the other four (counts 0..4)."""
    n, m = p.shape
    return np.stack([count_distribution(np.delete(p, i, axis=1)) for i in range(m)], axis=1)


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # = 1/(1+e^-a), without overflow warnings


@dataclass
class FingerHead:
    """Per finger a logistic regression on its standardised features.

    ``w`` (5, K) and ``b`` (5,) are the fitted weights; ``mu``/``sd`` (5, K) standardise the
    features (taken from the data of the first fit and kept by fits regularised towards it,
    so that "close to the prior" means the same thing in both)."""

    w: np.ndarray
    b: np.ndarray
    mu: np.ndarray
    sd: np.ndarray
    lapse: float = LAPSE
    id: str = FINGERS_ID
    meta: dict[str, Any] | None = None

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {"w": self.w, "b": self.b, "mu": self.mu, "sd": self.sd}

    def _theta(self) -> np.ndarray:
        return np.concatenate([self.w.ravel(), self.b])

    def _check(self, F: np.ndarray) -> np.ndarray:
        F = np.asarray(F, dtype=np.float64)
        if F.ndim != 3 or F.shape[1:] != self.w.shape:
            raise ValueError(f"finger features must be (N, {N_FINGERS}, {self.w.shape[1]}), got {F.shape}")
        return F

    def up(self, F: np.ndarray) -> np.ndarray:
        """(N, 5) probability that each finger is up."""
        F = self._check(F)
        return _sigmoid((((F - self.mu) / self.sd) * self.w).sum(-1) + self.b)

    def count_probs(self, F: np.ndarray) -> np.ndarray:
        """(N, 6) probability of each count 0..5."""
        return (1 - self.lapse) * count_distribution(self.up(F)) + self.lapse / N_COUNTS

    def log_probs(self, F: np.ndarray) -> np.ndarray:
        """(N, 6) log-probabilities: this expert's logits for log-linear pooling."""
        return np.log(self.count_probs(F))

    def predict(self, F: np.ndarray) -> np.ndarray:
        return self.count_probs(F).argmax(1)

    @classmethod
    def fit(
        cls,
        F: np.ndarray,
        y: np.ndarray,
        prior: FingerHead | None = None,
        l2: float = STARTER_L2,
        smooth: float = DEFAULT_SMOOTH,
        sample_weight: np.ndarray | None = None,
        max_iter: int = 500,
    ) -> FingerHead:
        """Fit to count labels ``y`` (N,) in 0..5: minimise the summed negative
        log-likelihood of the labelled count (``smooth`` spreads that much of each label
        uniformly) plus ``l2`` · ‖θ − θ_prior‖² over the weights and biases.

        The penalty is on the summed loss, so ``l2`` is in units of images: the more
        labelled images, the less the prior counts. With no prior it pulls towards zero
        (every finger 50/50). L-BFGS from the prior (or zero) with the exact gradient:
        deterministic for the same data."""
        from scipy.optimize import minimize
        from threadpoolctl import threadpool_limits

        F = np.asarray(F, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        if F.ndim != 3 or F.shape[1] != N_FINGERS or len(F) != len(y):
            raise ValueError(f"expected F (N, 5, K) and y (N,), got {F.shape} and {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= N_COUNTS):
            raise ValueError("count labels must be 0..5")
        k = F.shape[2]
        if prior is not None:
            if prior.w.shape != (N_FINGERS, k):
                raise ValueError(f"prior has {prior.w.shape[1]} features per finger, the data {k}")
            mu, sd, theta0, lapse = prior.mu, prior.sd, prior._theta(), prior.lapse
        else:
            mu = F.mean(0) if len(F) else np.zeros((N_FINGERS, k))
            sd = np.maximum(F.std(0), 1e-6) if len(F) else np.ones((N_FINGERS, k))
            theta0, lapse = np.zeros(N_FINGERS * k + N_FINGERS), LAPSE
        X = (F - mu) / sd
        sw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        target = np.full((len(y), N_COUNTS), smooth / N_COUNTS)
        target[np.arange(len(y)), y] += 1 - smooth
        target *= sw[:, None]
        nw = N_FINGERS * k

        def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:nw].reshape(N_FINGERS, k), theta[nw:]
            p = _sigmoid((X * w).sum(-1) + b)  # (N, 5)
            P = (1 - lapse) * count_distribution(p) + lapse / N_COUNTS
            loo = _leave_one_out(p)  # (N, 5, 5)
            # dP(c)/dp_i = P_-i(c-1) - P_-i(c), scaled by the lapse.
            pad = np.zeros((len(p), N_FINGERS, N_COUNTS + 1))
            pad[:, :, 1:-1] = loo
            dP = (1 - lapse) * (pad[:, :, :-1] - pad[:, :, 1:])  # (N, 5, 6)
            r = target / P
            dl_dp = -(dP * r[:, None, :]).sum(-1)  # (N, 5)
            da = dl_dp * p * (1 - p)
            diff = theta - theta0
            loss = -(target * np.log(P)).sum() + l2 * diff @ diff
            grad = np.concatenate([(da[:, :, None] * X).sum(0).ravel(), da.sum(0)]) + 2 * l2 * diff
            return float(loss), grad

        # One BLAS thread: L-BFGS-B's vector operations on a few hundred weights are tiny,
        # and waking a second BLAS thread for each costs more than the fit itself.
        with threadpool_limits(1, user_api="blas"):
            res = minimize(loss_grad, theta0.copy(), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
        theta = res.x
        return cls(
            w=theta[:nw].reshape(N_FINGERS, k).copy(),
            b=theta[nw:].copy(),
            mu=np.array(mu, dtype=np.float64),
            sd=np.array(sd, dtype=np.float64),
            lapse=lapse,
            meta={"n": len(y), "l2": l2, "smooth": smooth, "loss": float(res.fun), "iters": int(res.nit)},
        )

    # --- storage ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "lapse": self.lapse,
            "w": self.w.tolist(),
            "b": self.b.tolist(),
            "mu": self.mu.tolist(),
            "sd": self.sd.tolist(),
            "meta": self.meta or {},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FingerHead:
        """Inverse of ``to_json``; refuses a head made for other features."""
        if d.get("id") != FINGERS_ID:
            raise ValueError(f"finger head {d.get('id')!r} was made for other features than {FINGERS_ID!r}")
        w = np.asarray(d["w"], dtype=np.float64)
        head = cls(
            w=w,
            b=np.asarray(d["b"], dtype=np.float64),
            mu=np.asarray(d["mu"], dtype=np.float64),
            sd=np.asarray(d["sd"], dtype=np.float64),
            lapse=float(d["lapse"]),
            id=d["id"],
            meta=d.get("meta") or None,
        )
        if w.shape != (N_FINGERS, K) or head.b.shape != (N_FINGERS,) or head.mu.shape != w.shape:
            raise ValueError(f"finger head has shapes {w.shape}/{head.b.shape}, expected ({N_FINGERS}, {K})")
        if not (0 < head.lapse < 1 and np.all(head.sd > 0) and np.all(np.isfinite(head._theta()))):
            raise ValueError("finger head parameters are out of range")
        return head


STARTER_FILE = "fingers.json"
# The starter is fitted on the landmarks of MediaPipe's full landmark model (complexity 1,
# hands.COMPLEXITY). Refitted on the lite model's landmarks of sign-digits it learnt a
# weaker thumb: a drawn 5 with the thumb out, or held beside the index, counted 4
# (tests/test_fingers.py).
STARTER_COMPLEXITY = 1
STARTER_SOURCE = (
    "sign-digits (Sign Language Digits Dataset, Apache-2.0, Arda Mavi and the students of "
    "Ankara Ayrancı Anadolu High School), all 1,237 photos"
)


# Sign-digits raises the thumb only spread out to the side (in its 3 and 5). The starter
# also sees each such hand with the thumb swung in towards the index (``adduct_thumb``),
# still up: a thumb's state does not depend on how far it is spread. By bench/starter.py's
# protocol the copies raise both hagrid-rooms sets at a small cost on sign-digits itself;
# 4 or 8 copies and other amounts came within a few photos of what ships. What ships (2
# copies, amount 0.3–1; bench/results/starter.json): hagrid-rooms frames 94.3 %, hand
# crops 96.5 %, sign-digits' own photos 98.1 %.
THUMB_UP_COUNTS = (3, 5)


class Adduction(TypedDict):
    copies: int
    low: float
    high: float
    seed: int


ADDUCT: Adduction = {"copies": 2, "low": 0.3, "high": 1.0, "seed": 0}


def _turn(points: np.ndarray, centre: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """``points`` rotated by ``angle`` about the line through ``centre`` along ``axis``."""
    axis = axis / max(float(np.linalg.norm(axis)), 1e-12)
    v = points - centre
    c, s = np.cos(angle), np.sin(angle)
    return centre + v * c + np.cross(axis, v) * s + np.outer(v @ axis, axis) * (1 - c)


def _signed_angle(a: np.ndarray, b: np.ndarray, normal: np.ndarray) -> float:
    """The angle from ``a`` to ``b`` about ``normal`` (both in the plane normal to it)."""
    return float(np.arctan2(np.cross(a, b) @ normal, a @ b))


def adduct_thumb(hand: Hand, amount: float) -> Hand:
    """The same hand with its thumb (landmarks 1–4) swung about the wrist towards the index
    knuckle, in the palm's plane: ``amount`` 0 leaves it, 1 lays the thumb tip on the
    wrist→index-knuckle line. The thumb's shape and every other landmark stay as they were.

    Image landmarks turn in the picture's plane, world landmarks about the palm's normal."""
    thumb = [THUMB_CMC, THUMB_MCP, 3, THUMB_TIP]
    px = image_points(hand)
    z = np.array([0.0, 0.0, 1.0])
    a, b = px[THUMB_TIP] - px[WRIST], px[INDEX_MCP] - px[WRIST]
    a[2] = b[2] = 0.0
    px[thumb] = _turn(px[thumb], px[WRIST], z, amount * _signed_angle(a, b, z))
    w, h = hand.image_size
    lm = px / np.array([w, h, w])

    wp = hand.world.astype(np.float64)
    normal = np.cross(wp[INDEX_MCP] - wp[PINKY_MCP], wp[MIDDLE_MCP] - wp[WRIST])
    normal /= max(float(np.linalg.norm(normal)), 1e-12)

    def flat(v: np.ndarray) -> np.ndarray:
        return v - (v @ normal) * normal

    angle = _signed_angle(flat(wp[THUMB_TIP] - wp[WRIST]), flat(wp[INDEX_MCP] - wp[WRIST]), normal)
    wp[thumb] = _turn(wp[thumb], wp[WRIST], normal, amount * angle)
    return replace(hand, landmarks=lm.astype(np.float32), world=wp.astype(np.float32))


def starter_hands(hands: Sequence[Hand], y: np.ndarray) -> tuple[list[Hand], np.ndarray]:
    """The starter's training hands: ``hands`` and, for each whose count raises the thumb
    (``THUMB_UP_COUNTS``), ``ADDUCT["copies"]`` copies with the thumb swung in by a random
    amount (seeded: the same hands give the same copies)."""
    rng = np.random.default_rng(ADDUCT["seed"])
    out, labels = list(hands), [int(c) for c in y]
    for hand, c in zip(hands, y, strict=True):
        if int(c) in THUMB_UP_COUNTS:
            for _ in range(ADDUCT["copies"]):
                out.append(adduct_thumb(hand, float(rng.uniform(ADDUCT["low"], ADDUCT["high"]))))
                labels.append(int(c))
    return out, np.array(labels, dtype=np.int64)


def fit_starter(hands: Sequence[Hand], y: np.ndarray) -> FingerHead:
    """The starter's recipe, in one place: bench/starter.py and the tests call it.
    ``hands``: sign-digits' found hands (no None), ``y`` their counts."""
    train, labels = starter_hands(hands, y)
    F, _ = finger_matrix(train)
    head = FingerHead.fit(F, labels, prior=None, l2=STARTER_L2, smooth=DEFAULT_SMOOTH)
    head.meta = {**(head.meta or {}), "source": STARTER_SOURCE, "thumb_adduction": ADDUCT}
    return head


def load_starter() -> FingerHead:
    """The finger head fitted on all of sign-digits, shipped with the package
    (bench/starter.py rebuilds it)."""
    text = resources.files("fingertui").joinpath("starter", STARTER_FILE).read_text(encoding="utf-8")
    return FingerHead.from_json(json.loads(text))

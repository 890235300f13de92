"""How the experts' log-probabilities become one calibrated answer: pure NumPy, no other
import, so that an exported model folder can carry this very file (export/build.py).

Log-linear pooling ``z = Σ w_e · z_e`` over the experts that see the hand. Where no hand
is found the image expert answers alone at its own temperature; a model without an image
expert says nothing there (uniform). Where the hand shows a finger pattern the training
data never showed (``novel``), the pose and image experts are outside what they learned,
and the finger-state expert answers alone. ``pool_logits`` is the one place these rules
live: prediction, training and the out-of-fold loop all pool through it.
"""

from __future__ import annotations

import numpy as np

N_CLASSES = 6

# A hand whose finger up/down pattern training never showed is answered by the finger-state
# expert alone (``novel`` below), where the finger expert is sure of every finger (P(up)
# outside 0.5 ± GATE_SURE): an unsure finger makes the pattern a guess, not news.
# With 0.25 (bench/results/next_day_both.json, rooms.json): sign-digits → hagrid-rooms
# classes 1–5 frames 97.0 %, crops 98.7 %; hagrid-rooms 5-fold CV 99.0 %. Gating every
# novel pattern, sure or not (0), did worse on the frames and in the CV; a stricter 0.35
# did no better. "Never seen" (1) gates as well as "fewer than 3, 10 or 30 times" on the
# transfer, and a handful of labels (2 per class) shows most patterns once.
GATE_MIN = 1
GATE_SURE = 0.25


def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``z / temperature``."""
    z = z / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def pool_logits(
    z_image: np.ndarray | None,
    z_pose: np.ndarray | None,
    hand: np.ndarray,
    weights: dict[str, float],
    image_temperature: float,
    temperature: float = 1.0,
    z_fingers: np.ndarray | None = None,
    novel: np.ndarray | None = None,
) -> np.ndarray:
    """Calibrated (N, 6) probabilities from the experts' (N, 6) logits (None: the model has
    no such expert); ``hand`` marks rows with a hand, ``novel`` rows whose finger pattern
    training never showed. A hand counts only for a model with a pose or finger expert."""
    n = len(hand)
    if z_pose is None and z_fingers is None:
        hand = np.zeros(n, dtype=bool)
    z = np.zeros((n, N_CLASSES))
    if z_pose is not None:
        z[hand] += weights.get("pose", 0.0) * z_pose[hand]
    if z_fingers is not None:
        z[hand] += weights.get("fingers", 0.0) * z_fingers[hand]
    if z_image is not None:
        z[hand] += weights.get("image", 0.0) * z_image[hand]
        z[~hand] = z_image[~hand] / image_temperature
    if z_fingers is not None and novel is not None:
        gate = hand & novel
        z[gate] = z_fingers[gate]
    p = softmax(z, temperature)
    if z_image is None:  # no image expert: nothing to say without a hand
        p[~hand] = 1.0 / N_CLASSES
    return p


def pattern_key(up: np.ndarray) -> str:
    """A finger up/down pattern ("01110": thumb … little) from P(up) of one hand."""
    return "".join("1" if u > 0.5 else "0" for u in up)


def pattern_counts(up: np.ndarray) -> dict[str, int]:
    """How often each finger pattern occurs among (N, 5) P(up) rows."""
    out: dict[str, int] = {}
    for row in up:
        k = pattern_key(row)
        out[k] = out.get(k, 0) + 1
    return out


def novel_rows(up: np.ndarray | None, counts: dict[str, int] | None, n: int) -> np.ndarray | None:
    """Rows whose finger pattern training showed fewer than GATE_MIN times (None: no gate)."""
    if up is None or counts is None:
        return None
    out = np.zeros(n, dtype=bool)
    for i, row in enumerate(up):
        if np.isfinite(row).all() and np.abs(row - 0.5).min() >= GATE_SURE:
            out[i] = counts.get(pattern_key(row), 0) < GATE_MIN
    return out

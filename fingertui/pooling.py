"""How the experts' log-probabilities become one calibrated answer: pure NumPy, no other
import, so that an exported model folder can carry this very file (model_export.py).

Log-linear pooling ``z = Σ w_e · z_e`` over the experts that see the hand. Where no hand
is found the image expert answers alone at its own temperature; a model without an image
expert says nothing there (uniform). Where the hand shows a finger pattern the training
data never showed (``novel``), the pose and image experts are outside what they learned,
and the finger-state expert answers alone.
"""

from __future__ import annotations

import numpy as np

N_CLASSES = 6


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
    """Calibrated (N, 6) probabilities from the experts' (N, 6) logits; ``hand`` marks rows
    with a hand, ``novel`` rows whose finger pattern training never showed."""
    n = len(hand)
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
    return softmax(z, temperature)

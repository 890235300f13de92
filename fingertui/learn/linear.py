"""The linear head in NumPy: standardisation + one linear layer, and its fit, a
class-weighted multinomial logistic regression by SciPy's L-BFGS.

No torch and no scikit-learn: importing torch takes a large part of a retrain, and
scikit-learn takes longer to import than scipy.optimize (which the finger head needs
anyway). The objective and the solver's settings are scikit-learn's own
(``LogisticRegression``, ``_logistic_regression_path`` with ``LinearModelLoss``), so the
solutions are the same to the optimiser's tolerance (tests/test_heads.py checks the
probabilities against it).
"""

from __future__ import annotations

import numpy as np

# The state's names are the torch ``MLPHead``'s (fingertui/learn/mlp.py): a TorchScript export
# builds one from them.
STATE_KEYS = ("mean", "std", "net.weight", "net.bias")


class LinearHead:
    """Logits ``((X - mean) / std) @ W.T + b`` for (N, dim) feature rows, float32."""

    kind = "linear"

    def __init__(self, mean: np.ndarray, std: np.ndarray, W: np.ndarray, b: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.W = np.asarray(W, dtype=np.float32)
        self.b = np.asarray(b, dtype=np.float32)

    @property
    def dim(self) -> int:
        return len(self.mean)

    def standardise(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float32) - self.mean) / self.std

    def logits(self, X: np.ndarray) -> np.ndarray:
        return self.standardise(X) @ self.W.T + self.b

    def state(self) -> dict[str, np.ndarray]:
        return dict(zip(STATE_KEYS, (self.mean, self.std, self.W, self.b), strict=True))

    @classmethod
    def from_state(cls, state: object, dim: int, n_classes: int) -> LinearHead:
        """The head of a checkpoint's state; ValueError saying what does not fit."""
        if not isinstance(state, dict) or set(state) != set(STATE_KEYS):
            keys = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state {keys}, expected {list(STATE_KEYS)}")
        want = {"mean": (dim,), "std": (dim,), "net.weight": (n_classes, dim), "net.bias": (n_classes,)}
        arrays = {}
        for key, shape in want.items():
            a = np.asarray(state[key])
            if a.shape != shape or a.dtype.kind not in "fiu":
                raise ValueError(f"{key} is {a.dtype} {a.shape}, expected {shape}")
            arrays[key] = a
        return cls(*(arrays[k] for k in STATE_KEYS))


def fit_multinomial(
    X: np.ndarray,
    y: np.ndarray,
    k: int,
    sample_weight: np.ndarray,
    l2: float,
    start: tuple[np.ndarray, np.ndarray] | None = None,
    max_iter: int = 500,
    tol: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Weights (k, dim), biases (k,) and L-BFGS iterations minimising

        Σ sᵢ · CE(xᵢ, yᵢ) / Σ sᵢ + λ‖W‖²   (biases not penalised)

    over labels ``y`` in 0…k−1, from ``start`` (warm start) or zeros. This is scikit-learn's
    objective with C = 1 / (2 λ Σ sᵢ), and its L-BFGS-B settings: gtol = ``tol``, ftol =
    64 ε, 50 line-search steps."""
    from scipy.optimize import minimize

    # float32 products, as scikit-learn does with our float32 features: faster than float64
    # (they are the bulk of a fit), and the probabilities barely change.
    X = np.ascontiguousarray(X, dtype=np.float32)
    n, dim = X.shape
    rows = np.arange(n)
    sw = np.asarray(sample_weight, dtype=np.float64)
    sw = sw / sw.sum()
    onehot = np.zeros((n, k))
    onehot[rows, y] = 1.0
    split = k * dim

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W, b = theta[:split].reshape(k, dim), theta[split:]
        z = (X @ W.T.astype(np.float32)).astype(np.float64) + b
        # log-sum-exp and softmax from one exp (scipy.special.logsumexp's checks would cost
        # a good part of a fit)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        total = e.sum(axis=1)
        lse = np.log(total) + (z.max(axis=1))
        loss = sw @ (lse - z[rows, y]) + l2 * float(W.ravel() @ W.ravel())
        g = (e / total[:, None] - onehot) * sw[:, None]
        gW = (g.T.astype(np.float32) @ X).astype(np.float64) + 2.0 * l2 * W
        return loss, np.concatenate([gW.ravel(), g.sum(0)])

    theta0 = np.zeros(split + k) if start is None else np.concatenate([start[0].ravel(), start[1]])
    res = minimize(
        loss_grad,
        theta0,
        method="L-BFGS-B",
        jac=True,
        options={"maxiter": max_iter, "maxls": 50, "gtol": tol, "ftol": 64 * np.finfo(float).eps},
    )
    return res.x[:split].reshape(k, dim), res.x[split:], int(res.nit)

"""The torch head: standardisation + a small MLP (``TrainConfig.head == "mlp"``) trained by
AdamW, and the torch form of a linear head for the TorchScript export.

Imported only where torch is really needed (an MLP run, an MLP checkpoint, export): the
linear head, its checkpoint and its training are NumPy and SciPy (linear.py), and
importing torch costs seconds per process.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fingertui.errors import Cancelled
from fingertui.learn.fitting import N_CLASSES, AnyHead, FitResult, TrainConfig, seed_everything
from fingertui.progress import Progress


class MLPHead(nn.Module):
    """Standardisation + linear layer (or a small MLP) on backbone embeddings."""

    mean: torch.Tensor  # buffers (register_buffer), saved with the head
    std: torch.Tensor

    def __init__(self, dim: int, kind: str = "linear", hidden: int = 256) -> None:
        super().__init__()
        self.kind = kind
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        if kind == "linear":
            self.net: nn.Module = nn.Linear(dim, N_CLASSES)
        elif kind == "mlp":
            self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.2), nn.Linear(hidden, N_CLASSES))
        else:
            raise ValueError(f"unknown head {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    @torch.inference_mode()
    def logits(self, X: np.ndarray) -> np.ndarray:
        self.eval()
        return self(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))).numpy()

    def standardise(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float32) - self.mean.numpy()) / self.std.numpy()

    def state(self) -> dict[str, np.ndarray]:
        """The state_dict as NumPy arrays (what a checkpoint stores)."""
        return {k: v.detach().cpu().numpy() for k, v in self.state_dict().items()}

    @classmethod
    def from_state(cls, state: dict, dim: int, kind: str, hidden: int = 256) -> MLPHead:
        """A head from a checkpoint's state (NumPy arrays); RuntimeError, KeyError or
        TypeError when it does not fit."""
        head = cls(dim, kind, hidden)
        head.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in state.items()})
        return head.eval()


def as_torch(head: AnyHead) -> MLPHead:
    """A torch ``MLPHead`` computing what ``head`` (a linear.LinearHead or an MLPHead) computes."""
    if isinstance(head, MLPHead):
        return head
    state = head.state()
    return MLPHead.from_state(state, len(state["mean"]), head.kind)


def one_torch_thread(fn: Callable) -> Callable:
    """Run ``fn`` with one torch thread in the calling thread (OpenMP keeps the setting per
    thread, so other threads are not affected). The heads' matrices are small: split over
    two threads each step waits for the busier core, and on a loaded machine two threads
    take far longer than one; near idle they are alike (bench/results/head_threads.json, 40
    epochs: 1.71 s with two, 1.90 s with one)."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper


def _prepare(
    X: np.ndarray, y: np.ndarray, cfg: TrainConfig, kind: str
) -> tuple[MLPHead, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fresh seeded head whose standardisation fits X; X standardised once (the inner
    network trains on it); labels; class-balanced loss weights (each present class
    weighs the same in total)."""
    seed_everything(cfg.seed)
    torch.manual_seed(cfg.seed)
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    head = MLPHead(Xt.shape[1], kind, cfg.hidden)
    head.mean.copy_(Xt.mean(0))
    head.std.copy_(Xt.std(0).clamp_min(1e-3))
    counts = torch.bincount(yt, minlength=N_CLASSES).float()
    weights = torch.where(counts > 0, counts.sum() / (counts.clamp_min(1) * (counts > 0).sum()), torch.zeros(()))
    return head, (Xt - head.mean) / head.std, yt, weights


@one_torch_thread
def fit_head(
    X: np.ndarray,
    y: np.ndarray,
    cfg: TrainConfig,
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    epochs: int | None = None,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> FitResult[MLPHead]:
    """Train a head on (N, dim) vectors. With ``val``, stop early on its loss and keep the
    best epoch; without, train exactly ``epochs`` epochs. Reports ("training", epoch,
    max epochs) after each epoch through ``progress``."""
    head, Xs, yt, weights = _prepare(X, y, cfg, cfg.head)
    net = head.net
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    n_epochs = epochs if epochs is not None else cfg.max_epochs
    best: tuple[float, int, dict[str, torch.Tensor] | None] = (float("inf"), 0, None)
    history: list[float] = []
    checks: tuple[torch.Tensor, torch.Tensor] | None = None  # the validation fold, standardised
    if val is not None:
        checks = (
            (torch.from_numpy(np.ascontiguousarray(val[0], dtype=np.float32)) - head.mean) / head.std,
            torch.from_numpy(np.asarray(val[1], dtype=np.int64)),
        )
    for epoch in range(1, n_epochs + 1):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        net.train()
        order = torch.randperm(len(Xs), generator=gen)
        for start in range(0, len(Xs), cfg.batch):
            idx = order[start : start + cfg.batch]
            loss = F.cross_entropy(net(Xs[idx]), yt[idx], weight=weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if progress is not None:
            progress("training", epoch, n_epochs)
        if checks is not None:
            Xv, yv = checks
            net.eval()
            with torch.inference_mode():
                vloss = F.cross_entropy(net(Xv), yv, weight=weights).item()
            history.append(vloss)
            if vloss < best[0] - 1e-5:
                best = (vloss, epoch, {k: v.clone() for k, v in head.state_dict().items()})
            elif epoch - best[1] >= cfg.patience:
                break
    if val is not None and best[2] is not None:
        head.load_state_dict(best[2])
        head.eval()
        return FitResult(head, best[1], best[0], history)
    head.eval()
    return FitResult(head, n_epochs, None, history)

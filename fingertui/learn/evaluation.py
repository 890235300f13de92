"""Evaluating a run on a labelled folder, apart from the photos the workspace already holds.

A photo the model trained on scores well whatever the model is worth, so every image is
looked up in the store by its content hash (sha256 of the file, as import stores it) and
the accuracy on the images the workspace does not hold is reported on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fingertui.data.store import SPLITS, Store
from fingertui.data.store.util import sha256_file
from fingertui.errors import UserError

UNLABELLED = "unlabelled"  # in the workspace without a label (no split either)


@dataclass
class FolderEval:
    metrics: dict[str, Any]  # on every readable image of the folder
    unseen: dict[str, Any] | None  # on the images the workspace does not hold (None: there are none)
    n: int
    n_unseen: int
    known: dict[str, int] = field(default_factory=dict)  # images already in the workspace, by split
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def n_known(self) -> int:
        return sum(self.known.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "in_workspace": {"n": self.n_known, **self.known},
            "unseen": {"n": self.n_unseen, "metrics": self.unseen},
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }

    def overlap_note(self) -> str | None:
        """One line on images already in the workspace; None when there are none."""
        if not self.n_known:
            return None
        where = ", ".join(f"{n} in the {split} split" for split, n in self.known.items() if split != UNLABELLED and n)
        if self.known[UNLABELLED]:
            where = ", ".join(x for x in (where, f"{self.known[UNLABELLED]} unlabelled") if x)
        if self.unseen is None:
            return (
                f"all {self.n} images are already in the workspace ({where}): the model may have trained on "
                "them, so this accuracy says little about new photos; evaluate on photos it has not seen"
            )
        acc = 100 * self.unseen["accuracy"]
        return (
            f"{self.n_known} of {self.n} images are already in the workspace ({where}); "
            f"on the {self.n_unseen} it has not seen, accuracy is {acc:.1f}%"
        )


def eval_folder(
    store: Store, load_model: Callable[[], Any], folder: str | Path, *, skip_unknown: bool = False
) -> FolderEval:
    """Predict every labelled image under ``folder``; nothing is added to the store. The
    model is loaded (slow) only once the folder is known to hold labelled images; raises
    UserError when it holds no readable one."""
    from fingertui.data.importer import scan
    from fingertui.learn.metrics import evaluate

    entries, skipped = scan([folder], skip_unknown=skip_unknown)
    entries = [e for e in entries if e.label is not None]
    if not entries:
        raise UserError(f"no labelled images found in {folder}; name folders 0–5 or zero…five")
    model = load_model()
    probs, labels, shas = [], [], []
    for e in entries:
        try:
            sha = sha256_file(e.path)
            p = model.predict_paths([e.path])[0].probs
        except (OSError, ValueError, UserError) as err:
            skipped.append((str(e.path), f"unreadable image: {err}"))
            continue
        probs.append(p)
        shas.append(sha)
        labels.append(e.label)
    if not probs:
        raise UserError(f"none of the {len(entries)} images in {folder} could be read; check the files")
    stored = store.by_shas(shas)
    known = dict.fromkeys((*SPLITS, UNLABELLED), 0)
    for sha in shas:
        if sha in stored:
            known[stored[sha].split or UNLABELLED] += 1
    y, P = np.array(labels), np.array(probs)
    fresh = np.array([sha not in stored for sha in shas])
    return FolderEval(
        metrics=evaluate(y, P),
        unseen=evaluate(y[fresh], P[fresh]) if fresh.any() else None,
        n=len(labels),
        n_unseen=int(fresh.sum()),
        known=known,
        skipped=skipped,
    )

"""What is stored, sample by sample: the rows `fingertui samples` lists and the order
the gallery shows a class in."""

from __future__ import annotations

from pathlib import Path

from fingertui.data.store import SPLITS, Sample, Store

CAPTURED = "capture"


def origin_name(sample: Sample) -> str:
    """Where the image came from, in the words a user recognises: the imported file's name,
    or that it was captured in the app."""
    if sample.origin:
        return Path(sample.origin).name
    return "captured in the app" if sample.source == CAPTURED else sample.source


def row(sample: Sample) -> dict:
    """One sample for `fingertui samples --json`."""
    return {
        "id": sample.id,
        "label": sample.label,
        "split": sample.split,
        "source": sample.source,
        "origin": sample.origin,
        "origin_name": origin_name(sample),
        "session": sample.session,
        "created": sample.created,
        "excluded": bool(sample.excluded),
        "path": sample.path,
    }


def listing(
    store: Store, *, label: int | None = None, unlabelled: bool = False, split: str | None = None
) -> list[Sample]:
    """Samples by id, filtered by label (or ``unlabelled``) and split."""
    if split is not None and split not in SPLITS:
        from fingertui.errors import UserError

        raise UserError(f"unknown split {split!r}: use {' or '.join(SPLITS)}")
    return store.samples(label=label, unlabelled=unlabelled, split=split)


def gallery(store: Store, label: int | None) -> list[Sample]:
    """One class as the gallery shows it (``None``: the unlabelled ones): the user's own
    captures first, newest first (what was just taken is what gets pruned), then the
    imported images in the order they came."""
    samples = store.samples(label=label, unlabelled=label is None)
    own = sorted((s for s in samples if s.source == CAPTURED), key=lambda s: -s.id)
    return own + [s for s in samples if s.source != CAPTURED]

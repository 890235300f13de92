"""Dataset counts and the warnings a user should act on."""

from __future__ import annotations

from fingertui.data.store import SPLITS, Store
from fingertui.labels import CLASSES

MIN_PER_CLASS = 20
MAX_IMBALANCE = 3.0


def session_counts(store: Store) -> dict[str, dict[str, int]]:
    """Per session (in the order they began): labelled images per class, and unlabelled."""
    out: dict[str, dict[str, int]] = {}
    for s in sorted(store.samples(), key=lambda s: (s.created, s.id)):
        row = out.setdefault(s.session or "-", {**{str(c): 0 for c in CLASSES}, "unlabeled": 0, "total": 0})
        row["unlabeled" if s.label is None else str(s.label)] += 1
        row["total"] += 1
    return out


def dataset_stats(store: Store) -> dict:
    """Counts per label and split, unlabelled count, and warnings (stable JSON shape)."""
    counts = store.split_counts()
    per_label = {str(c): {**counts[c], "total": sum(counts[c].values())} for c in CLASSES}
    totals = {s: sum(counts[c][s] for c in CLASSES) for s in SPLITS}
    unlabeled = store.unlabelled_count()
    warnings: list[str] = []
    sizes = {c: per_label[str(c)]["total"] for c in CLASSES}
    for c in CLASSES:
        if sizes[c] < MIN_PER_CLASS:
            warnings.append(
                f"class {c} has only {sizes[c]} labelled images (< {MIN_PER_CLASS}): capture or import more"
            )
        if sizes[c] and counts[c]["test"] == 0:
            warnings.append(f"class {c} has no test images: its accuracy cannot be measured yet")
    nonzero = [n for n in sizes.values() if n]
    if nonzero and max(nonzero) > MAX_IMBALANCE * min(nonzero):
        big = max(sizes, key=sizes.__getitem__)
        small = min((c for c in CLASSES if sizes[c]), key=sizes.__getitem__)
        warnings.append(
            f"imbalanced: class {big} has {sizes[big]} images, class {small} only {sizes[small]} (over {MAX_IMBALANCE:g}:1)"
        )
    sessions = session_counts(store)
    if len(sessions) == 1 and totals["train"]:
        warnings.append(
            "one session only: accuracy is measured on the same sitting; capture another day or room "
            "to learn how the model counts on a new one"
        )
    return {
        "labels": per_label,
        "sessions": sessions,
        "total": {
            **totals,
            "labelled": sum(totals.values()),
            "unlabeled": unlabeled,
            "all": sum(totals.values()) + unlabeled,
        },
        "warnings": warnings,
    }

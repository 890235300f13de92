"""Leak-free, stratified, stable train/test splits.

Near-identical images must never sit on both sides of the split, or test accuracy
measures memory rather than generalisation. Samples are grouped (same burst, same
import sub-folder, or perceptual hashes within a few bits of each other), a whole group
takes one split, and a split once assigned never changes.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

TEST_FRACTION = 0.2
# Hamming distance (of 64 bits) at or below which two images count as near-identical.
# On the shared sign-digits photos it pairs about as many images as the dataset's README
# counts near-duplicates; some are merely similar poses on the same wall. Grouping too
# much only costs a little stratification; grouping too little leaks test images.
PHASH_NEAR_BITS = 6


def phash(img: Image.Image) -> str:
    """64-bit perceptual hash (DCT of a 32×32 grey thumbnail), as 16 hex digits."""
    import imagehash

    return str(imagehash.phash(img.convert("RGB"), hash_size=8))


def _as_uint64(hashes: Sequence[str]) -> np.ndarray:
    return np.array([int(h, 16) for h in hashes], dtype=np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances between two uint64 hash vectors (len(a) × len(b))."""
    return np.bitwise_count(a[:, None] ^ b[None, :]).astype(np.int16)


@dataclass
class Item:
    """One sample about to be added: what split planning needs to know about it."""

    label: int | None
    phash: str
    group_hint: str | None = None  # burst id or import sub-folder
    preserved_split: str | None = None  # a split the import layout names (train/val/test)
    content_key: str = ""  # stable per-image key (sha256) for deterministic ordering


@dataclass(frozen=True)
class Existing:
    phash: str | None
    group_key: str | None
    split: str | None


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _stable_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def plan(
    items: Sequence[Item],
    existing: Sequence[Existing],
    counts: dict[int, dict[str, int]],
    *,
    near_bits: int = PHASH_NEAR_BITS,
    test_fraction: float = TEST_FRACTION,
) -> list[tuple[str, str | None]]:
    """Group new items with each other and with stored samples, then pick each group's split.

    Returns ``(group_key, split)`` per item. ``counts`` holds stored labelled samples per
    class and split, so the test share stays near ``test_fraction`` for every class.
    Deterministic: the same items and store give the same answer in any input order.
    """
    n = len(items)
    if n == 0:
        return []
    uf = _UnionFind(n)
    by_hint: dict[str, int] = {}
    for i, it in enumerate(items):
        if it.group_hint is not None:
            if it.group_hint in by_hint:
                uf.union(by_hint[it.group_hint], i)
            else:
                by_hint[it.group_hint] = i
    new_h = _as_uint64([it.phash for it in items])
    # Near-duplicates among the new items (chunked: n² distances without n² memory at once).
    for start in range(0, n, 1024):
        d = hamming(new_h[start : start + 1024], new_h)
        for a, b in zip(*np.nonzero(d <= near_bits), strict=True):
            if start + a < b:
                uf.union(start + a, int(b))

    # Nearest stored sample per new item, if near enough: the item joins that group.
    stored = [e for e in existing if e.phash and e.group_key]
    joined: dict[int, Existing] = {}
    if stored:
        old_h = _as_uint64([phash for e in stored if (phash := e.phash)])
        for start in range(0, n, 1024):
            d = hamming(new_h[start : start + 1024], old_h)
            best = d.argmin(axis=1)
            for a, j in enumerate(best):
                if d[a, j] <= near_bits:
                    joined[start + a] = stored[int(j)]

    # A hint naming a stored group (a burst or sub-folder added to again) joins that group.
    stored_split = {e.group_key: e.split for e in existing if e.group_key and e.split}

    components: dict[int, list[int]] = {}
    for i in range(n):
        components.setdefault(uf.find(i), []).append(i)

    counts = {c: dict(v) for c, v in counts.items()}
    result: list[tuple[str, str | None]] = [("", None)] * n
    pending: list[tuple[str, list[int]]] = []
    for members in components.values():
        olds = sorted((joined[i] for i in members if i in joined), key=lambda e: e.group_key or "")
        if olds:
            key = olds[0].group_key or ""
        else:
            hints = sorted({hint for i in members if (hint := items[i].group_hint)})
            key = hints[0] if hints else "img:" + min(items[i].content_key or items[i].phash for i in members)
        preserved = [items[i].preserved_split for i in members if items[i].preserved_split]
        fixed = next((e.split for e in olds if e.split), None)
        for hint in sorted({h for i in members if (h := items[i].group_hint) is not None and h in stored_split}):
            key, fixed = hint, fixed or stored_split[hint]
        if preserved or fixed:
            group_split = Counter(preserved).most_common(1)[0][0] if preserved else fixed
            for i in members:
                split = items[i].preserved_split or group_split
                result[i] = (key, split if items[i].label is not None else None)
                _bump(counts, items[i].label, result[i][1])
        else:
            pending.append((key, members))

    # Groups with a free choice, in an order fixed by their key, each to the split that
    # keeps its class's test share closest to the target.
    for key, members in sorted(pending, key=lambda p: _stable_hash(p[0])):
        labels = [label for i in members if (label := items[i].label) is not None]
        if not labels:
            for i in members:
                result[i] = (key, None)
            continue
        label = Counter(labels).most_common(1)[0][0]
        c = counts.setdefault(label, {"train": 0, "test": 0})
        size = len(labels)
        total = c["train"] + c["test"] + size
        to_test = abs((c["test"] + size) / total - test_fraction) < abs(c["test"] / total - test_fraction)
        split = "test" if to_test else "train"
        for i in members:
            result[i] = (key, split if items[i].label is not None else None)
            _bump(counts, items[i].label, result[i][1])
    return result


def _bump(counts: dict[int, dict[str, int]], label: int | None, split: str | None) -> None:
    if label is not None and split is not None:
        counts.setdefault(label, {"train": 0, "test": 0})[split] += 1

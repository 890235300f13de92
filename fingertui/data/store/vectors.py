"""Cached per-image features: the ``embeddings`` table (backbone vectors, float16) and the
``landmarks`` table (hands found by the hand-pose detector). The only module that writes
SQL for them. Keys name everything a value depends on, so stale values are never found."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fingertui.data.store.core import StoreCore

CHUNK = 500  # SQLite's bound-parameter limit is far above this; chunks keep queries short


def _to_blob(vec: np.ndarray) -> bytes:
    return vec.astype(np.float16).tobytes()


def _from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float16).astype(np.float32)


def rows_for_shas(
    store: StoreCore, sql: str, params: Sequence[object], shas: Sequence[str], *, dicts: bool = False
) -> list:
    """Rows of ``sql`` (ending in ``sha256 IN ({marks})``) for every sha, in chunks: tuples,
    or dicts by column name."""
    uniq = sorted(set(shas))
    rows: list = []
    with store.lock:
        for start in range(0, len(uniq), CHUNK):
            chunk = uniq[start : start + CHUNK]
            query = sql.format(marks=",".join("?" * len(chunk)))
            if dicts:
                rows += store.db.query(query, [*params, *chunk])
            else:
                rows += store.db.execute(query, [*params, *chunk]).fetchall()
    return rows


class EmbeddingTable:
    """Vectors keyed by (image sha256, backbone id, recipe, view)."""

    def __init__(self, store: StoreCore) -> None:
        self.store = store

    def get(self, backbone_id: str, recipe: str, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], np.ndarray]:
        wanted = set(keys)
        rows = rows_for_shas(
            self.store,
            "SELECT sha256, view, vec FROM embeddings WHERE backbone = ? AND recipe = ? AND sha256 IN ({marks})",
            [backbone_id, recipe],
            [k[0] for k in keys],
        )
        return {(sha, view): _from_blob(blob) for sha, view, blob in rows if (sha, view) in wanted}

    def put(self, backbone_id: str, recipe: str, items: dict[tuple[str, int], np.ndarray]) -> None:
        if not items:
            return
        with self.store.transaction() as db:
            db.conn.executemany(
                "INSERT OR REPLACE INTO embeddings (sha256, backbone, recipe, view, vec) VALUES (?, ?, ?, ?, ?)",
                [(sha, backbone_id, recipe, view, _to_blob(v)) for (sha, view), v in items.items()],
            )

    def count(self, backbone_id: str | None = None) -> int:
        with self.store.lock:
            if backbone_id is None:
                return self.store.db.execute("SELECT count(*) FROM embeddings").fetchone()[0]
            return self.store.db.execute(
                "SELECT count(*) FROM embeddings WHERE backbone = ?", [backbone_id]
            ).fetchone()[0]


class LandmarkTable:
    """Packed hands (bytes; empty = no hand found) keyed by (image sha256, detector id, view)."""

    def __init__(self, store: StoreCore) -> None:
        self.store = store

    def get(self, detector: str, view: str, shas: Sequence[str]) -> dict[str, bytes]:
        rows = rows_for_shas(
            self.store,
            "SELECT sha256, hands FROM landmarks WHERE detector = ? AND view = ? AND sha256 IN ({marks})",
            [detector, view],
            shas,
        )
        return {sha: bytes(blob) for sha, blob in rows}

    def put(self, detector: str, view: str, items: dict[str, bytes]) -> None:
        if not items:
            return
        with self.store.transaction() as db:
            db.conn.executemany(
                "INSERT OR REPLACE INTO landmarks (sha256, detector, view, hands) VALUES (?, ?, ?, ?)",
                [(sha, detector, view, blob) for sha, blob in items.items()],
            )

    def count(self, detector: str | None = None) -> int:
        with self.store.lock:
            if detector is None:
                return self.store.db.execute("SELECT count(*) FROM landmarks").fetchone()[0]
            return self.store.db.execute("SELECT count(*) FROM landmarks WHERE detector = ?", [detector]).fetchone()[0]

"""The ``flags`` table: review-queue flags, their resolution and reopening.

The only module that writes SQL for flags; the active-learning code decides *which* flags
a run raises, this module stores them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlite_utils

from fingertui.data.store.core import StoreCore
from fingertui.data.store.util import now_iso


class FlagsTable:
    def __init__(self, store: StoreCore) -> None:
        self.store = store

    def all(self) -> list[dict[str, Any]]:
        with self.store.lock:
            return list(self.store.db.query("SELECT * FROM flags ORDER BY id"))

    def open_for(self, sample_id: int) -> list[str]:
        """Reasons of a sample's open flags."""
        with self.store.lock:
            rows = self.store.db.execute(
                "SELECT reason FROM flags WHERE sample_id = ? AND resolved IS NULL ORDER BY id", [sample_id]
            ).fetchall()
        return [r[0] for r in rows]

    def open_sample_count(self) -> int:
        """How many samples still in the dataset have an open flag (the review queue's size
        before near-duplicates are folded together)."""
        with self.store.lock:
            return self.store.db.execute(
                "SELECT count(DISTINCT f.sample_id) FROM flags f JOIN samples s ON s.id = f.sample_id "
                "WHERE f.resolved IS NULL AND s.excluded = 0"
            ).fetchone()[0]

    def open_with_samples(self) -> list[dict[str, Any]]:
        """Open flags of samples still in the dataset, with the sample's path and label."""
        with self.store.lock:
            return list(
                self.store.db.query(
                    "SELECT f.*, s.path, s.label FROM flags f JOIN samples s ON s.id = f.sample_id "
                    "WHERE f.resolved IS NULL AND s.excluded = 0 ORDER BY f.id"
                )
            )

    def sync(
        self,
        run_id: int,
        updates: Sequence[tuple],
        inserts: Sequence[tuple],
        cleared: Sequence[int],
    ) -> None:
        """Apply one recompute in one transaction: ``updates`` are (score, suggested, pred,
        confidence, probs, evidence, run_id, id); ``inserts`` are (sample_id, reason, score,
        suggested, pred, confidence, probs, evidence, run_id); ``cleared`` are flag ids no
        longer raised."""
        now = now_iso()
        with self.store.transaction() as db:
            db.conn.executemany(
                "UPDATE flags SET score = ?, suggested = ?, pred = ?, confidence = ?, probs = ?, evidence = ?, "
                "run_id = ? WHERE id = ?",
                updates,
            )
            db.conn.executemany(
                "INSERT INTO flags (sample_id, reason, score, suggested, pred, confidence, probs, evidence, run_id, "
                "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*row, now) for row in inserts],
            )
            if cleared:
                db.execute(
                    f"UPDATE flags SET resolved = ?, resolution = 'cleared' WHERE id IN ({','.join('?' * len(cleared))})",
                    [now, *cleared],
                )

    def insert(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add flags as given (benchmarks and tests that plant a queue)."""
        with self.store.transaction() as db:
            for r in rows:
                row = {"created": now_iso(), **r}
                for key in ("probs", "evidence"):
                    if isinstance(row.get(key), list | dict):
                        row[key] = json.dumps(row[key])
                db.execute(
                    f"INSERT INTO flags ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
                )

    def clear(self) -> None:
        """Forget every flag (benchmarks that time a recompute from scratch)."""
        with self.store.transaction() as db:
            db.execute("DELETE FROM flags")

    # --- used inside the store's own transactions --------------------------------------

    def resolve_open(self, db: sqlite_utils.Database, sample_id: int, resolution: str) -> list[int]:
        ids = [r[0] for r in db.execute("SELECT id FROM flags WHERE sample_id = ? AND resolved IS NULL", [sample_id])]
        if ids:
            db.execute(
                f"UPDATE flags SET resolved = ?, resolution = ? WHERE id IN ({','.join('?' * len(ids))})",
                [now_iso(), resolution, *ids],
            )
        return ids

    def reopen(self, db: sqlite_utils.Database, ids: Sequence[int]) -> None:
        if ids:
            db.execute(
                f"UPDATE flags SET resolved = NULL, resolution = NULL WHERE id IN ({','.join('?' * len(ids))})",
                list(ids),
            )

    def move(self, db: sqlite_utils.Database, ids: Sequence[int], sample_id: int) -> None:
        """These flags now belong to ``sample_id`` (a deleted sample restored under a new id)."""
        if ids:
            db.execute(f"UPDATE flags SET sample_id = ? WHERE id IN ({','.join('?' * len(ids))})", [sample_id, *ids])

    def drop_for(self, db: sqlite_utils.Database, sample_id: int) -> None:
        db.execute("DELETE FROM flags WHERE sample_id = ?", [sample_id])

"""The ``runs`` and ``run_samples`` tables: one row per training run, and what it
predicted for every sample it saw. The only module that writes SQL for them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fingertui.data.store.core import StoreCore
from fingertui.data.store.util import inserted_id

ACTIVE_KEY = "active_run"


class RunTable:
    def __init__(self, store: StoreCore) -> None:
        self.store = store

    def add(self, run: dict[str, Any], samples: Sequence[tuple], *, activate: bool = True) -> int:
        """Insert a run and its per-sample rows — (sample_id, label, role, pred, confidence,
        probs JSON[, each expert's probs JSON]) — in one transaction; the new run becomes the
        active one."""
        with self.store.transaction() as db:
            cur = db.execute(
                f"INSERT INTO runs ({', '.join(run)}) VALUES ({', '.join('?' * len(run))})", list(run.values())
            )
            run_id = inserted_id(cur)
            db.conn.executemany(
                "INSERT INTO run_samples (run_id, sample_id, label, role, pred, confidence, probs, experts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, *r, None)[:8] for r in samples],
            )
            if activate:
                db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", [ACTIVE_KEY, str(run_id)])
        self.store.backup("run")  # labels survive the loss of db/: doctor --restore
        return run_id

    def rows(self) -> list[dict[str, Any]]:
        with self.store.lock:
            return list(self.store.db.query("SELECT * FROM runs ORDER BY id"))

    def row(self, run_id: int) -> dict[str, Any] | None:
        if not 0 <= run_id < 2**63:  # no such row, and SQLite cannot look it up
            return None
        with self.store.lock:
            rows = list(self.store.db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
        return rows[0] if rows else None

    def checkpoints(self) -> set[str]:
        """Workspace-relative paths of every run's checkpoint."""
        with self.store.lock:
            return {r[0] for r in self.store.db.execute("SELECT checkpoint FROM runs")}

    def predictions(self, run_id: int, role: str | None = None) -> list[dict[str, Any]]:
        """Per-sample rows of a run: sample_id, label, role, pred, confidence, probs, and
        experts (each expert's probabilities by name; {} when not stored)."""
        sql = "SELECT * FROM run_samples WHERE run_id = ?" + (" AND role = ?" if role else "") + " ORDER BY sample_id"
        with self.store.lock:
            rows = list(self.store.db.query(sql, [run_id, role] if role else [run_id]))
        for r in rows:
            r["probs"] = json.loads(r["probs"]) if r["probs"] else None
            r["experts"] = json.loads(r["experts"]) if r.get("experts") else {}
        return rows

"""The ``label_events`` table: every change to a sample, and ``undo``.

Each user change (add, label, confirm, exclude, include, delete) is one event whose
payload holds what undo needs to put things back exactly (old split, resolved flags, the
deleted row). The only module that writes SQL for label events.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlite_utils

from fingertui.errors import UserError
from fingertui.store.util import now_iso

if TYPE_CHECKING:
    from fingertui.store import Store

# Event kinds a user can undo with `fingertui undo`, newest first.
UNDOABLE = ("add", "label", "confirm", "exclude", "include", "delete")


class History:
    def __init__(self, store: Store) -> None:
        self.store = store

    def events(self, sample_id: int | None = None) -> list[dict[str, Any]]:
        with self.store.lock:
            if sample_id is None:
                return list(self.store.db.query("SELECT * FROM label_events ORDER BY id"))
            return list(self.store.db.query("SELECT * FROM label_events WHERE sample_id = ? ORDER BY id", [sample_id]))

    def last_id(self) -> int | None:
        with self.store.lock:
            return self.store.db.execute("SELECT max(id) FROM label_events").fetchone()[0]

    def record(
        self,
        db: sqlite_utils.Database,
        sample_id: int,
        old: int | None,
        new: int | None,
        actor: str,
        reason: str | None,
        *,
        kind: str = "label",
        payload: dict | None = None,
    ) -> int:
        """Append an event inside the caller's transaction."""
        cur = db.execute(
            "INSERT INTO label_events (sample_id, old, new, time, actor, reason, kind, payload) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [sample_id, old, new, now_iso(), actor, reason, kind, json.dumps(payload) if payload else None],
        )
        return cur.lastrowid

    def mark_add_undone(self, db: sqlite_utils.Database, sample_id: int) -> None:
        db.execute("UPDATE label_events SET undone = 1 WHERE sample_id = ? AND kind = 'add'", [sample_id])

    def _newest_undoable(self) -> dict[str, Any] | None:
        with self.store.lock:
            rows = list(
                self.store.db.query(
                    f"SELECT * FROM label_events WHERE actor = 'user' AND undone = 0 "
                    f"AND kind IN ({','.join('?' * len(UNDOABLE))}) ORDER BY id DESC LIMIT 1",
                    list(UNDOABLE),
                )
            )
        return rows[0] if rows else None

    def undo(self) -> dict[str, Any]:
        """Revert the newest not-yet-undone user change exactly; repeatable."""
        store = self.store
        ev = self._newest_undoable()
        if ev is None:
            raise UserError("nothing to undo")
        payload = json.loads(ev["payload"]) if ev["payload"] else {}
        sid, kind = ev["sample_id"], ev["kind"]
        if kind == "add":  # a capture: remove it again, file and all
            store.remove_capture(sid)
            return {"event": ev["id"], "kind": kind, "sample": sid, "undone": f"removed capture {sid}"}
        if kind == "delete":
            row = payload["row"]
            trash = store.ws.trash_dir / Path(row["path"]).name
            if trash.exists():
                store.ws.abs(row["path"]).parent.mkdir(parents=True, exist_ok=True)
                os.replace(trash, store.ws.abs(row["path"]))
        with store.transaction() as db:
            if kind == "label":
                store._write_label(db, sid, ev["old"], payload.get("split"))
            elif kind in ("exclude", "include"):
                store._write_excluded(db, sid, kind == "include")
            elif kind == "delete":
                store._insert_row(db, payload["row"])
            store.flags.reopen(db, payload.get("flags") or [])
            db.execute("UPDATE label_events SET undone = 1 WHERE id = ?", [ev["id"]])
        what = {
            "label": f"label of {sid} back to {ev['old']}",
            "confirm": f"confirmation of {sid}",
            "exclude": f"{sid} included again",
            "include": f"{sid} excluded again",
            "delete": f"{sid} restored",
        }[kind]
        return {"event": ev["id"], "kind": kind, "sample": sid, "undone": what}

"""The ``label_events`` table: every change to a sample, and ``undo``.

Each user change (add, label, confirm, exclude, include, delete) is one event whose
payload holds what undo needs to put things back exactly (old split, resolved flags, the
deleted row). The only module that writes SQL for label events.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import sqlite_utils

from fingertui.data.store.core import StoreCore
from fingertui.data.store.crashpoints import crash_point
from fingertui.data.store.journal import ROW_KEYS, image_path_refusal
from fingertui.data.store.util import inserted_id, now_iso
from fingertui.errors import UserError

if TYPE_CHECKING:
    from fingertui.data.workspace import JsonValue

# Event kinds a user can undo with `fingertui undo`, newest first.
UNDOABLE = ("add", "label", "confirm", "exclude", "include", "delete")


class History:
    def __init__(self, store: StoreCore) -> None:
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
        return inserted_id(cur)

    def confirmed(self) -> dict[int, tuple[int, str | None]]:
        """Samples whose label the user confirmed and that have not changed since:
        ``{sample_id: (label, image sha256 at the confirmation)}``. A later label change
        (by anyone) ends a confirmation; undoing that change brings it back, undoing the
        confirmation ends it."""
        with self.store.lock:
            rows = self.store.db.execute(
                "SELECT sample_id, kind, new, payload FROM label_events WHERE id IN ("
                "SELECT max(id) FROM label_events WHERE undone = 0 AND kind IN ('add', 'label', 'confirm') "
                "GROUP BY sample_id)"
            ).fetchall()
        out = {}
        for sid, kind, label, payload in rows:
            if kind == "confirm" and label is not None:
                out[sid] = (label, json.loads(payload).get("sha256") if payload else None)
        return out

    def deleted_row_refusal(self, payload: JsonValue) -> str | None:
        """Why the row a delete event kept for undo is not one this fingertui wrote."""
        if not isinstance(payload, dict):
            return "the deleted row it keeps is not one this fingertui writes"
        row = payload.get("row")
        if not isinstance(row, dict) or set(row) - ROW_KEYS or row.get("label") not in (None, 0, 1, 2, 3, 4, 5):
            return "the deleted row it keeps is not one this fingertui writes"
        flags = payload.get("flags") or []
        if not isinstance(flags, list) or not all(type(f) is int for f in flags):
            return "its flags are not a list of ids"
        return image_path_refusal(self.store.ws, row.get("path"), row.get("sha256"))

    def refused(self) -> list[str]:
        """One line per delete event whose kept row undo will never act on."""
        with self.store.lock:
            rows = self.store.db.execute("SELECT id, payload FROM label_events WHERE kind = 'delete'").fetchall()
        out = []
        for eid, raw in rows:
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = None
            why = self.deleted_row_refusal(payload)
            if why:
                out.append(f"label event {eid} (delete): {why}; refused, never acted on")
        return out

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
        """Revert the newest not-yet-undone user change exactly; repeatable. A change that
        can no longer be reverted (its sample is gone, or was imported again) is marked
        undone with a note, so older changes stay reachable."""
        with self.store.writer.hold():
            return self._undo()

    def _mark_undone(self, db: sqlite_utils.Database, event_id: int) -> None:
        db.execute("UPDATE label_events SET undone = 1 WHERE id = ?", [event_id])

    def _undo(self) -> dict[str, Any]:
        store = self.store
        ev = self._newest_undoable()
        if ev is None:
            raise UserError("nothing to undo")
        try:
            payload = json.loads(ev["payload"]) if ev["payload"] else {}
        except ValueError:
            payload = None
        sid, kind = ev["sample_id"], ev["kind"]
        out = {"event": ev["id"], "kind": kind, "sample": sid}
        why = self.deleted_row_refusal(payload) if kind == "delete" else None
        if why or not isinstance(payload, dict):
            # Not one this fingertui wrote (a crafted or damaged index): never acted on; marked
            # done so the changes before it stay reachable. `doctor` lists it.
            with store.transaction() as db:
                self._mark_undone(db, ev["id"])
            return {**out, "undone": f"nothing: event {ev['id']} was refused ({why or 'its payload is not JSON'})"}
        if kind == "delete":
            return {**out, "undone": self._undo_delete(ev, payload)}
        if not store.has(sid):  # deleted since (and that delete was not undone): nothing to put back
            with store.transaction() as db:
                self._mark_undone(db, ev["id"])
            return {**out, "undone": f"nothing: sample {sid} no longer exists"}
        if kind == "add":  # a capture: remove it again (its file goes to the trash)
            store.remove_capture(sid)
            return {**out, "undone": f"removed capture {sid}"}
        with store.transaction() as db:
            if kind == "label":
                store._write_label(db, sid, ev["old"], payload.get("split"))
            elif kind in ("exclude", "include"):
                store._write_excluded(db, sid, kind == "include")
            store.flags.reopen(db, payload.get("flags") or [])
            self._mark_undone(db, ev["id"])
        what = {
            "label": f"label of {sid} back to {ev['old']}",
            "confirm": f"confirmation of {sid}",
            "exclude": f"{sid} included again",
            "include": f"{sid} excluded again",
        }[kind]
        return {**out, "undone": what}

    def _undo_delete(self, ev: dict[str, Any], payload: dict[str, Any]) -> str:
        store = self.store
        row = payload["row"]
        sid = ev["sample_id"]
        again = store.by_sha(row["sha256"])
        if again is not None:
            # The same image was imported again: keep that sample, give it back the label
            # the deleted one had if it has none (its split too: a split never changes).
            with store.transaction() as db:
                note = f"{sid} was imported again as {again.id}"
                if again.label is None and row["label"] is not None:
                    store._write_label(db, again.id, row["label"], row["split"])
                    self.record(db, again.id, None, row["label"], "import", f"undo of delete of {sid}")
                    note += f"; label {row['label']} restored"
                self._mark_undone(db, ev["id"])
            return note
        dst = store.ws.abs(row["path"])
        trash = store.ws.trashed_image(row["path"])
        if not trash.exists() and not dst.exists():
            with store.transaction() as db:
                self._mark_undone(db, ev["id"])
            return f"nothing: the image of {sid} was emptied from the trash"
        p = {"path": row["path"], "trash": store.ws.rel(trash), "sha256": row["sha256"]}
        # The id may name another image already (an index from a schema without
        # AUTOINCREMENT could reuse ids, see migrations.py): the sample then comes back
        # under a new id.
        taken = isinstance(row.get("id"), int) and store.has(row["id"])
        if taken:
            row = {k: v for k, v in row.items() if k != "id"}
        flags = payload.get("flags") or []
        with store.journal.step("undo_delete", p) as entry:
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(trash, dst)
            crash_point("undo:moved")
            with store.transaction() as db:
                new_id = store._insert_row(db, row)
                if taken:
                    store.flags.move(db, flags, new_id)
                store.flags.reopen(db, flags)
                self._mark_undone(db, ev["id"])
                store.journal.finish(db, entry)
        return f"{sid} restored as {new_id} (its id was taken)" if taken else f"{sid} restored"

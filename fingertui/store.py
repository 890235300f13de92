"""The dataset store: image files under ``data/images`` indexed in SQLite under ``db/``.

Writes are atomic: an image is written to a temporary name and renamed into its
content-addressed place, then its row (and its first label event) is inserted in one
transaction. A crash leaves either no sample or a complete one, plus at worst an
orphaned file that ``fingertui doctor`` removes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from fingertui.errors import UserError
from fingertui.labels import CLASSES
from fingertui.workspace import Workspace

TMP_PREFIX = ".tmp-"
SPLITS = ("train", "test")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"could not write {path}: {e.strerror or e}; free some disk space or check permissions") from e


# --- schema -----------------------------------------------------------------------------
# Each migration takes the database from version i to i+1. Never edit a released one:
# append a new function instead, so existing workspaces upgrade in place.


def _m1_samples(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE samples (
            id INTEGER PRIMARY KEY,
            sha256 TEXT NOT NULL UNIQUE,
            path TEXT NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('capture', 'import')),
            origin TEXT,
            session TEXT,
            created TEXT NOT NULL,
            label INTEGER CHECK (label IS NULL OR label BETWEEN 0 AND 5),
            split TEXT CHECK (split IS NULL OR split IN ('train', 'test')),
            group_key TEXT
        )"""
    )
    db.execute(
        """CREATE TABLE label_events (
            id INTEGER PRIMARY KEY,
            sample_id INTEGER NOT NULL,
            old INTEGER,
            new INTEGER,
            time TEXT NOT NULL,
            actor TEXT NOT NULL CHECK (actor IN ('user', 'import')),
            reason TEXT
        )"""
    )
    db.execute("CREATE INDEX idx_label_events_sample ON label_events(sample_id)")


def _m2_phash(db: sqlite_utils.Database) -> None:
    # Perceptual hash (64-bit, hex) used to keep near-identical images in one split.
    db.execute("ALTER TABLE samples ADD COLUMN phash TEXT")
    db.execute("CREATE INDEX idx_samples_group ON samples(group_key)")


def _m3_learning(db: sqlite_utils.Database) -> None:
    # Cached backbone embeddings (float16 blobs), runs, their per-sample predictions, and
    # small settings such as the active run.
    db.execute(
        """CREATE TABLE embeddings (
            sha256 TEXT NOT NULL, backbone TEXT NOT NULL, recipe TEXT NOT NULL, view INTEGER NOT NULL,
            vec BLOB NOT NULL, PRIMARY KEY (sha256, backbone, recipe, view)
        )"""
    )
    db.execute(
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY, started TEXT NOT NULL, finished TEXT NOT NULL, backbone TEXT NOT NULL,
            seed INTEGER NOT NULL, config TEXT NOT NULL, data_hash TEXT NOT NULL, n_train INTEGER NOT NULL,
            n_test INTEGER NOT NULL, metrics TEXT NOT NULL, checkpoint TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE run_samples (
            run_id INTEGER NOT NULL, sample_id INTEGER NOT NULL, label INTEGER NOT NULL, role TEXT NOT NULL,
            pred INTEGER, confidence REAL, probs TEXT, PRIMARY KEY (run_id, sample_id)
        )"""
    )
    db.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT)")


def _m4_review(db: sqlite_utils.Database) -> None:
    # Review queue: flags with reasons; excluded samples ("not a hand"); undoable events.
    db.execute("ALTER TABLE samples ADD COLUMN excluded INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE label_events ADD COLUMN kind TEXT NOT NULL DEFAULT 'label'")
    db.execute("ALTER TABLE label_events ADD COLUMN payload TEXT")
    db.execute("ALTER TABLE label_events ADD COLUMN undone INTEGER NOT NULL DEFAULT 0")
    db.execute(
        """CREATE TABLE flags (
            id INTEGER PRIMARY KEY, sample_id INTEGER NOT NULL, reason TEXT NOT NULL, score REAL NOT NULL,
            suggested INTEGER, pred INTEGER, confidence REAL, probs TEXT, run_id INTEGER, created TEXT NOT NULL,
            resolved TEXT, resolution TEXT
        )"""
    )
    db.execute("CREATE INDEX idx_flags_sample ON flags(sample_id)")


def _m5_capture(db: sqlite_utils.Database) -> None:
    # What the model said when a snapshot was captured (run id, label, confidence).
    db.execute("ALTER TABLE samples ADD COLUMN capture_run INTEGER")
    db.execute("ALTER TABLE samples ADD COLUMN capture_pred INTEGER")
    db.execute("ALTER TABLE samples ADD COLUMN capture_conf REAL")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m1_samples,
    _m2_phash,
    _m3_learning,
    _m4_review,
    _m5_capture,
]
# Event kinds a user can undo with `fingertui undo`, newest first.
UNDOABLE = ("add", "label", "confirm", "exclude", "include", "delete")
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite_utils.Database) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version it started at."""
    start = db.execute("PRAGMA user_version").fetchone()[0]
    if start > SCHEMA_VERSION:
        raise UserError(
            f"this workspace was written by a newer fingertui (schema {start} > {SCHEMA_VERSION}); upgrade fingertui"
        )
    for version in range(start, SCHEMA_VERSION):
        with db.atomic():
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")
    return start


@dataclass(frozen=True)
class Sample:
    id: int
    sha256: str
    path: str
    width: int
    height: int
    source: str
    origin: str | None
    session: str | None
    created: str
    label: int | None
    split: str | None
    group_key: str | None
    phash: str | None
    excluded: int = 0
    capture_run: int | None = None
    capture_pred: int | None = None
    capture_conf: float | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Sample:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class AddResult:
    sample: Sample
    duplicate: bool


class Store:
    """All reads and writes of the dataset go through here."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace.ensure()
        try:
            conn = sqlite3.connect(self.ws.db_path, check_same_thread=False, timeout=30)
            self.db = sqlite_utils.Database(conn)
            self.db.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL keeps the database consistent on a crash (a power cut may
            # drop the last commits, whose files doctor then finds as orphans).
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.migrated_from = migrate(self.db)
        except sqlite3.DatabaseError as e:
            raise UserError(
                f"cannot open the index {self.ws.db_path}: {e}; run `fingertui doctor` or restore a backup"
            ) from e
        # One connection shared by the CLI, tests and the TUI's worker threads.
        self.lock = threading.RLock()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        with self.lock, self.db.atomic():
            yield self.db

    # --- reads ------------------------------------------------------------------------

    def get(self, sample_id: int) -> Sample:
        with self.lock:
            rows = list(self.db.query("SELECT * FROM samples WHERE id = ?", [sample_id]))
        if not rows:
            raise UserError(f"no sample with id {sample_id}; `fingertui stats` shows what is stored")
        return Sample.from_row(rows[0])

    def by_sha(self, sha: str) -> Sample | None:
        with self.lock:
            rows = list(self.db.query("SELECT * FROM samples WHERE sha256 = ?", [sha]))
        return Sample.from_row(rows[0]) if rows else None

    def samples(self, where: str = "1", params: list[Any] | None = None) -> list[Sample]:
        with self.lock:
            rows = self.db.query(f"SELECT * FROM samples WHERE {where} ORDER BY id", params or [])
            return [Sample.from_row(r) for r in rows]

    def labelled(self) -> list[Sample]:
        """Samples that take part in training and evaluation (labelled, not excluded)."""
        return self.samples("label IS NOT NULL AND split IS NOT NULL AND excluded = 0")

    def count(self) -> int:
        with self.lock:
            return self.db.execute("SELECT count(*) FROM samples").fetchone()[0]

    def split_counts(self) -> dict[int, dict[str, int]]:
        """Labelled samples per class and split: ``{label: {"train": n, "test": m}}``."""
        out = {c: {s: 0 for s in SPLITS} for c in CLASSES}
        with self.lock:
            rows = self.db.execute(
                "SELECT label, split, count(*) FROM samples WHERE label IS NOT NULL AND split IS NOT NULL "
                "GROUP BY label, split"
            ).fetchall()
        for label, split, n in rows:
            out[label][split] = n
        return out

    def group_index(self) -> list[tuple[int, str | None, str | None, str | None]]:
        """(id, phash, group_key, split) of every sample: what split planning needs."""
        with self.lock:
            return self.db.execute("SELECT id, phash, group_key, split FROM samples").fetchall()

    def label_events(self, sample_id: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            if sample_id is None:
                return list(self.db.query("SELECT * FROM label_events ORDER BY id"))
            return list(self.db.query("SELECT * FROM label_events WHERE sample_id = ? ORDER BY id", [sample_id]))

    # --- writes -----------------------------------------------------------------------

    def add_image(
        self,
        data: bytes,
        ext: str,
        *,
        width: int,
        height: int,
        source: str,
        label: int | None,
        split: str | None,
        group_key: str | None,
        phash: str | None,
        origin: str | None = None,
        session: str | None = None,
        actor: str = "import",
        reason: str | None = None,
        capture: tuple[int | None, int | None, float | None] | None = None,
    ) -> AddResult:
        """Store an image and its row atomically; an image already stored is a no-op."""
        sha = sha256_bytes(data)
        existing = self.by_sha(sha)
        if existing is not None:
            return AddResult(existing, duplicate=True)
        if label is not None and label not in CLASSES:
            raise UserError(f"unknown label {label!r}: use 0–5")
        if label is None:
            split = None
        path = self.ws.image_path(sha, ext.lower().lstrip("."))
        atomic_write(path, data)
        row = {
            "sha256": sha,
            "path": self.ws.rel(path),
            "width": width,
            "height": height,
            "source": source,
            "origin": origin,
            "session": session,
            "created": now_iso(),
            "label": label,
            "split": split,
            "group_key": group_key,
            "phash": phash,
        }
        if capture is not None:
            row["capture_run"], row["capture_pred"], row["capture_conf"] = capture
        with self.transaction() as db:
            cur = db.execute(
                f"INSERT INTO samples ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
            )
            sample_id = cur.lastrowid
            self._event(db, sample_id, None, label, actor, reason or source, kind="add")
        return AddResult(self.get(sample_id), duplicate=False)

    def _event(
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
        cur = db.execute(
            "INSERT INTO label_events (sample_id, old, new, time, actor, reason, kind, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [sample_id, old, new, now_iso(), actor, reason, kind, json.dumps(payload) if payload else None],
        )
        return cur.lastrowid

    def _resolve_flags(self, db: sqlite_utils.Database, sample_id: int, resolution: str) -> list[int]:
        ids = [r[0] for r in db.execute("SELECT id FROM flags WHERE sample_id = ? AND resolved IS NULL", [sample_id])]
        if ids:
            db.execute(
                f"UPDATE flags SET resolved = ?, resolution = ? WHERE id IN ({','.join('?' * len(ids))})",
                [now_iso(), resolution, *ids],
            )
        return ids

    def _split_for(self, sample: Sample, label: int) -> str:
        """The split a newly labelled sample gets: its group's, else a planned one."""
        from fingertui import splits

        with self.lock:
            row = self.db.execute(
                "SELECT split FROM samples WHERE group_key = ? AND split IS NOT NULL LIMIT 1", [sample.group_key]
            ).fetchone()
        if row:
            return row[0]
        item = splits.Item(label, sample.phash or "0" * 16, sample.group_key, None, sample.sha256)
        existing = [splits.Existing(p, g, sp) for sid, p, g, sp in self.group_index() if sid != sample.id]
        return splits.plan([item], existing, self.split_counts())[0][1] or "train"

    def set_label(
        self,
        sample_id: int,
        label: int | None,
        *,
        split: str | None = None,
        actor: str = "user",
        reason: str | None = None,
    ) -> Sample:
        """Change a sample's label, recording the change; a newly labelled sample gets a
        split (``split`` if given, else its group's or a planned one) that never changes.
        Open review flags of the sample are resolved by the change."""
        sample = self.get(sample_id)
        if label is not None and label not in CLASSES:
            raise UserError(f"unknown label {label!r}: use 0–5")
        if label == sample.label:
            return sample
        if sample.split is None and label is not None and split is None:
            split = self._split_for(sample, label)
        with self.transaction() as db:
            new_split = sample.split if sample.split is not None or label is None else split
            db.execute("UPDATE samples SET label = ?, split = ? WHERE id = ?", [label, new_split, sample_id])
            flags = self._resolve_flags(db, sample_id, f"relabel:{label}") if actor == "user" else []
            self._event(
                db, sample_id, sample.label, label, actor, reason, payload={"flags": flags, "split": sample.split}
            )
        return self.get(sample_id)

    def confirm(self, sample_id: int, reason: str | None = "review") -> Sample:
        """The user says the label is right: the sample's open flags are resolved."""
        sample = self.get(sample_id)
        if sample.label is None:
            raise UserError(
                f"sample {sample_id} has no label to confirm; give it one with `fingertui label {sample_id} N`"
            )
        with self.transaction() as db:
            flags = self._resolve_flags(db, sample_id, "confirm")
            self._event(
                db, sample_id, sample.label, sample.label, "user", reason, kind="confirm", payload={"flags": flags}
            )
        return self.get(sample_id)

    def set_excluded(
        self, sample_id: int, excluded: bool = True, reason: str | None = "not a hand / bad image"
    ) -> Sample:
        """Keep the image on disk but leave it out of training and evaluation (or back in)."""
        sample = self.get(sample_id)
        with self.transaction() as db:
            db.execute("UPDATE samples SET excluded = ? WHERE id = ?", [int(excluded), sample_id])
            flags = self._resolve_flags(db, sample_id, "exclude") if excluded else []
            kind = "exclude" if excluded else "include"
            self._event(db, sample_id, sample.label, sample.label, "user", reason, kind=kind, payload={"flags": flags})
        return self.get(sample_id)

    def get_setting(self, key: str) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str | None) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", [key, value])

    def delete(self, sample_id: int, *, reason: str | None = "delete") -> Sample:
        """Remove a sample. Its file moves to ``data/trash/`` and its row is kept in the
        event, so `undo` can bring it back exactly."""
        sample = self.get(sample_id)
        src = self.ws.abs(sample.path)
        trash = self.ws.trash_dir / src.name
        trash.parent.mkdir(parents=True, exist_ok=True)
        if src.exists():
            os.replace(src, trash)
        try:
            with self.transaction() as db:
                flags = self._resolve_flags(db, sample_id, "delete")
                db.execute("DELETE FROM samples WHERE id = ?", [sample_id])
                row = {k: getattr(sample, k) for k in Sample.__dataclass_fields__}
                self._event(
                    db,
                    sample_id,
                    sample.label,
                    None,
                    "user",
                    reason,
                    kind="delete",
                    payload={"row": row, "flags": flags},
                )
        except BaseException:
            if trash.exists():
                os.replace(trash, src)
            raise
        return sample

    def remove_capture(self, sample_id: int) -> Sample:
        """Take back a capture exactly: row, file and its 'add' event (marked undone)."""
        sample = self.get(sample_id)
        with self.transaction() as db:
            db.execute("DELETE FROM flags WHERE sample_id = ?", [sample_id])
            db.execute("DELETE FROM samples WHERE id = ?", [sample_id])
            db.execute("UPDATE label_events SET undone = 1 WHERE sample_id = ? AND kind = 'add'", [sample_id])
        self.ws.abs(sample.path).unlink(missing_ok=True)
        return sample

    def undo(self) -> dict[str, Any]:
        """Revert the newest not-yet-undone user change exactly; repeatable."""
        with self.lock:
            rows = list(
                self.db.query(
                    f"SELECT * FROM label_events WHERE actor = 'user' AND undone = 0 AND kind IN ({','.join('?' * len(UNDOABLE))}) "
                    "ORDER BY id DESC LIMIT 1",
                    list(UNDOABLE),
                )
            )
        if not rows:
            raise UserError("nothing to undo")
        ev = rows[0]
        payload = json.loads(ev["payload"]) if ev["payload"] else {}
        sid, kind = ev["sample_id"], ev["kind"]
        if kind == "add":  # a capture: remove it again, file and all
            self.remove_capture(sid)
            return {"event": ev["id"], "kind": kind, "sample": sid, "undone": f"removed capture {sid}"}
        if kind == "delete":
            row = payload["row"]
            trash = self.ws.trash_dir / Path(row["path"]).name
            if trash.exists():
                self.ws.abs(row["path"]).parent.mkdir(parents=True, exist_ok=True)
                os.replace(trash, self.ws.abs(row["path"]))
        with self.transaction() as db:
            if kind == "label":
                db.execute(
                    "UPDATE samples SET label = ?, split = ? WHERE id = ?", [ev["old"], payload.get("split"), sid]
                )
            elif kind in ("exclude", "include"):
                db.execute("UPDATE samples SET excluded = ? WHERE id = ?", [int(kind == "include"), sid])
            elif kind == "delete":
                row = payload["row"]
                db.execute(
                    f"INSERT INTO samples ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
                )
            flags = payload.get("flags") or []
            if flags:
                db.execute(
                    f"UPDATE flags SET resolved = NULL, resolution = NULL WHERE id IN ({','.join('?' * len(flags))})",
                    flags,
                )
            db.execute("UPDATE label_events SET undone = 1 WHERE id = ?", [ev["id"]])
        what = {
            "label": f"label of {sid} back to {ev['old']}",
            "confirm": f"confirmation of {sid}",
            "exclude": f"{sid} included again",
            "include": f"{sid} excluded again",
            "delete": f"{sid} restored",
        }[kind]
        return {"event": ev["id"], "kind": kind, "sample": sid, "undone": what}

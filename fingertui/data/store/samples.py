"""The store of samples: image files under ``data/images`` indexed in SQLite under ``db/``.

Writes are atomic: an image is written to a temporary name and renamed into its
content-addressed place, then its row (and its first label event) is inserted in one
transaction; the change is journalled first, so a crash at any step is completed or
rolled back by the next writer (store/journal.py). One writer at a time per workspace.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlite_utils

from fingertui.data.store.core import Sample
from fingertui.data.store.crashpoints import crash_point
from fingertui.data.store.flags import FlagsTable
from fingertui.data.store.history import History
from fingertui.data.store.journal import Journal, WriterLock
from fingertui.data.store.migrations import SCHEMA_VERSION, migrate, version
from fingertui.data.store.run_table import RunTable
from fingertui.data.store.util import MAX_ID, atomic_write, inserted_id, now_iso, sha256_bytes
from fingertui.data.store.vectors import EmbeddingTable, LandmarkTable, rows_for_shas
from fingertui.data.workspace import Workspace
from fingertui.errors import UserError
from fingertui.labels import CLASSES

SPLITS = ("train", "test")


@dataclass(frozen=True)
class AddResult:
    sample: Sample
    duplicate: bool


class IndexUnusable(UserError):
    """The index is missing, empty or unreadable while images exist: nothing is touched."""


def has_images(ws: Workspace) -> bool:
    """Whether ``data/images`` holds any file (stops at the first one)."""
    if not ws.images_dir.is_dir():
        return False
    for sub in os.scandir(ws.images_dir):
        if sub.is_file():
            return True
        if sub.is_dir() and any(e.is_file() for e in os.scandir(sub.path)):
            return True
    return False


def recovery_advice(ws: Workspace, problem: str) -> str:
    """One line: what is wrong with the index and the doctor command that recovers."""
    from fingertui.data.store.backup import newest_usable

    last = newest_usable(ws.backups_dir)
    restore = (
        f"run `fingertui doctor --restore` to put back the newest backup ({ws.rel(last)}), then "
        "`fingertui doctor --reindex` for images added since"
        if last
        else "no backup exists; run `fingertui doctor --reindex` to index the images again, unlabelled"
    )
    return f"{problem}; nothing was changed. To recover, {restore}"


BACKUP_FAILED_KEY = "backup_failed"  # settings: the last backup failed (when, why)


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _open_error(ws: Workspace, rel_db: str, e: sqlite3.DatabaseError) -> UserError:
    """A damaged index gets the way to recover; any other cause (locked, no permission,
    disk full) is named as it is, and nothing is advised that would set a good index aside."""
    from fingertui.data.store.util import sqlite_advice

    corrupt, advice = sqlite_advice(e)
    if corrupt:
        return IndexUnusable(recovery_advice(ws, f"{rel_db} cannot be read ({e})"))
    return UserError(f"{rel_db}: {advice}")


class Store:
    """All reads and writes of the dataset go through here."""

    def __init__(self, workspace: Workspace, *, new_index_ok: bool = False) -> None:
        self.ws = workspace
        self.readonly = False
        self.warnings: list[str] = []
        root = workspace.root
        if root.exists() and not root.is_dir():
            raise UserError(f"{root} is a file, not a workspace folder; pass a folder with --home")
        db_path = workspace.db_path
        have_db = db_path.is_file() and db_path.stat().st_size > 0
        images = has_images(workspace)
        rel_db = f"the index {db_path.relative_to(root)}"
        if not have_db and images and not new_index_ok:
            what = "is missing" if not db_path.exists() else "is empty"
            raise IndexUnusable(recovery_advice(workspace, f"{rel_db} {what} but data/images holds images"))
        try:
            workspace.ensure()
            writable = os.access(workspace.db_dir, os.W_OK) and (not have_db or os.access(db_path, os.W_OK))
        except OSError as e:
            if not have_db:
                raise UserError(
                    f"cannot create a workspace in {root} ({e.strerror or e}); pass a writable folder with --home"
                ) from e
            writable = False
        self.readonly = not writable
        try:
            if self.readonly:
                conn = self._connect_readonly(db_path)
            else:
                conn = sqlite3.connect(db_path, check_same_thread=False, timeout=30)
            self.db = sqlite_utils.Database(conn)
            if not self.readonly:
                self.db.execute("PRAGMA journal_mode=WAL")
                # In WAL mode NORMAL keeps the database consistent on a crash (a power cut may
                # drop the last commits; the journal then completes or rolls them back).
                self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            start = version(self.db)
        except sqlite3.DatabaseError as e:
            raise _open_error(workspace, rel_db, e) from e
        # Which file this connection writes to: a `doctor --restore` that swaps the index
        # while this store is open must stop its writes (they would go to the old file).
        self._db_file = _file_id(db_path)
        if start == 0 and images and not new_index_ok:
            self.db.close()
            raise IndexUnusable(recovery_advice(workspace, f"{rel_db} is empty but data/images holds images"))
        # One connection shared by the CLI, tests and the TUI's worker threads.
        self.lock = threading.RLock()
        # One writer per workspace (OS file lock); a crashed writer's journal is dealt
        # with by whoever takes the lock next.
        self.writer = WriterLock(workspace.lock_path, readonly=self.readonly)
        self.journal = Journal(self)
        self._ready = False
        self.writer.on_acquire.append(self._recover)
        self.recovered: list[str] = []
        try:
            if start < SCHEMA_VERSION:
                with self.writer.hold():
                    self.migrated_from = migrate(self.db, before=self._backup_before_migration)
            else:
                self.migrated_from = migrate(self.db)
        except sqlite3.DatabaseError as e:
            raise _open_error(workspace, rel_db, e) from e
        self._ready = True
        # The tables other modules read and write, each through its owner.
        self.flags = FlagsTable(self)
        self.history = History(self)
        self.runs = RunTable(self)
        self.embeddings = EmbeddingTable(self)
        self.landmarks = LandmarkTable(self)
        if not self.readonly and self.journal.has_pending():
            # Finish what a crashed writer left, unless a live one holds the lock now.
            try:
                with self.writer.hold(wait=0):
                    pass
            except UserError:
                pass

    @staticmethod
    def _connect_readonly(db_path: Path) -> sqlite3.Connection:
        """Read-only: through the WAL when SQLite can, else the file as it is (immutable)."""
        base = f"file:{quote(str(db_path))}?mode=ro"
        try:
            conn = sqlite3.connect(base, uri=True, check_same_thread=False)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            return sqlite3.connect(base + "&immutable=1", uri=True, check_same_thread=False)

    def _backup_before_migration(self, start: int) -> None:
        if start > 0:
            self.backup(f"schema{start}")

    def _recover(self) -> None:
        if _file_id(self.ws.db_path) != self._db_file:
            raise UserError(
                "the index was replaced (`fingertui doctor --restore`) while this command ran; nothing more was "
                "written to it: run the command again"
            )
        if self._ready and self.journal.has_pending():
            self.recovered += self.journal.recover()

    def backup(self, reason: str) -> Path | None:
        """An online backup of the index into ``data/backups/`` (a few newest are kept)."""
        from fingertui.data.store.backup import backup

        if self.readonly:
            return None
        try:
            with self.lock:
                made = backup(self.db.conn, self.ws.backups_dir, reason)
        except (OSError, sqlite3.Error) as e:
            why = f"could not back up the index into {self.ws.rel(self.ws.backups_dir)} ({e})"
            self.warnings.append(f"{why}; check that the folder is writable and the disk has space")
            try:  # remembered for `doctor` (the disk may be too full even for this)
                if self._ready:  # (before a migration the settings table may not exist yet)
                    self.set_setting(BACKUP_FAILED_KEY, f"{now_iso()} {why}")
            except (UserError, sqlite3.Error):
                pass
            return None
        if self._ready and self.get_setting(BACKUP_FAILED_KEY) is not None:
            self.set_setting(BACKUP_FAILED_KEY, None)
        return made

    def close(self, timeout: float = 10.0) -> None:
        """Close the index once no other thread of this process is writing to it: a write
        under way ends first (waiting at most ``timeout`` s); a later one fails whole."""
        with self.writer.quiet(timeout), self.lock:
            self.db.close()
        self.writer.close()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the workspace's write lock across several changes (reentrant)."""
        with self.writer.hold():
            yield

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        with self.writer.hold(), self.lock, self.db.atomic():
            yield self.db
            crash_point("commit")

    # --- reads ------------------------------------------------------------------------

    def get(self, sample_id: int) -> Sample:
        if not 0 <= sample_id <= MAX_ID:  # SQLite cannot even look such an id up
            raise UserError(f"no sample with id {sample_id}; `fingertui samples` lists the ids")
        with self.lock:
            rows = list(self.db.query("SELECT * FROM samples WHERE id = ?", [sample_id]))
        if not rows:
            raise UserError(f"no sample with id {sample_id}; `fingertui samples` lists the ids")
        return Sample.from_row(rows[0])

    def by_sha(self, sha: str) -> Sample | None:
        with self.lock:
            rows = list(self.db.query("SELECT * FROM samples WHERE sha256 = ?", [sha]))
        return Sample.from_row(rows[0]) if rows else None

    def by_ids(self, ids: Sequence[int]) -> dict[int, Sample]:
        """The samples with these ids that exist, by id."""
        uniq = sorted(set(ids))
        out: dict[int, Sample] = {}
        with self.lock:
            for start in range(0, len(uniq), 500):
                chunk = uniq[start : start + 500]
                rows = self.db.query(f"SELECT * FROM samples WHERE id IN ({','.join('?' * len(chunk))})", chunk)
                out.update((r["id"], Sample.from_row(r)) for r in rows)
        return out

    def by_shas(self, shas: Sequence[str]) -> dict[str, Sample]:
        """The stored samples among these content hashes, by hash (one chunked lookup)."""
        rows = rows_for_shas(self, "SELECT * FROM samples WHERE sha256 IN ({marks})", [], shas, dicts=True)
        return {r["sha256"]: Sample.from_row(r) for r in rows}

    def samples(
        self,
        *,
        label: int | None = None,
        unlabelled: bool = False,
        split: str | None = None,
        excluded: bool | None = None,
    ) -> list[Sample]:
        """The samples, by id: with this label (or none, with ``unlabelled``), in this split,
        excluded from training or not; each filter left out matches every sample."""
        where: list[str] = []
        params: list[int | str] = []
        if unlabelled:
            where.append("label IS NULL")
        elif label is not None:
            where.append("label = ?")
            params.append(label)
        if split is not None:
            where.append("split = ?")
            params.append(split)
        if excluded is not None:
            where.append("excluded = ?")
            params.append(int(excluded))
        return self._select(" AND ".join(where) or "1", params)

    def labelled(self) -> list[Sample]:
        """Samples that take part in training and evaluation (labelled, not excluded)."""
        return self._select("label IS NOT NULL AND split IS NOT NULL AND excluded = 0", [])

    def _select(self, where: str, params: list[int | str]) -> list[Sample]:
        with self.lock:
            rows = self.db.query(f"SELECT * FROM samples WHERE {where} ORDER BY id", params)
            return [Sample.from_row(r) for r in rows]

    def has(self, sample_id: int) -> bool:
        """Whether a sample with this id exists."""
        if not 0 <= sample_id <= MAX_ID:
            return False
        with self.lock:
            return self.db.execute("SELECT 1 FROM samples WHERE id = ?", [sample_id]).fetchone() is not None

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

    def unlabelled_count(self) -> int:
        with self.lock:
            return self.db.execute("SELECT count(*) FROM samples WHERE label IS NULL").fetchone()[0]

    def session_count(self) -> int:
        """How many sittings the samples were taken in (sessions.py)."""
        with self.lock:
            return self.db.execute("SELECT count(DISTINCT coalesce(session, '-')) FROM samples").fetchone()[0]

    def data_version(self) -> int | None:
        """A number that changes when another process (``fingertui label`` in another
        terminal) commits to the index; this process's own writes leave it alone. Cheap to
        poll; None while another thread of this process is using the connection."""
        if not self.lock.acquire(blocking=False):
            return None
        try:
            return self.db.execute("PRAGMA data_version").fetchone()[0]
        finally:
            self.lock.release()

    def change_marker(self) -> str:
        """Changes whenever a sample is added, removed or relabelled (cheap to poll)."""
        with self.lock:
            n, top = self.db.execute("SELECT count(*), max(id) FROM samples").fetchone()
        return f"{n}:{top}:{self.history.last_id()}"

    def label_events(self, sample_id: int | None = None) -> list[dict[str, Any]]:
        return self.history.events(sample_id)

    def confirmed(self) -> set[int]:
        """Ids of samples whose current label the user confirmed on their current image."""
        current = {}
        with self.lock:
            for sid, label, sha in self.db.execute("SELECT id, label, sha256 FROM samples"):
                current[sid] = (label, sha)
        return {
            sid
            for sid, (label, sha) in self.history.confirmed().items()
            if sid in current and current[sid][0] == label and sha in (None, current[sid][1])
        }

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
        if label is not None and label not in CLASSES:
            raise UserError(f"unknown label {label!r}: use 0–5")
        if label is None:
            split = None
        with self.writer.hold():
            existing = self.by_sha(sha)
            if existing is not None:
                return AddResult(existing, duplicate=True)
            # Through the one check: a folder of data/images that is a link leading out is refused.
            path = self.ws.abs(self.ws.rel(self.ws.image_path(sha, ext.lower().lstrip("."))))
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
            event = {"actor": actor, "reason": reason or source}
            with self.journal.step("add", {"row": row, "event": event}) as entry:
                atomic_write(path, data)
                crash_point("add:written")
                with self.transaction() as db:
                    sample_id = self._insert_row(db, row)
                    self.history.record(db, sample_id, None, label, actor, event["reason"], kind="add")
                    self.journal.finish(db, entry)
        return AddResult(self.get(sample_id), duplicate=False)

    def _split_for(self, sample: Sample, label: int) -> str:
        """The split a newly labelled sample gets: its group's, else a planned one."""
        from fingertui.data import splits

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
        with self.writer.hold():
            return self._set_label(sample_id, label, split, actor, reason)

    def _set_label(
        self, sample_id: int, label: int | None, split: str | None, actor: str, reason: str | None
    ) -> Sample:
        sample = self.get(sample_id)
        if label is not None and label not in CLASSES:
            raise UserError(f"unknown label {label!r}: use 0–5")
        if label == sample.label:
            return sample
        if sample.split is None and label is not None and split is None:
            split = self._split_for(sample, label)
        with self.transaction() as db:
            new_split = sample.split if sample.split is not None or label is None else split
            self._write_label(db, sample_id, label, new_split)
            flags = self.flags.resolve_open(db, sample_id, f"relabel:{label}") if actor == "user" else []
            self.history.record(
                db, sample_id, sample.label, label, actor, reason, payload={"flags": flags, "split": sample.split}
            )
        return self.get(sample_id)

    def confirm(self, sample_id: int, reason: str | None = "review") -> Sample:
        """The user says the label is right: the sample's open flags are resolved, and no
        run flags it again while its label and image stay as they are."""
        with self.writer.hold():
            return self._confirm(sample_id, reason)

    def _confirm(self, sample_id: int, reason: str | None) -> Sample:
        sample = self.get(sample_id)
        if sample.label is None:
            raise UserError(
                f"sample {sample_id} has no label to confirm; give it one with `fingertui label {sample_id} N`"
            )
        with self.transaction() as db:
            flags = self.flags.resolve_open(db, sample_id, "confirm")
            # The image's hash too: a confirmation holds for this label on this image only.
            self.history.record(
                db,
                sample_id,
                sample.label,
                sample.label,
                "user",
                reason,
                kind="confirm",
                payload={"flags": flags, "sha256": sample.sha256},
            )
        return self.get(sample_id)

    def set_excluded(
        self, sample_id: int, excluded: bool = True, reason: str | None = "not a hand / bad image"
    ) -> Sample:
        """Keep the image on disk but leave it out of training and evaluation (or back in)."""
        with self.writer.hold():
            return self._set_excluded(sample_id, excluded, reason)

    def _set_excluded(self, sample_id: int, excluded: bool, reason: str | None) -> Sample:
        sample = self.get(sample_id)
        with self.transaction() as db:
            self._write_excluded(db, sample_id, excluded)
            flags = self.flags.resolve_open(db, sample_id, "exclude") if excluded else []
            kind = "exclude" if excluded else "include"
            self.history.record(
                db, sample_id, sample.label, sample.label, "user", reason, kind=kind, payload={"flags": flags}
            )
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
        with self.writer.hold():
            sample = self.get(sample_id)
            src = self.ws.abs(sample.path)  # refuses a row leading outside data/
            trash = self.ws.trashed_image(sample.path)
            payload = {"path": sample.path, "trash": self.ws.rel(trash), "sha256": sample.sha256}
            with self.journal.step("delete", payload) as entry:
                trash.parent.mkdir(parents=True, exist_ok=True)
                if src.exists():
                    os.replace(src, trash)
                crash_point("delete:moved")
                with self.transaction() as db:
                    flags = self.flags.resolve_open(db, sample_id, "delete")
                    db.execute("DELETE FROM samples WHERE id = ?", [sample_id])
                    row = {k: getattr(sample, k) for k in Sample.__dataclass_fields__}
                    self.history.record(
                        db,
                        sample_id,
                        sample.label,
                        None,
                        "user",
                        reason,
                        kind="delete",
                        payload={"row": row, "flags": flags},
                    )
                    self.journal.finish(db, entry)
        return sample

    def remove_capture(self, sample_id: int) -> Sample:
        """Take back one capture exactly (see :meth:`remove_captures`)."""
        removed = self.remove_captures([sample_id])
        if not removed:
            self.get(sample_id)  # raises the usual "no sample" error
        return removed[0]

    def remove_captures(self, sample_ids: list[int]) -> list[Sample]:
        """Take back captures (a burst, a hold) exactly and all at once: their rows go and
        their 'add' events are marked undone in one transaction; the files go to the trash
        (``doctor --empty-trash`` removes them for good). Ids already gone are skipped;
        returns the samples removed."""
        with self.writer.hold():
            samples = []
            for sid in sample_ids:
                try:
                    samples.append(self.get(sid))
                except UserError:  # deleted since (review, gallery): nothing to take back
                    continue
            if not samples:
                return []
            for s in samples:
                self.ws.abs(s.path)  # refuses a row leading outside data/ before anything moves
            items = [
                {"path": s.path, "trash": self.ws.rel(self.ws.trashed_image(s.path)), "sha256": s.sha256}
                for s in samples
            ]
            with self.journal.step("remove", {"items": items}) as entry:
                with self.transaction() as db:
                    for s in samples:
                        self.flags.drop_for(db, s.id)
                        db.execute("DELETE FROM samples WHERE id = ?", [s.id])
                        self.history.mark_add_undone(db, s.id)
                for item in items:
                    src, trash = self.ws.abs(item["path"]), self.ws.abs(item["trash"])
                    if src.exists():
                        trash.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(src, trash)
                    crash_point("remove:moved")
                with self.transaction() as db:
                    self.journal.finish(db, entry)
        return samples

    def undo(self) -> dict[str, Any]:
        """Revert the newest not-yet-undone user change exactly; repeatable."""
        return self.history.undo()

    # --- sample-row writes used inside transactions (also by history's undo) -----------

    def _write_label(self, db: sqlite_utils.Database, sample_id: int, label: int | None, split: str | None) -> None:
        db.execute("UPDATE samples SET label = ?, split = ? WHERE id = ?", [label, split, sample_id])

    def _write_excluded(self, db: sqlite_utils.Database, sample_id: int, excluded: bool) -> None:
        db.execute("UPDATE samples SET excluded = ? WHERE id = ?", [int(excluded), sample_id])

    def _insert_row(self, db: sqlite_utils.Database, row: dict[str, Any]) -> int:
        # Column names come from a journal entry or a label event: only the sample's own.
        row = {k: v for k, v in row.items() if k in Sample.__dataclass_fields__}
        cur = db.execute(
            f"INSERT INTO samples ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
        )
        return inserted_id(cur)

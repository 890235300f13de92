"""One writer at a time, and multi-step changes that survive a crash at any step.

* ``WriterLock``: an OS file lock (``flock`` on ``db/writer.lock``) held around every
  write; reentrant within a process. A second writer waits up to ``FINGERTUI_LOCK_WAIT_S``
  seconds (default 10), then says in one line that another fingertui is writing. Readers
  never take it (SQLite's WAL lets them read while someone writes).
* ``Journal`` (the ``journal`` table, the only module that writes SQL for it): a change
  that moves files and rows (add an image, delete, undo a delete, take back a capture)
  first writes its intent; the last step removes the entry in the same transaction as the
  row change. An entry found while holding the lock was left by a crash (its writer held
  the lock for the entry's whole life), so it is completed or rolled back then.
* ``crash_point``: with ``FINGERTUI_DEV_CRASH_AT=N`` the N-th step of this process ends it
  at once (``os._exit``), as a kill would; the fault-injection tests walk N = 1, 2, ….
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fingertui.errors import UserError
from fingertui.store.util import TMP_PREFIX, now_iso, sha256_file

if TYPE_CHECKING:
    from fingertui.store import Store

ENV_LOCK_WAIT = "FINGERTUI_LOCK_WAIT_S"
ENV_CRASH_AT = "FINGERTUI_DEV_CRASH_AT"
CRASH_EXIT = 86
BUSY = "another fingertui is writing to this workspace; try again when it has finished"

_steps = 0


def crash_point(name: str) -> None:
    """A step a kill could interrupt; ends the process here when the dev counter says so."""
    global _steps
    at = os.environ.get(ENV_CRASH_AT)
    if not at:
        return
    _steps += 1
    if _steps == int(at):
        if os.environ.get("FINGERTUI_DEV_CRASH_LOG"):
            with open(os.environ["FINGERTUI_DEV_CRASH_LOG"], "a") as f:
                f.write(f"{os.getpid()} {name}\n")
        os._exit(CRASH_EXIT)


def reset_steps() -> None:
    global _steps
    _steps = 0


class WriterLock:
    """Exclusive per-workspace write lock: a thread lock within the process, ``flock``
    across processes. Reentrant; ``on_acquire`` runs each time it is newly taken."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._thread = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self.on_acquire: list = []

    def _open(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise UserError(
                    f"cannot write to this workspace ({self.path.parent}: {e.strerror or e}); "
                    "make it writable (chmod -R u+w) or copy it somewhere writable"
                ) from e
        return self._fd

    def _flock(self, wait: float | None) -> None:
        fd = self._open()
        if wait is None:
            wait = float(os.environ.get(ENV_LOCK_WAIT, "10"))
        deadline = time.monotonic() + wait
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise UserError(BUSY) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    @contextmanager
    def hold(self, wait: float | None = None) -> Iterator[None]:
        if self.readonly:
            raise UserError(
                f"this workspace is read-only ({self.path.parent.parent}); make it writable "
                "(chmod -R u+w) or copy it somewhere writable to change it"
            )
        with self._thread:
            first = self._depth == 0
            if first:
                self._flock(wait)
            self._depth += 1
            try:
                if first:
                    for fn in self.on_acquire:
                        fn()
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    @contextmanager
    def quiet(self, timeout: float) -> Iterator[bool]:
        """While inside, no other thread of this process writes: waits at most ``timeout`` s
        for a write under way to end; yields whether it did."""
        got = self._thread.acquire(timeout=timeout)
        try:
            yield got
        finally:
            if got:
                self._thread.release()

    @property
    def held(self) -> bool:
        return self._depth > 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Journal:
    """Intent records of multi-step changes, and what completes or undoes each one."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def begin(self, op: str, payload: dict[str, Any]) -> int:
        with self.store.transaction() as db:
            cur = db.execute(
                "INSERT INTO journal (op, payload, created) VALUES (?, ?, ?)", [op, json.dumps(payload), now_iso()]
            )
        crash_point(f"{op}:journalled")
        return cur.lastrowid

    def finish(self, db: Any, entry_id: int) -> None:
        """Inside the transaction that makes the change final."""
        db.execute("DELETE FROM journal WHERE id = ?", [entry_id])

    def pending(self) -> list[dict[str, Any]]:
        with self.store.lock:
            rows = list(self.store.db.query("SELECT * FROM journal ORDER BY id"))
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    def has_pending(self) -> bool:
        with self.store.lock:
            return self.store.db.execute("SELECT 1 FROM journal LIMIT 1").fetchone() is not None

    @contextmanager
    def step(self, op: str, payload: dict[str, Any]) -> Iterator[int]:
        """Journal a change for its duration; on an exception it is put right at once."""
        with self.store.writer.hold():
            entry = self.begin(op, payload)
            try:
                yield entry
            except BaseException:
                for row in self.pending():
                    if row["id"] == entry:
                        self._resolve(row, forward=False)
                raise

    def recover(self) -> list[str]:
        """Complete or roll back what crashed writers left; called holding the lock."""
        done = []
        for row in self.pending():
            done.append(self._resolve(row))
        return done

    def _resolve(self, row: dict[str, Any], forward: bool = True) -> str:
        """``forward``: after a crash, finish what can be finished; after an exception in
        this process (the caller was told it failed), undo instead."""
        fn = getattr(self, f"_recover_{row['op']}")
        what = fn(row["payload"], forward)
        with self.store.transaction() as db:
            self.finish(db, row["id"])
        return f"{row['op']}: {what}"

    # --- per operation: look at the files and rows, finish or undo ----------------------

    def _recover_add(self, p: dict[str, Any], forward: bool) -> str:
        """Roll forward when the file is complete (its row follows), else back."""
        store = self.store
        row = p["row"]
        final = store.ws.abs(row["path"])
        sha = row["sha256"]
        temps = sorted(final.parent.glob(f"{TMP_PREFIX}*-{final.name}")) if final.parent.exists() else []
        if not final.exists():
            for t in temps:
                if sha256_file(t) == sha:
                    os.replace(t, final)
                    break
        for t in temps:
            t.unlink(missing_ok=True)  # partial or duplicate copies of this one image
        if store.by_sha(sha) is not None:
            return f"{row['path']} was already indexed"
        if forward and final.exists() and sha256_file(final) == sha:
            with store.transaction() as db:
                sid = store._insert_row(db, row)
                ev = p["event"]
                store.history.record(db, sid, None, row["label"], ev["actor"], ev["reason"], kind="add")
            return f"{row['path']} indexed (completed)"
        final.unlink(missing_ok=True)
        return f"{row['path']} not added (rolled back)"

    def _recover_delete(self, p: dict[str, Any], forward: bool) -> str:
        """The row is still there (its removal commits with the journal's end): put the
        file back from the trash."""
        store = self.store
        src, trash = store.ws.abs(p["path"]), store.ws.abs(p["trash"])
        if store.by_sha(p["sha256"]) is None:  # pragma: no cover - finish() commits with the delete
            return f"{p['path']} was deleted"
        if not src.exists() and trash.exists():
            src.parent.mkdir(parents=True, exist_ok=True)
            os.replace(trash, src)
        return f"delete of {p['path']} rolled back"

    def _recover_undo_delete(self, p: dict[str, Any], forward: bool) -> str:
        """The row was not put back: return the file to the trash, the delete stands."""
        store = self.store
        dst, trash = store.ws.abs(p["path"]), store.ws.abs(p["trash"])
        if store.by_sha(p["sha256"]) is not None:  # pragma: no cover
            return f"{p['path']} restored"
        if dst.exists():
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.replace(dst, trash)
        return f"undo of the delete of {p['path']} rolled back"

    def _recover_remove(self, p: dict[str, Any], forward: bool) -> str:
        """Taking back captures: once their rows are gone (one transaction), their files
        belong in the trash; while the rows are there, the files stay."""
        store = self.store
        done = []
        for item in p.get("items", [p]):  # an entry of one capture has no list
            src, trash = store.ws.abs(item["path"]), store.ws.abs(item["trash"])
            if store.by_sha(item["sha256"]) is not None:
                done.append(f"{item['path']} kept (rolled back)")
                continue
            if src.exists():
                trash.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, trash)
            done.append(f"{item['path']} moved to the trash (completed)")
        return "; ".join(done)

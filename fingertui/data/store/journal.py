"""One writer at a time, and multi-step changes that survive a crash at any step.

* ``WriterLock``: an OS file lock (``flock`` on ``db/writer.lock``) held around every
  write; reentrant within a process. A second writer waits up to ``FINGERTUI_LOCK_WAIT_S``
  seconds (default 10), then says in one line that another fingertui is writing. Readers
  never take it (SQLite's WAL lets them read while someone writes).
* ``Journal`` (the ``journal`` table, the only module that writes SQL for it): a change
  that moves files and rows (add an image, delete, undo a delete, take back a capture)
  first writes its intent; the last step removes the entry in the same transaction as the
  row change. An entry found while holding the lock was left by a crash (its writer held
  the lock for the entry's whole life), so it is completed or rolled back then. An entry
  this fingertui would not have written (an unknown operation, a path outside ``data/``
  or not the content-addressed place of its image) is refused: never acted on, listed by
  ``doctor``.
* Each step is a ``crash_point`` (crashpoints.py), where the fault-injection tests end the
  process as a kill would.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fingertui.data.store.core import StoreCore
from fingertui.data.store.crashpoints import crash_point
from fingertui.data.store.util import TMP_PREFIX, inserted_id, now_iso, sha256_file
from fingertui.errors import UserError

if TYPE_CHECKING:
    from fingertui.data.workspace import JsonValue, Workspace

ENV_LOCK_WAIT = "FINGERTUI_LOCK_WAIT_S"
BUSY = "another fingertui is writing to this workspace; try again when it has finished"


def lock_wait() -> float:
    """Seconds a writer waits for another one: ``$FINGERTUI_LOCK_WAIT_S``, else 10."""
    raw = os.environ.get(ENV_LOCK_WAIT, "").strip()
    if not raw:
        return 10.0
    try:
        wait = float(raw)
    except ValueError:
        wait = float("nan")
    if not 0 <= wait < 1e9:  # NaN too
        raise UserError(f"{ENV_LOCK_WAIT}={raw!r} is not a number of seconds; unset it or give one such as 10")
    return wait


class WriterLock:
    """Exclusive per-workspace write lock: a thread lock within the process, ``flock``
    across processes. Reentrant; ``on_acquire`` runs each time it is newly taken."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._thread = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self.on_acquire: list[Callable[[], None]] = []

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
            wait = lock_wait()
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
                    fcntl.flock(self._open(), fcntl.LOCK_UN)  # the descriptor held since the first hold

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

    def __init__(self, store: StoreCore) -> None:
        self.store = store

    def begin(self, op: str, payload: dict[str, Any]) -> int:
        with self.store.transaction() as db:
            cur = db.execute(
                "INSERT INTO journal (op, payload, created) VALUES (?, ?, ?)", [op, json.dumps(payload), now_iso()]
            )
        crash_point(f"{op}:journalled")
        return inserted_id(cur)

    def finish(self, db: Any, entry_id: int) -> None:
        """Inside the transaction that makes the change final."""
        db.execute("DELETE FROM journal WHERE id = ?", [entry_id])

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, its payload parsed (None when it is not JSON)."""
        with self.store.lock:
            rows = list(self.store.db.query("SELECT * FROM journal ORDER BY id"))
        for r in rows:
            try:
                r["payload"] = json.loads(r["payload"])
            except (TypeError, ValueError):
                r["payload"] = None
        return rows

    def pending(self) -> list[dict[str, Any]]:
        """Entries to complete or roll back (refused ones are left alone)."""
        return [r for r in self.entries() if refusal(self.store.ws, r) is None]

    def refused(self) -> list[str]:
        """One line per entry that is never acted on, saying why."""
        out = []
        for r in self.entries():
            why = refusal(self.store.ws, r)
            if why:
                out.append(f"journal entry {r['id']} ({str(r['op'])[:40]!r}): {why}; refused, never acted on")
        return out

    def has_pending(self) -> bool:
        with self.store.lock:
            if self.store.db.execute("SELECT 1 FROM journal LIMIT 1").fetchone() is None:
                return False  # the usual case, without parsing anything
        return bool(self.pending())

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
        fn = getattr(self, f"_recover_{row['op']}")  # an op refusal() knows
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


# --- what a genuine entry looks like -------------------------------------------------------

OPS = ("add", "delete", "undo_delete", "remove")
ROW_KEYS = frozenset(
    "id sha256 path width height source origin session created label split group_key phash excluded "
    "capture_run capture_pred capture_conf".split()
)


def image_path_refusal(ws: Workspace, path: JsonValue, sha: JsonValue) -> str | None:
    """Why ``path`` is not where this fingertui stores the image ``sha``, else None."""
    why = ws.unsafe(path)
    if why or not isinstance(path, str):
        return f"path {str(path)[:200]!r} is not inside data/ ({why})"
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        return "no image hash"
    name = path.rsplit("/", 1)[-1]
    if path != ws.rel(ws.image_path(sha, name.rpartition(".")[2])) or "." not in name:
        return f"path {path!r} is not where image {sha[:12]}… is stored"
    return None


def trash_refusal(ws: Workspace, trash: JsonValue, path: str) -> str | None:
    """Why ``trash`` is not where this fingertui puts the deleted image of ``path``, else None."""
    if trash != ws.rel(ws.trashed_image(path)) or ws.unsafe(trash):
        return f"trash path {str(trash)[:200]!r} is not in data/trash"
    return None


def refusal(ws: Workspace, entry: dict[str, Any]) -> str | None:
    """Why a journal entry is not one this fingertui writes (so it is never acted on)."""
    op, p = entry.get("op"), entry.get("payload")
    if op not in OPS:
        return f"unknown operation {str(op)[:40]!r}"
    if not isinstance(p, dict):
        return "its payload is not a JSON object"
    if op == "add":
        row, ev = p.get("row"), p.get("event")
        if not isinstance(row, dict) or not isinstance(ev, dict) or set(row) - ROW_KEYS:
            return "not a row this fingertui writes"
        if ev.get("actor") not in ("user", "import") or row.get("label") not in (None, 0, 1, 2, 3, 4, 5):
            return "not an event this fingertui writes"
        return image_path_refusal(ws, row.get("path"), row.get("sha256"))
    items = p.get("items", [p]) if op == "remove" else [p]
    if not isinstance(items, list):
        return "no list of items"
    for item in items:
        if not isinstance(item, dict):
            return "an item is not an object"
        why = image_path_refusal(ws, item.get("path"), item.get("sha256")) or trash_refusal(
            ws, item.get("trash"), str(item.get("path"))
        )
        if why:
            return why
    return None

"""Small helpers shared by the store's modules: time stamps, hashes, atomic file writes."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fingertui.data.store.crashpoints import crash_point
from fingertui.errors import UserError

TMP_PREFIX = ".tmp-"
MAX_ID = 2**63 - 1  # SQLite's largest integer: a row id is never larger


def parse_id(text: str | int, what: str, listed_by: str) -> int:
    """A row id typed by the user (``label ID``, ``--run ID``), or a UserError saying
    how to find one; numbers SQLite cannot hold are no id."""
    try:
        value = int(str(text).strip()) if str(text).strip().isascii() else None
    except ValueError:
        value = None
    if value is None:
        raise UserError(f"{what} id must be a number, not {str(text)[:40]!r}; `{listed_by}` lists them")
    if not 0 <= value <= MAX_ID:
        raise UserError(f"no {what} {str(text)[:40]}; `{listed_by}` lists them")
    return value


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The row id an INSERT just gave (sqlite3 says None only where no row was inserted)."""
    if cur.lastrowid is None:
        raise RuntimeError("no row was inserted")
    return cur.lastrowid


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hash a file in chunks (memory stays flat whatever its size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}"
    try:
        with open(tmp, "wb") as f:
            f.write(data[: len(data) // 2])
            crash_point("write:half")
            f.write(data[len(data) // 2 :])
            f.flush()
            os.fsync(f.fileno())
        crash_point("write:before-rename")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"could not write {path}: {os_cause(e)}") from e


def os_cause(e: OSError) -> str:
    """What a failed write means for the user, and what to do."""
    import errno

    if e.errno == errno.EFBIG:
        return "file too large for the file size limit (ulimit -f); raise the limit and try again"
    if e.errno == errno.ENOSPC:
        return "disk full; free some space and try again"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{e.strerror}; check the folder's permissions"
    return f"{e.strerror or e}; free some disk space or check permissions"


def walk_files(root: Path, *, unreadable: Callable[[Path, OSError], None] | None = None) -> list[Path]:
    """Every file under ``root``, sorted. Iterative (a tree thousands of folders deep is no
    RecursionError); links to folders are not followed (a link cannot lead the walk out of
    the tree); a folder that cannot be listed goes to ``unreadable`` (else is skipped)."""
    out: list[Path] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            if unreadable is not None:
                unreadable(folder, e)
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file():
                    out.append(Path(entry.path))
            except OSError:
                continue
    return sorted(out)


def sqlite_advice(e: BaseException) -> tuple[bool, str]:
    """(whether the index itself is damaged, one line naming the cause and what to do) for
    an SQLite error. Only real damage is sent to ``doctor --restore``: following that advice
    for a full disk or a file size limit would set a good index aside."""
    import resource

    name = str(getattr(e, "sqlite_errorname", "") or "")
    text = str(e)
    low = text.lower()
    if name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB" or "malformed" in low or "not a database" in low:
        return True, (
            f"the index is damaged ({text}); run `fingertui doctor --restore` to put back the newest backup, "
            "or `fingertui doctor --reindex` to index the images again"
        )
    if name.startswith("SQLITE_FULL") or "disk is full" in low:
        return False, "disk full; free some space and try again (nothing stored was lost)"
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in low:
        verb = "read" if "READ" in name else "write"
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        cause = (
            f"the file size limit (ulimit -f, {limit} bytes) is too small for it"
            if limit != resource.RLIM_INFINITY
            else "the disk reported an error (full, removed or failing)"
        )
        return False, (
            f"could not {verb} the index ({name or text}): {cause}; fix that and try again "
            "(the index is not damaged: do not restore a backup)"
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in low or "busy" in low:
        return False, "another fingertui is writing to this workspace; try again when it has finished"
    if name.startswith("SQLITE_READONLY") or "readonly" in low or "read-only" in low:
        return False, "this workspace is read-only; make it writable (chmod -R u+w) or copy it somewhere writable"
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")) or "unable to open" in low:
        return False, f"cannot open the index ({text}); check that db/ exists and that you may read and write it"
    if name.startswith("SQLITE_TOOBIG") or "too big" in low or "too large" in low:
        return False, f"a value is too big for the index ({text}); nothing was stored"
    return False, f"the index reported an error ({text}); run `fingertui doctor` to check the workspace"

"""Online backups of the index with SQLite's own backup API, and restoring the newest.

Backups live in ``data/backups/`` (not ``db/``, so losing that folder spares them):
before each migration, after each training run and after each import; the newest
``KEEP`` are kept. ``fingertui doctor --restore`` puts the newest back.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path

from fingertui.errors import UserError

KEEP = 5
_NAME = re.compile(r"^index-\d{8}T\d{6}-\d{6}-[a-z]+\.db$")


def backups(folder: Path) -> list[Path]:
    """Backups, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))


def newest(folder: Path) -> Path | None:
    found = backups(folder)
    return found[-1] if found else None


def backup(conn: sqlite3.Connection, folder: Path, reason: str, keep: int = KEEP) -> Path:
    """Copy the live database (a consistent snapshot, even while others read) into a new
    backup file; older ones beyond ``keep`` are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"-{int(now * 1e6) % 1_000_000:06d}"
    dest = folder / f"index-{stamp}-{reason}.db"
    tmp = folder / f".tmp-{dest.name}"
    target = sqlite3.connect(tmp)
    try:
        conn.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        target.close()
    os.replace(tmp, dest)
    for old in backups(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return dest


def restore(src: Path, db_path: Path) -> None:
    """Write the backup ``src`` over ``db_path`` (the caller has moved the old one aside)."""
    try:
        source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        raise UserError(f"backup {src} cannot be read ({e}); try an older one in {src.parent}") from e
    db_path.parent.mkdir(parents=True, exist_ok=True)
    target = sqlite3.connect(db_path)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()

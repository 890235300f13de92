"""Online backups of the index with SQLite's own backup API, and restoring the newest.

Backups live in ``data/backups/`` (not ``db/``, so losing that folder spares them):
before each migration, after each training run and after each import; the newest
``KEEP`` are kept, and besides them the older backup with the most labels while no kept
one has as many (an unlabelled rebuild followed by imports never rotates the labels
away). ``fingertui doctor --restore`` puts the newest usable one back.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path

from fingertui.errors import UserError

KEEP = 5
TMP = ".tmp-"
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
    tmp = folder / f"{TMP}{dest.name}"
    try:
        target = sqlite3.connect(tmp)
        try:
            conn.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            target.close()
        os.replace(tmp, dest)
    except BaseException:
        for leftover in (tmp, Path(f"{tmp}-journal")):
            leftover.unlink(missing_ok=True)
        raise
    found = backups(folder)
    old = found[:-keep]
    if old:
        most_kept = max(labels(p) for p in found[-keep:])
        richest = max(reversed(old), key=labels)  # the newest of the richest
        if labels(richest) > most_kept:
            old.remove(richest)
    for p in old:
        p.unlink(missing_ok=True)
    return dest


def labels(path: Path) -> int:
    """How many labelled samples a backup holds (-1: it cannot be read)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT count(*) FROM samples WHERE label IS NOT NULL").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return -1


def usable(path: Path) -> bool:
    """Whether a backup opens, passes SQLite's quick check and holds the samples table."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            ok = conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            return ok and conn.execute("SELECT count(*) FROM samples").fetchone() is not None
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def newest_usable(folder: Path) -> Path | None:
    """The newest backup that can be restored (damaged ones are passed over)."""
    return next((p for p in reversed(backups(folder)) if usable(p)), None)


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of backups that did not finish (a crash mid-backup)."""
    return sorted(folder.glob(f"{TMP}index-*")) if folder.is_dir() else []


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

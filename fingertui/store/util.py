"""Small helpers shared by the store's modules: time stamps, hashes, atomic file writes."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fingertui.errors import UserError

TMP_PREFIX = ".tmp-"


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
    from fingertui.store.journal import crash_point

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
        raise UserError(f"could not write {path}: {e.strerror or e}; free some disk space or check permissions") from e


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
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(Path(e.path))
                elif e.is_file():
                    out.append(Path(e.path))
            except OSError:
                continue
    return sorted(out)

"""Sessions: the sittings samples were taken in (one room, one light, one day).

A sample's session is what "a new day" means to validation (nextday.py): a capture sitting
in the app (a new one after ``GAP_S`` without a capture, or a new app start); for imports
the name the user gives (``import --session NAME``), else the cameras' capture times
(EXIF: a gap of more than ``GAP_S`` starts a new session), else the import batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

# A pause this long between two shots starts a new sitting.
GAP_S = 30 * 60
NAME_MAX = 80


def clean_name(name: str) -> str:
    """A session name a user gave, checked: printable, one line, not too long."""
    from fingertui.errors import UserError

    name = name.strip()
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise UserError(f"--session {name!r}: give a printable name of 1 to {NAME_MAX} characters")
    return name


def batch_name(now: float | None = None) -> str:
    """The session of an import batch without capture times: the time of the import."""
    return "import " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))


def by_time(taken: Sequence[float | None], fallback: str, gap: float = GAP_S) -> list[str]:
    """A session per image from capture times (seconds since the epoch): consecutive shots
    less than ``gap`` apart share one, named by its first shot; images without a time get
    ``fallback``."""
    out = [fallback] * len(taken)
    prev: float | None = None
    name = fallback
    for t, k in sorted((t, k) for k, t in enumerate(taken) if t is not None):
        if prev is None or t - prev > gap:
            name = "taken " + datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")
        prev = t
        out[k] = name
    return out


def backfill(rows: Sequence[tuple[int, str, str | None]], gap: float = GAP_S) -> dict[int, str]:
    """Sessions for samples stored before sessions were kept: ``rows`` are (id, source,
    created ISO time); samples of one source less than ``gap`` apart share one."""
    out: dict[int, str] = {}
    by_source: dict[str, list[tuple[float, int]]] = {}
    for sid, source, created in rows:
        try:
            t = datetime.fromisoformat(created or "").replace(tzinfo=UTC).timestamp()
        except ValueError:
            t = 0.0
        by_source.setdefault(source or "import", []).append((t, sid))
    for source, items in by_source.items():
        prev: float | None = None
        name = ""
        for t, sid in sorted(items):
            if prev is None or t - prev > gap:
                name = f"{source} " + datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")
            prev = t
            out[sid] = name
    return out

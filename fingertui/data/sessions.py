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


def _by_gaps(timed: list[tuple[float, int]], prefix: str, gap: float) -> dict[int, str]:
    """Keys of (time, key) pairs, grouped where consecutive times are at most ``gap``
    apart; each group named ``prefix`` + the local time of its first."""
    out: dict[int, str] = {}
    prev: float | None = None
    name = ""
    for t, k in sorted(timed):
        if prev is None or t - prev > gap:
            name = prefix + datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")
        prev = t
        out[k] = name
    return out


def by_time(taken: Sequence[float | None], fallback: str, gap: float = GAP_S) -> list[str]:
    """A session per image from capture times (seconds since the epoch): consecutive shots
    less than ``gap`` apart share one, named by its first shot; images without a time get
    ``fallback``."""
    named = _by_gaps([(t, k) for k, t in enumerate(taken) if t is not None], "taken ", gap)
    return [named.get(k, fallback) for k in range(len(taken))]


def backfill(rows: Sequence[tuple[int, str, str | None]], gap: float = GAP_S) -> dict[int, str]:
    """Sessions for samples that have none (stored by a schema without sessions): ``rows``
    are (id, source, created ISO time); samples of one source less than ``gap`` apart share
    one."""
    by_source: dict[str, list[tuple[float, int]]] = {}
    for sid, source, created in rows:
        try:
            t = datetime.fromisoformat(created or "").replace(tzinfo=UTC).timestamp()
        except ValueError:
            t = 0.0
        by_source.setdefault(source or "import", []).append((t, sid))
    out: dict[int, str] = {}
    for source, timed in by_source.items():
        out.update(_by_gaps(timed, f"{source} ", gap))
    return out

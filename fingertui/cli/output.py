"""What every command prints through: rich consoles, JSON on stdout, warnings on stderr,
and the one line (with its exit code) that an error ends in."""

from __future__ import annotations

import errno
import json
import sys
from typing import TYPE_CHECKING, Any

from fingertui.errors import Cancelled, UserError

if TYPE_CHECKING:  # rich loads when a command prints: --help stays instant
    from rich.console import Console


def finite(obj: Any) -> Any:
    """NaN and infinities as null: JSON has no NaN."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def emit_json(obj: Any) -> None:
    """``obj`` as indented JSON on stdout (the shapes are in docs/json.md)."""
    json.dump(finite(obj), sys.stdout, indent=2, sort_keys=False, allow_nan=False)
    sys.stdout.write("\n")


def json_line(obj: Any) -> str:
    """``obj`` as one line of JSON (a stream of results, one per line)."""
    return json.dumps(finite(obj), allow_nan=False)


def console() -> Console:
    from rich.console import Console

    return Console()


def console_err() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def warn(msg: str) -> None:
    """A warning on stderr, beside the command's own output."""
    print(f"fingertui: {msg}", file=sys.stderr)


def error_line(e: BaseException) -> tuple[str, int] | None:
    """The one line and exit code a command's failure ends in; None for a bug, which
    keeps its traceback."""
    if isinstance(e, UserError):
        return f"fingertui: error: {e}", 2
    if isinstance(e, OSError):
        if e.errno == errno.ENOSPC:
            return "fingertui: error: disk full; free some space and try again (nothing stored was lost)", 2
        if e.errno == errno.EFBIG:
            return f"fingertui: error: {e.filename or 'a file'}: too large for the file size limit (ulimit -f)", 2
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"fingertui: error: permission denied ({e.filename or e}); check the folder's permissions", 2
        return f"fingertui: error: {e.strerror or e} ({e.filename or 'no file'})", 2
    if isinstance(e, Cancelled):
        return "fingertui: cancelled; nothing was recorded", 130
    if isinstance(e, KeyboardInterrupt):
        return "fingertui: interrupted", 130
    import sqlite3

    if isinstance(e, sqlite3.Error):
        from fingertui.data.store.util import sqlite_advice

        return f"fingertui: error: {sqlite_advice(e)[1]}", 2
    return None


def quiet_stdout() -> None:
    """Point stdout at /dev/null: the reader of a pipe went away (`… | head -1`), and the
    interpreter's final flush must not raise again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())

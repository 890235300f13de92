"""The one progress callback every long job reports through: ``progress(phase, done, total)``.

Jobs (importing, finding hands, embedding, training) call it and know nothing of who
listens; the CLI's renderer and the app's training bar turn the calls into what a user sees.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int], None]
"""Called as ``progress(phase, done, total)``: ``phase`` a short words ("embedding"), ``done`` of ``total`` steps."""


def silent(phase: str, done: int, total: int) -> None:
    """A progress callback that shows nothing."""

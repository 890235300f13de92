"""Waiting in tests: for an app's state (``wait_for``, between its frames) or for anything
else, such as a child process's output or a file (``wait_until``). Both give up after a
deadline in seconds, not a count of tries, and fail saying what they waited for; a
condition met at once costs nothing, so deadlines are generous (a busy machine is slow)."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable

from textual.pilot import Pilot

STEP_S = 0.05  # how often a condition is looked at


def _what(cond: Callable[[], object], what: str | None) -> str:
    if what:
        return what
    if getattr(cond, "__name__", "") != "<lambda>":
        return getattr(cond, "__qualname__", repr(cond))
    try:
        return " ".join(inspect.getsource(cond).split())  # the line that wrote the lambda
    except (OSError, TypeError):
        return repr(cond)


async def wait_for(pilot: Pilot, cond: Callable[[], object], seconds: float = 60.0, what: str | None = None) -> None:
    """Let the app run until ``cond()`` is true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {seconds:g} s: {_what(cond, what)}")
        await pilot.pause(STEP_S)


def wait_until(
    cond: Callable[[], object], seconds: float = 60.0, every: float = STEP_S, what: str | None = None
) -> None:
    """Sleep until ``cond()`` is true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {seconds:g} s: {_what(cond, what)}")
        time.sleep(every)

"""Test helpers that know about the test run rather than about fingertui.

Waiting: for an app's state (``wait_for``, between its frames) or for anything else, such
as a child process's output or a file (``wait_until``). Both give up after a deadline in
seconds, not a count of tries, and fail saying what they waited for; a condition met at
once costs nothing, so deadlines are generous (a busy machine is slow).

Building once: ``built_once`` makes an expensive folder (a trained workspace) once per test
run, however many pytest-xdist workers ask for it.
"""

from __future__ import annotations

import fcntl
import inspect
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

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


# A folder of the test run's own, shared by pytest-xdist's workers: tests/conftest.py makes it
# before the workers start (they inherit the variable) and removes it when the run ends.
RUN_DIR_ENV = "FINGERTUI_TEST_RUN"


def built_once(name: str, build: Callable[[Path], None]) -> Path:
    """A copy, for this test process alone, of the folder ``build(folder)`` fills: built once
    per test run (the first process to ask builds it while the others wait on a lock; a
    build that failed is tried again by the next), copied so that no two processes write
    to one workspace."""
    run = Path(os.environ[RUN_DIR_ENV])
    shared, own = run / name, run / f"{name}-{os.getpid()}"
    if own.is_dir():
        return own
    with open(run / f"{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = shared / ".built"
        if not done.exists():
            shutil.rmtree(shared, ignore_errors=True)
            shared.mkdir()
            build(shared)
            done.touch()
    shutil.copytree(shared, own, ignore=shutil.ignore_patterns(".built"))
    return own

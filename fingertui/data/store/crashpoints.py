"""Crash points: the steps of a change a kill could interrupt, for fault-injection tests.

With ``FINGERTUI_DEV_CRASH_AT=N`` the N-th crash point this process reaches ends it at
once (``os._exit``), as a kill would; tests/test_faults.py walks N = 1, 2, … over every
operation and checks that the next writer completes or rolls back what was left. The
lowest of the store's modules: file writes (util.py) and the journal both mark their steps.
"""

from __future__ import annotations

import os

ENV_CRASH_AT = "FINGERTUI_DEV_CRASH_AT"
ENV_CRASH_LOG = "FINGERTUI_DEV_CRASH_LOG"  # a file each crash appends "PID STEP" to
CRASH_EXIT = 86

_steps = 0


def crash_point(name: str) -> None:
    """A step a kill could interrupt; ends the process here when the dev counter says so."""
    global _steps
    at = os.environ.get(ENV_CRASH_AT)
    if not at:
        return
    _steps += 1
    if _steps == int(at):
        log = os.environ.get(ENV_CRASH_LOG)
        if log:
            with open(log, "a") as f:
                f.write(f"{os.getpid()} {name}\n")
        os._exit(CRASH_EXIT)


def reset_steps() -> None:
    """Count the steps from the start again (a forked test child)."""
    global _steps
    _steps = 0

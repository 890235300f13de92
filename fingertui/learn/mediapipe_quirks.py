"""What it takes to use MediaPipe inside a terminal app: importing it without pyplot, and
keeping its C++ logging off the screen. hands.py (the MediaPipe adapter) is the only user.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import time
import types
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def pyplot_on_demand() -> Iterator[None]:
    """While MediaPipe is imported, ``matplotlib.pyplot`` is a stand-in module that imports
    the real one on first use. MediaPipe's package imports its drawing utilities, which
    import pyplot only to plot landmarks in 3-D (fingertui draws its own): a large part of
    MediaPipe's import, in every process that finds hands. Afterwards the stand-in
    leaves ``sys.modules``, so any other import of pyplot gets the real module."""
    if "matplotlib.pyplot" in sys.modules:
        yield
        return
    stand_in = _PyplotStandIn("matplotlib.pyplot", "imports matplotlib.pyplot on first use")
    sys.modules["matplotlib.pyplot"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("matplotlib.pyplot") is stand_in:
            del sys.modules["matplotlib.pyplot"]


class _PyplotStandIn(types.ModuleType):
    """A module whose attributes are the real ``matplotlib.pyplot``'s, imported when the
    first one is asked for (a module's ``__getattr__``, PEP 562)."""

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get("matplotlib.pyplot") is self:
            del sys.modules["matplotlib.pyplot"]
        return getattr(importlib.import_module("matplotlib.pyplot"), name)


def import_hands() -> types.ModuleType:
    """``mediapipe.python.solutions.hands``, imported without pyplot."""
    with pyplot_on_demand():
        return importlib.import_module("mediapipe.python.solutions.hands")


class Mute:
    """One block of ``quiet_stderr``."""

    linger = 0.0  # seconds to stay muted after the block (may be set inside it)


_MUTE_LOCK = threading.Lock()
# depth: blocks muting stderr now; saved: the real stderr while muted; until: when the
# latest model opened by a muted call is done logging (monotonic seconds).
_mute: dict[str, Any] = {"depth": 0, "saved": -1, "until": 0.0}


@contextlib.contextmanager
def quiet_stderr(linger: float = 0.0) -> Iterator[Mute]:
    """Silence MediaPipe's C++ chatter (TFLite delegate, absl warnings), which writes
    straight to file descriptor 2 and would scribble over a terminal UI. Process-wide while
    it lasts (one detector call, about 40 ms a photo in bench/results/hand_search.json; a
    batch search, ``hands.quiet()``): another thread's stderr in that window is lost (the
    app draws on a descriptor of its own, tui/terminal.py).

    Counted, not nested naively: the live view's tracker and a training run detect hands on
    two threads at once, and a second mute that saved the first one's /dev/null would put
    that back as stderr for good.

    ``linger``: a model's first use logs from the graph's own threads, sometimes just after
    the call returned. Stderr stays muted that long after the block — but only the last
    block out waits for it: inside a batch search (``hands.quiet()``) the detectors go on working
    and the wait, if any is left, comes once at the end."""
    with _MUTE_LOCK:
        if _mute["depth"] == 0:
            try:
                saved = os.dup(2)
            except OSError:  # no real stderr (embedded interpreter): nothing to silence
                saved = -1
            if saved >= 0:
                with open(os.devnull, "wb") as null:
                    os.dup2(null.fileno(), 2)
            _mute["saved"] = saved
        _mute["depth"] += 1
    mute = Mute()
    mute.linger = linger
    try:
        yield mute
    finally:
        if mute.linger:
            with _MUTE_LOCK:
                _mute["until"] = max(_mute["until"], time.monotonic() + mute.linger)
        while True:
            with _MUTE_LOCK:
                wait = _mute["until"] - time.monotonic()
                if _mute["depth"] > 1 or wait <= 0:  # another block waits, or nothing to wait for
                    _mute["depth"] -= 1
                    if _mute["depth"] == 0 and _mute["saved"] >= 0:
                        os.dup2(_mute["saved"], 2)
                        os.close(_mute["saved"])
                        _mute["saved"] = -1
                    break
            time.sleep(wait)

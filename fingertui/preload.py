"""Importing heavy libraries on a background thread while other work runs."""

from __future__ import annotations

import importlib
import sys
import threading


def preload(*modules: str) -> threading.Thread | None:
    """Import ``modules`` on a background thread; a later import of one waits for it there.

    Worth it where the foreground work is C++ that leaves the GIL free (MediaPipe's hand
    search, the network): an import is Python on one core, and would otherwise run alone,
    the other core idle."""
    todo = [m for m in modules if m not in sys.modules]
    if not todo:
        return None

    def load() -> None:
        for m in todo:
            try:
                importlib.import_module(m)
            except Exception:  # the import that needs it says what is wrong, on its own thread
                return

    thread = threading.Thread(target=load, name="fingertui-preload", daemon=True)
    thread.start()
    return thread

"""Full garbage collections while nobody types (core: no Textual).

A full (generation 2) collection scans every object alive with every thread stopped. The
app makes many short-lived objects a frame (Textual's segments and strips) and keeps many
in its caches, so Python's own schedule ran one every few seconds, and each was the
longest pause a key could meet, longer still while a training run shares the cores
(bench/tui_latency.py). ``IdleCollector`` runs them when no key has come for a moment
instead, and leaves what start-up made (modules, the model) out of all of them.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

# A full collection waits until no key came for QUIET_S, and runs at most every EVERY_S;
# after AT_LATEST_S it runs whatever the keys do (garbage must not pile up for ever).
QUIET_S = 2.0
EVERY_S = 30.0
AT_LATEST_S = 300.0
# Python's thresholds for the young generations (its defaults); the full collection's own
# is set out of reach: only ``tick`` runs it.
YOUNG = (700, 10)
NEVER = 1 << 30


class IdleCollector:
    """``install()`` takes full collections over; ``input()`` on every key; ``tick()``
    about every second; ``freeze()`` once start-up is done; ``uninstall()`` gives Python
    its own schedule back."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last_input = clock()
        self.last_full = clock()
        self.frozen = False
        self._saved: tuple[int, int, int] | None = None

    def install(self) -> None:
        self._saved = gc.get_threshold()
        gc.set_threshold(*YOUNG, NEVER)

    def uninstall(self) -> None:
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            self._saved = None
        if self.frozen:
            gc.unfreeze()
            self.frozen = False

    def freeze(self) -> None:
        """Leave every object alive now out of later collections (start-up's, which live
        as long as the app); the garbage among them is collected first."""
        gc.collect()
        gc.freeze()
        self.frozen = True
        self.last_full = self.clock()

    def input(self) -> None:
        self.last_input = self.clock()

    def tick(self) -> bool:
        """Run a full collection if one is due and no key came lately; whether it ran."""
        now = self.clock()
        since = now - self.last_full
        if since < EVERY_S or (now - self.last_input < QUIET_S and since < AT_LATEST_S):
            return False
        gc.collect()
        self.last_full = self.clock()
        return True

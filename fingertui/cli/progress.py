"""The CLI's one progress renderer: what `import` and `train` show while they work.

A :class:`ProgressDisplay` is a context manager that is also a :data:`fingertui.progress.Progress`
callback. On a terminal it is one live bar (the phase, k/N, elapsed, and with ``expected``
phase seconds the whole job's time left); piped, a few indented lines — every phase that
took a while, with the time left after it, and one line every ``every_s`` seconds of a long
phase (an error stays the one unindented line); nothing when disabled (``--json``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from fingertui.cli.output import console_err

if TYPE_CHECKING:  # rich loads when a bar is drawn
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID


class ProgressDisplay:
    """Progress of a long command; ``title`` leads the bar ("importing", "training")."""

    def __init__(
        self,
        title: str,
        *,
        enabled: bool,
        show_phase: bool = True,
        first_phase: str | None = None,
        live: bool | None = None,
        piped_lines: bool = True,
        every_s: float = 30.0,
        expected: dict[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        min_phase_s: float = 2.0,
    ) -> None:
        from fingertui.train.eta import Eta

        self.title = title
        self.show_phase = show_phase
        self.first_phase = first_phase
        self.enabled = enabled
        self.live = enabled and (sys.stderr.isatty() if live is None else live)
        self.lines = enabled and not self.live and piped_lines
        self.every_s = every_s
        self.min_phase_s = min_phase_s
        self.expected = expected
        self.eta = Eta(expected or {})
        self.clock = clock
        self.phase: str | None = None
        self.bar: RichProgress | None = None
        self.task: TaskID | None = None
        self.k = self.n = 0
        self._started = self._printed = 0.0

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            label = f"{self.title}: {{task.description:<16}}" if self.show_phase else self.title
            left = [TextColumn("{task.fields[left]}")] if self.expected is not None else []
            self.bar = Progress(
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                *left,
                console=console_err(),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.first_phase or self.title, total=None, left="")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif exc_type is None:
            self._phase_done(self.clock())

    def _phase_done(self, now: float, left: str = "") -> None:
        if self.lines and self.phase is not None and now - self._started >= self.min_phase_s:
            count = f" {self.k}/{self.n}" if self.n > 1 else ""
            after = f" ({left})" if left else ""
            print(f"  {self.phase}{count}: {now - self._started:.0f} s{after}", file=sys.stderr, flush=True)

    def __call__(self, phase: str, k: int, n: int) -> None:
        from fingertui.train.eta import say_left

        if not self.enabled:
            return
        now = self.clock()
        left = say_left(self.eta.left(phase, k, n, now)) if self.expected is not None else ""
        if phase != self.phase:
            if self.bar is None:
                self._phase_done(now, left)
            self.phase, self._started, self._printed = phase, now, now
            if self.bar is not None and self.task is not None:  # the bar starts afresh for each phase
                self.bar.reset(self.task, total=n or None, completed=k, description=phase, left=left)
        elif self.bar is not None and self.task is not None:
            self.bar.update(self.task, total=n or None, completed=k, left=left)
        elif self.lines and now - self._printed >= self.every_s and k < n:  # a finished phase gets its own line
            self._printed = now
            print(f"  {phase} {k}/{n}{', ' + left if left else ''}", file=sys.stderr, flush=True)
        self.k, self.n = k, n

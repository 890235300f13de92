"""How long a training run will take: each phase's seconds are recorded with the run, and
the next run's time left is estimated from them and from the phases reported so far.

Plain Python, no UI: the app's training bar and `fingertui train` both use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Progress = Callable[[str, int, int], None]

# The pipeline's phases in the order they run ("training X" is one per expert).
PHASES = (
    "loading model",
    "finding hands",
    "embedding",
    "training image",
    "training pose",
    "training fingers",
    "calibrating",
    "cross-checking",
    "evaluating",
    "recording",
    "review queue",
)
# Phases whose time grows with the images not yet cached (the others barely change).
PER_IMAGE = ("finding hands", "embedding")
# Without an earlier run to go by: seconds of each phase, and per new image, of a first run
# on 36 sign-digits photos (efficientnet-lite0, hand pose on), bench/train_phases.py →
# bench/results/train_phases.json: 16.7 s in all on 2 idle cores. The same run took 146 s
# while the cores were shared (load average 10–16): the finished phases' pace scales the
# rest (Eta.pace), and once a phase counts, its own pace wins.
FIRST_RUN_S = {
    "loading model": 1.9,
    "training image": 0.2,
    "training pose": 0.1,
    "training fingers": 0.3,
    "calibrating": 1.2,
    "cross-checking": 5.2,
    "evaluating": 0.1,
    "recording": 0.1,
    "review queue": 0.5,  # not in a run's own timings (it runs after they are recorded): a guess
}
FIRST_RUN_PER_IMAGE_S = {"finding hands": 0.055, "embedding": 0.16}


class PhaseTimer:
    """A progress callback that passes reports on and records how long each phase took and
    how many items its per-image phases counted."""

    def __init__(self, inner: Progress | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.inner = inner
        self.clock = clock
        self.seconds: dict[str, float] = {}
        self.items: dict[str, int] = {}
        self._phase: str | None = None
        self._since = 0.0

    def __call__(self, phase: str, k: int, n: int) -> None:
        now = self.clock()
        if phase != self._phase:
            self._close(now)
            self._phase, self._since = phase, now
        if phase in PER_IMAGE:
            self.items[phase] = n
        if self.inner is not None:
            self.inner(phase, k, n)

    def _close(self, now: float) -> None:
        if self._phase is not None:
            self.seconds[self._phase] = round(self.seconds.get(self._phase, 0.0) + now - self._since, 3)
            self._phase = None

    def finish(self) -> dict:
        """{"seconds": {phase: s}, "items": {phase: n}}: what a run records."""
        self._close(self.clock())
        return {"seconds": dict(self.seconds), "items": dict(self.items)}


def expected_seconds(last: dict | None, new_images: int) -> dict[str, float]:
    """Seconds each phase should take for a run with ``new_images`` images not yet cached,
    from the last run's phase timings (``last``: what :meth:`PhaseTimer.finish` recorded),
    else from the first-run measurements."""
    seconds = dict(FIRST_RUN_S)
    per_image = dict(FIRST_RUN_PER_IMAGE_S)
    if last:
        for phase, s in last.get("seconds", {}).items():
            if phase in PER_IMAGE:
                done = last.get("items", {}).get(phase, 0)
                if done:
                    per_image[phase] = s / done
            else:
                seconds[phase] = s
    for phase, rate in per_image.items():
        seconds[phase] = rate * new_images
    return seconds


class Eta:
    """Seconds left in a run: the current phase from its own pace once it has counted
    something (else from the expected time), plus the expected time of the phases after it —
    scaled by how this run's finished phases compared with what was expected (a busy or a
    fast machine shows in the first phases already)."""

    def __init__(self, expected: dict[str, float]) -> None:
        self.expected = expected
        self.phase: str | None = None
        self._since = 0.0
        self._took = self._thought = 0.0  # finished phases: actual and expected seconds

    @property
    def pace(self) -> float:
        """Actual / expected seconds of the finished phases that were expected to take a
        while (1 until one has); clamped, so one odd phase cannot swing it far."""
        return min(max(self._took / self._thought, 0.25), 4.0) if self._thought >= 1.0 else 1.0

    def left(self, phase: str, k: int, n: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        if phase != self.phase:
            if self.phase is not None and self.expected.get(self.phase, 0.0) >= 0.5:
                self._took += now - self._since
                self._thought += self.expected[self.phase]
            self.phase, self._since = phase, now
        in_phase = now - self._since
        if 0 < k < n and n > 1:
            current = in_phase * (n - k) / k
        elif n and k >= n:
            current = 0.0
        else:
            current = max(self.expected.get(phase, 0.0) * self.pace - in_phase, 0.0)
        later = PHASES[PHASES.index(phase) + 1 :] if phase in PHASES else ()
        return current + self.pace * sum(self.expected.get(p, 0.0) for p in later)


def say_left(seconds: float) -> str:
    """'about 40 s left', 'about 2 min left', 'almost done'."""
    if seconds < 3:
        return "almost done"
    if seconds < 90:
        return f"about {5 * round(seconds / 5) or int(seconds)} s left"
    return f"about {round(seconds / 60)} min left"


def estimate_for(store: object) -> dict[str, float]:
    """Expected phase seconds of the next run on ``store``: images labelled since the last
    run are the new ones to find hands in and embed."""
    from fingertui.runs import list_runs

    runs = list_runs(store)  # type: ignore[arg-type]
    labelled = len(store.labelled())  # type: ignore[attr-defined]
    if not runs:
        return expected_seconds(None, labelled)
    last = runs[-1]
    return expected_seconds(last.metrics.get("phases"), max(labelled - last.n_train - last.n_test, 0))

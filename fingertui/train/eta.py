"""How long a training run will take: each phase's seconds are recorded with the run, and
the next run's time left is estimated from them and from the phases reported so far.

Plain Python, no UI: the app's training bar and `fingertui train` both use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from fingertui.progress import Progress

if TYPE_CHECKING:  # for hints only: the store and the run records load when a run starts
    from fingertui.data.store import Sample, Store
    from fingertui.runs.records import RunRecord

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
# Phases whose time grows with every labelled image (the heads fit on all of them).
PER_LABELLED = ("training image", "training pose", "training fingers", "calibrating", "cross-checking", "evaluating")
# Without an earlier run in the workspace to go by, a first run is expected to take what
# first runs took on this project's 2-core dev machine (efficientnet-lite0 through ONNX
# Runtime, hand pose on, load average 2.5-2.8): bench/train_phases.py on 6 and on 120
# sign-digits photos a class, bench/results/train_phases-per-class6.json (36 photos, 60
# augmented views, 2.6 s) and bench/results/train_phases-per-class120.json (720 photos, no
# views, 16.0 s). Seconds a phase takes whatever the number of images: loading the model
# (0.45 s in the 36-photo run); the hand detector's first use, the fixed part of "finding
# hands" (1.348 s for 36, 12.796 s for 720: 0.75 s + 0.0167 s an image); recording and the
# review queue, a small allowance for what a run does after the phases those files time.
FIRST_RUN_S = {
    "loading model": 0.45,
    "finding hands": 0.75,
    "recording": 0.05,
    "review queue": 0.1,
}
# Seconds per new image: finding hands as above; embedding 2.028 s for 720 photos. An
# augmented view costs more than a photo, its drawing and its pass: the 36-photo run embedded
# 36 photos and 60 views in 0.616 s, 0.0086 s a view.
FIRST_RUN_PER_IMAGE_S = {"finding hands": 0.0167, "embedding": 0.0028}
FIRST_RUN_PER_VIEW_S = 0.0086
# Seconds per labelled image of the phases that fit on all of them, from the 720-photo run
# (training image 0.229 s, training pose 0.065, training fingers 0.013, calibrating 0.029,
# cross-checking 0.284, evaluating 0.109).
FIRST_RUN_PER_LABELLED_S = {
    "training image": 0.00032,
    "training pose": 0.00009,
    "training fingers": 0.00002,
    "calibrating": 0.00004,
    "cross-checking": 0.0004,
    "evaluating": 0.00015,
}


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

    def finish(self) -> dict[str, dict[str, Any]]:
        """{"seconds": {phase: s}, "items": {phase: n}}: what a run records."""
        self._close(self.clock())
        return {"seconds": dict(self.seconds), "items": dict(self.items)}


def expected_seconds(
    last: dict[str, Any] | None,
    new_images: int,
    *,
    labelled_then: int = 0,
    labelled_now: int = 0,
    new_views: int = 0,
    rates: dict[str, float] | None = None,
) -> dict[str, float]:
    """Seconds each phase should take for a run with ``new_images`` images not yet cached,
    from the last run's phase timings (``last``: what :meth:`PhaseTimer.finish` recorded)
    and per-image ``rates`` measured by earlier runs, else from the first-run measurements.

    With ``labelled_then`` (the last run's images) and ``labelled_now``, the phases that fit
    on every labelled image scale with their number; ``new_views`` (augmented views of the
    new images) count only where no run has measured the embedding's rate here."""
    seconds = dict(FIRST_RUN_S)
    for phase, rate in FIRST_RUN_PER_LABELLED_S.items():
        seconds[phase] = rate * labelled_now
    per_image = dict(FIRST_RUN_PER_IMAGE_S)
    measured = dict(rates or {})
    if last:
        for phase, s in last.get("seconds", {}).items():
            if phase in PER_IMAGE:
                done = last.get("items", {}).get(phase, 0)
                if done:
                    measured[phase] = s / done
            elif phase in PER_LABELLED and labelled_then and labelled_now:
                seconds[phase] = s * labelled_now / labelled_then
            else:
                seconds[phase] = s
    per_image.update(measured)
    for phase, rate in per_image.items():
        # A first run's budget has a fixed part (the detector's first use); a rate this
        # machine measured already holds it.
        fixed = FIRST_RUN_S.get(phase, 0.0) if new_images and phase not in measured else 0.0
        seconds[phase] = fixed + rate * new_images
    if "embedding" not in measured:
        seconds["embedding"] += FIRST_RUN_PER_VIEW_S * new_views
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


def measured_rates(runs: Sequence[RunRecord]) -> dict[str, float]:
    """Seconds per new image of each per-image phase, from the newest run that had new
    images for it (a retrain with nothing new measures nothing, and must not erase what an
    earlier run measured on this machine)."""
    rates: dict[str, float] = {}
    for run in reversed(runs):
        phases = run.metrics.get("phases") or {}
        for phase in PER_IMAGE:
            n = phases.get("items", {}).get(phase, 0)
            if phase not in rates and n:
                rates[phase] = phases["seconds"].get(phase, 0.0) / n
        if len(rates) == len(PER_IMAGE):
            break
    return rates


def new_views(labelled: Sequence[Sample], new: int) -> int:
    """Augmented views the new images will get: a class with fewer than ``class_vectors``
    training images gets views (learn/heads.py), shared over its images."""
    from fingertui.learn.heads import TrainConfig

    if not labelled or not new:
        return 0
    cfg = TrainConfig()
    per_class: dict[int, int] = {}
    for s in labelled:
        if s.split == "train" and s.label is not None:
            per_class[s.label] = per_class.get(s.label, 0) + 1
    views = sum(min(max(0, cfg.class_vectors - n), cfg.views * n) for n in per_class.values())
    return round(views * new / len(labelled))


def estimate_for(store: Store) -> dict[str, float]:
    """Expected phase seconds of the next run on ``store``: images labelled since the last
    run are the new ones to find hands in and embed, at the rates earlier runs measured in
    this workspace (on this machine), else at the first-run rates."""
    from fingertui.runs.records import list_runs

    runs = list_runs(store)
    labelled = store.labelled()
    if not runs:
        return expected_seconds(
            None, len(labelled), labelled_now=len(labelled), new_views=new_views(labelled, len(labelled))
        )
    last = runs[-1]
    seen = last.n_train + last.n_test
    new = max(len(labelled) - seen, 0)
    return expected_seconds(
        last.metrics.get("phases"),
        new,
        labelled_then=seen,
        labelled_now=len(labelled),
        new_views=new_views(labelled, new),
        rates=measured_rates(runs),
    )

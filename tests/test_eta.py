"""Time left: within ±30 % (plus a second) once a fifth of the run is done, for runs timed
on this project's machine, played at its pace and at slower and faster ones."""

from __future__ import annotations

import pytest

from fingertui.runs.eta import PHASES, Eta, expected_seconds, measured_rates

# `fingertui train --json` phase seconds of two first runs (progress.py names the machine).
RUN_733 = {
    "loading model": 2.353,
    "finding hands": 7.312,
    "embedding": 1.741,
    "training image": 0.175,
    "training pose": 0.053,
    "training fingers": 0.025,
    "calibrating": 0.016,
    "cross-checking": 0.289,
    "evaluating": 0.002,
    "recording": 0.0,
    "review queue": 0.5,
}
RUN_36 = {
    "loading model": 2.372,
    "finding hands": 0.719,
    "embedding": 0.498,
    "training image": 0.006,
    "training fingers": 0.005,
    "cross-checking": 0.079,
    "evaluating": 0.001,
    "recording": 0.0,
    "review queue": 0.5,
}
COUNTS = {"finding hands": "n", "embedding": "n", "cross-checking": 5}


def play(actual: dict[str, float], n: int, expected: dict[str, float]) -> list[tuple[float, float, float]]:
    """Report a run's phases as the pipeline does; (elapsed, estimated left, true left) at
    every report."""
    total = sum(actual.values())
    eta = Eta(expected)
    out = []
    t = 0.0
    for phase in PHASES:
        if phase not in actual:
            continue
        steps = COUNTS.get(phase, 1)
        steps = n if steps == "n" else steps
        for k in range(steps + 1):
            now = t + actual[phase] * k / steps
            out.append((now, eta.left(phase, k, steps, now=now), total - now))
        t += actual[phase]
    return out


@pytest.mark.parametrize("pace", [0.7, 1.0, 1.6])
@pytest.mark.parametrize(("actual", "n", "views"), [(RUN_733, 733, 0), (RUN_36, 36, 72)])
def test_first_run_time_left_is_within_30_percent_once_a_fifth_is_done(actual, n, views, pace):
    actual = {p: s * pace for p, s in actual.items()}
    expected = expected_seconds(None, n, labelled_now=n, new_views=views)
    total = sum(actual.values())
    for now, left, true in play(actual, n, expected):
        if now >= 0.2 * total:
            assert abs(left - true) <= 0.3 * true + 1.0, (
                f"at {now:.1f} s of {total:.1f}: said {left:.1f}, was {true:.1f}"
            )


def test_a_retrain_uses_this_machines_rates_even_after_a_run_with_nothing_new():
    class Run:
        def __init__(self, seconds, items):
            self.metrics = {"phases": {"seconds": seconds, "items": items}}

    first = Run({"finding hands": 7.3, "embedding": 1.7}, {"finding hands": 733, "embedding": 733})
    again = Run({"finding hands": 0.01, "embedding": 0.02}, {"finding hands": 0, "embedding": 0})
    rates = measured_rates([first, again])
    assert rates == pytest.approx({"finding hands": 7.3 / 733, "embedding": 1.7 / 733})
    exp = expected_seconds(again.metrics["phases"], 100, labelled_then=733, labelled_now=833, rates=rates)
    assert exp["finding hands"] == pytest.approx(100 * 7.3 / 733)

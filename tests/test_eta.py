"""Time left: within ±30 % (plus a second) once a fifth of the run is done, for runs timed
on this project's machine, played at its pace and at slower and faster ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fingertui.train.eta import PHASES, Eta, expected_seconds, measured_rates

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def first_run(result: str) -> tuple[dict[str, float], int]:
    """A first run's phase seconds and images, as bench/train_phases.py recorded them (the
    figures train/eta.py's first-run budgets come from); what the run took after the phases
    it times (recording, the review queue) counts as "review queue"."""
    lines = json.loads((RESULTS / result).read_text())["output"]
    at = next(k for k, line in enumerate(lines) if line.startswith("first run:"))
    total, n = re.match(r"first run: ([\d.]+) s for (\d+) images", lines[at]).groups()
    seconds = json.loads(lines[at + 1])["seconds"]
    return {**seconds, "review queue": max(float(total) - sum(seconds.values()), 0.0)}, int(n)


RUN_720, N_720 = first_run("train_phases-per-class120.json")
RUN_36, N_36 = first_run("train_phases-per-class6.json")
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
@pytest.mark.parametrize(("actual", "n", "views"), [(RUN_720, N_720, 0), (RUN_36, N_36, 60)])
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

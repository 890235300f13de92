"""Full garbage collections while nobody types (tui/collector.py), on a clock of the test's."""

from __future__ import annotations

import gc

import pytest

from fingertui.tui import collector as C


@pytest.fixture
def clock():  # noqa: ANN201
    now = [1000.0]
    return now


@pytest.fixture
def installed(clock):  # noqa: ANN001, ANN201
    saved = gc.get_threshold()
    c = C.IdleCollector(clock=lambda: clock[0])
    c.install()
    yield c
    c.uninstall()
    assert gc.get_threshold() == saved  # Python's own schedule is back


def test_python_runs_no_full_collection_of_its_own_while_installed(installed):
    assert gc.get_threshold()[:2] == C.YOUNG and gc.get_threshold()[2] >= 1 << 20


def test_a_full_collection_waits_for_a_quiet_moment_and_runs_at_most_every_so_often(installed, clock):
    assert not installed.tick()  # just started: not due
    clock[0] += C.EVERY_S
    installed.input()  # a key now
    assert not installed.tick()
    clock[0] += C.QUIET_S / 2
    assert not installed.tick()  # still typing
    clock[0] += C.QUIET_S
    before = gc.get_count()
    assert installed.tick()  # quiet long enough
    assert sum(gc.get_count()) <= sum(before)
    clock[0] += C.QUIET_S
    assert not installed.tick()  # not due again yet


def test_keys_without_end_do_not_put_it_off_for_ever(installed, clock):
    for _ in range(int(C.AT_LATEST_S) + 1):
        clock[0] += 1.0
        installed.input()
        if installed.tick():
            break
    assert clock[0] - 1000.0 == pytest.approx(C.AT_LATEST_S, abs=1.0)


def test_freeze_leaves_start_up_out_of_later_collections(installed):
    kept = [[] for _ in range(100)]  # objects that live as long as the "app"
    installed.freeze()
    assert gc.get_freeze_count() >= len(kept)
    installed.uninstall()
    assert gc.get_freeze_count() == 0 and not installed.frozen

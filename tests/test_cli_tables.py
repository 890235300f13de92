"""`review` names where each item came from, and the `runs` and `review` tables keep their
key columns whole, piped or on an 80-column terminal."""

import json
import re

import numpy as np
import pytest

from fingertui.cli import main
from fingertui.data.capture import CaptureSession
from fingertui.data.store import Store
from fingertui.live.camera import ScriptedSource
from fingertui.runs.records import list_runs
from fingertui.tui.app import make_app
from fingertui.tui.screens.review import ReviewScreen
from tests.helpers import wait_for
from tests.test_tui import frames

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_cli(argv, capsys):
    capsys.readouterr()
    assert main(argv) == 0
    return ANSI.sub("", capsys.readouterr().out)


def terminal(monkeypatch, columns=80):
    """Output as on a terminal this wide (rich reads these)."""
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", str(columns))


def test_origin_name_is_the_imported_file_or_the_capture(runs_ws):
    store = Store(runs_ws)
    imported = store.labelled()[0]
    assert imported.origin.endswith(f"/{imported.label}/{imported.origin_name.split('/')[1]}")
    assert imported.origin_name == f"{imported.label}/{imported.origin.rsplit('/', 1)[1]}"
    shot = CaptureSession(store).capture(np.full((40, 40, 3), 90, np.uint8), 2)
    assert re.fullmatch(r"capture \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", shot.origin_name)


def test_review_names_the_file_not_the_content_hash(runs_ws, capsys):
    home = ["--home", str(runs_ws.root)]
    store = Store(runs_ws)
    items = json.loads(run_cli([*home, "review", "--json"], capsys))["items"]
    assert items
    for it in items:
        s = store.get(it["sample_id"])
        assert it["origin"] == s.origin and it["from"] == s.origin_name and s.sha256 not in it["from"]
    out = run_cli([*home, "review"], capsys)
    rows = {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0].isdigit()}
    for it in items:  # piped: one line per item, with the file it came from
        assert it["from"] in rows[str(it["sample_id"])]
    assert "data/images/" not in out and "…" not in out


def test_runs_table_piped_is_whole(runs_ws, capsys):
    out = run_cli(["--home", str(runs_ws.root), "runs"], capsys)
    for r in list_runs(Store(runs_ws)):
        [line] = [x for x in out.splitlines() if x.split() and x.split()[0] == str(r.id)]
        assert r.finished[:19].replace("T", " ") in line and r.backbone in line
        assert f"{r.n_train}/{r.n_test}" in line and f"{100 * r.metrics['test']['accuracy']:.1f}%" in line
    assert "…" not in out and "finished" in out


def test_on_an_80_column_terminal_key_columns_stay_whole(runs_ws, capsys, monkeypatch):
    terminal(monkeypatch, 80)
    home = ["--home", str(runs_ws.root)]
    runs_out = run_cli([*home, "runs"], capsys)
    assert max(len(x) for x in runs_out.splitlines()) <= 80
    for r in list_runs(Store(runs_ws)):
        [line] = [x for x in runs_out.splitlines() if x.split() and x.split()[0] == str(r.id)]
        for cell in (
            f"{r.n_train}/{r.n_test}",
            f"{100 * r.metrics['test']['accuracy']:.1f}%",
            f"{r.metrics['test']['ece']:.3f}",
        ):
            assert cell in line
    review_out = run_cli([*home, "review"], capsys).split("act on an item")[0]  # the table
    assert max(len(x) for x in review_out.splitlines()) <= 80 and "…" not in review_out
    monkeypatch.delenv("TTY_COMPATIBLE")
    items = json.loads(run_cli([*home, "review", "--json"], capsys))["items"]
    for it in items:
        [line] = [x for x in review_out.splitlines() if x.split() and x.split()[0] == str(it["sample_id"])]
        assert f"{100 * it['confidence']:.1f}%" in line


@pytest.mark.slow
async def test_review_screen_says_which_file_the_snapshot_came_from(runs_ws):
    app = make_app(runs_ws, ScriptedSource(frames()), backbone="dev-random")
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen.items)
        screen = app.screen
        sample = app.store.get(screen.current.sample_id)
        counter = str(screen.query_one("#counter").render())
        assert f"from {sample.origin_name}" in counter and sample.sha256 not in counter

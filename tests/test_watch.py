"""`fingertui watch`: the steady count for other programs, end to end in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from tests.realdata import DIGITS, needs_datasets, photos, trained_workspace

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "fingertui"]


def env() -> dict:
    # The test process's ONNX trunk cache (conftest), so no export runs again.
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


@needs_datasets()
def test_watch_a_folder_prints_one_json_line_a_photo_as_predict_counts_it(tmp_path):
    ws = trained_workspace()
    picked = photos(DIGITS, 1, 1)
    for i, (p, _) in enumerate(picked):
        shutil.copy(p, tmp_path / f"{i}.jpg")
    out = subprocess.run(
        [*CLI, "watch", "--home", str(ws), "--source", f"folder:{tmp_path}", "--json", "--every"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [x["frame"] for x in lines] == list(range(1, len(picked) + 1))
    pred = subprocess.run(
        [*CLI, "predict", "--home", str(ws), "--json", *[str(tmp_path / f"{i}.jpg") for i in range(len(picked))]],
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    want = json.loads(pred.stdout)["predictions"]
    assert [x["count"] for x in lines] == [w["label"] for w in want]
    assert [x["steady"] for x in lines] == [w["label"] for w in want]  # a photo is its own steady count
    # Only changes without --every: never more lines than photos, the first always there.
    changes = subprocess.run(
        [*CLI, "watch", "--home", str(ws), "--source", f"folder:{tmp_path}", "--json"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    got = [json.loads(line) for line in changes.stdout.splitlines()]
    assert got[0]["frame"] == 1 and len(got) == 1 + sum(
        a != b for a, b in zip([x["steady"] for x in lines], [x["steady"] for x in lines][1:], strict=False)
    )


@needs_datasets()
def test_watch_ends_cleanly_on_a_closed_pipe_and_on_ctrl_c():
    ws = trained_workspace()
    cmd = [*CLI, "watch", "--home", str(ws), "--source", "demo", "--json", "--every"]
    # `fingertui watch … | head -1`
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    first = json.loads(p.stdout.readline())
    assert {"count", "steady", "hand", "no_hand", "probs", "box", "frame"} <= set(first)
    p.stdout.close()
    assert p.wait(timeout=120) == 0
    err = p.stderr.read().decode()
    assert "Traceback" not in err and "error" not in err
    # Ctrl-C after the first line (SIGINT as a terminal has it: a test run in the background
    # inherits it ignored, and Python then never turns it into KeyboardInterrupt)
    p = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    p.stdout.readline()
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 0
    assert "Traceback" not in err.decode()
    assert all(json.loads(line) for line in out.decode().splitlines())  # no half-written line


def test_watch_on_a_folder_that_is_no_workspace_is_one_line_exit_2(tmp_path):
    out = subprocess.run(
        [*CLI, "watch", "--home", str(tmp_path), "--source", "folder:" + str(tmp_path / "none")],
        capture_output=True,
        text=True,
        env=env(),
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "fingertui: error:" in out.stderr

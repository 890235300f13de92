"""Fault injection: kill the process at every step of import, capture, delete, undo,
relabel, taking back a capture and train, then run doctor and the next command.

A forked child runs the operation with ``FINGERTUI_DEV_CRASH_AT=N`` and dies at its N-th
step (``os._exit``, as a SIGKILL would: no cleanup runs); N walks 1, 2, … until the
operation completes, so every step is hit. After each crash: no image lost, no label
lost, no orphan left, doctor healthy, history undoable.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from fingertui.data import doctor
from fingertui.data.capture import CaptureSession
from fingertui.data.importer import import_paths
from fingertui.data.store import Store, crashpoints
from fingertui.data.workspace import Workspace
from fingertui.errors import UserError
from tests.conftest import noise_image, save

pytestmark = pytest.mark.slow

MAX_STEPS = 60


def state(ws: Workspace) -> dict[str, tuple[int | None, str | None]]:
    """sha256 → (label, split) of every sample, with its file checked present."""
    s = Store(ws)
    try:
        out = {}
        for x in s.samples():
            assert ws.abs(x.path).exists(), f"sample {x.id} lost its image"
            out[x.sha256] = (x.label, x.split)
        return out
    finally:
        s.close()


def healthy(ws: Workspace) -> None:
    """Doctor after a crash: healthy, no image file left unindexed (the journal put every
    one right, so nothing goes to the quarantine), and a second look finds nothing."""
    s = Store(ws)
    try:
        rep = doctor.check(s)
        assert rep.healthy and rep.orphans == [] and rep.missing == [], rep.as_json()
        assert not s.journal.has_pending()
        again = doctor.check(s)
        assert again.orphans == [] and again.orphan_models == [] and again.healthy
    finally:
        s.close()


def undo_all(ws: Workspace) -> int:
    """History stays undoable: undo until nothing is left, never an exception."""
    s = Store(ws)
    n = 0
    try:
        while True:
            try:
                s.undo()
            except UserError as e:
                assert "nothing to undo" in str(e)
                return n
            n += 1
            assert n < 50
    finally:
        s.close()


def crash_at(ws: Workspace, n: int, op) -> int:  # noqa: ANN001
    """Run ``op(store)`` in a forked child that dies at its n-th step; its exit code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.environ[crashpoints.ENV_CRASH_AT] = str(n)
            crashpoints.reset_steps()
            store = Store(ws)
            op(store)
            store.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def walk(template: Workspace, tmp_path: Path, op, check) -> int:  # noqa: ANN001
    """Crash ``op`` at every step on a fresh copy of ``template``; ``check(ws, before)``
    after doctor. Returns how many crash points were hit."""
    before = state(template)
    for n in range(1, MAX_STEPS):
        ws = Workspace(tmp_path / f"run{n}")
        shutil.copytree(template.root, ws.root)
        code = crash_at(ws, n, op)
        if code == 0:
            assert n > 2, "the operation should have several steps"
            return n - 1
        assert code == crashpoints.CRASH_EXIT, f"child failed at step {n} (exit {code})"
        healthy(ws)  # doctor after the crash: recovers, nothing orphaned or lost
        check(ws, before)
        # The next command: the operation again, to completion, then undo everything.
        s = Store(ws)
        try:
            op(s)
        finally:
            s.close()
        healthy(ws)
        check(ws, before)
        undo_all(ws)
        healthy(ws)
        shutil.rmtree(ws.root)
    raise AssertionError("operation never completed")


@pytest.fixture
def template(tmp_path: Path) -> Workspace:
    src = tmp_path / "src"
    for k in range(3):
        save(noise_image(k), src / str(k % 2 + 1) / f"{k}.png")
    ws = Workspace(tmp_path / "template")
    s = Store(ws)
    import_paths(s, [src])
    s.close()
    return ws


def test_kill_during_import(template, tmp_path):
    more = tmp_path / "more"
    for k in range(3):
        save(noise_image(50 + k), more / "4" / f"{k}.png")

    def op(store):
        import_paths(store, [more])

    def check(ws, before):
        now = state(ws)
        assert {k: v for k, v in now.items() if k in before} == before  # nothing lost or changed
        assert all(v[0] == 4 for k, v in now.items() if k not in before)  # added ones are whole

    assert walk(template, tmp_path, op, check) >= 6


def test_kill_during_capture_and_its_undo(template, tmp_path):
    crop = np.asarray(noise_image(77, 64))

    def op(store):
        s = CaptureSession(store).capture(crop, 3)
        store.remove_capture(s.id)  # the capture and taking it back, both walked

    def check(ws, before):
        now = state(ws)
        assert {k: v for k, v in now.items() if k in before} == before
        assert all(v[0] == 3 for k, v in now.items() if k not in before)

    assert walk(template, tmp_path, op, check) >= 5


def test_kill_while_taking_back_a_whole_hold(template, tmp_path):
    frames = [np.asarray(noise_image(80 + k, 64)) for k in range(3)]

    def op(store):
        session = CaptureSession(store)
        for f in frames:
            session.capture(f, 4, burst="hold1")
        # The frames a crash left are taken back by the next run too: all of them or none.
        store.remove_captures([s.id for s in store.samples() if s.label == 4])

    def check(ws, before):
        now = state(ws)
        assert {k: v for k, v in now.items() if k in before} == before
        assert all(v[0] == 4 for k, v in now.items() if k not in before)

    assert walk(template, tmp_path, op, check) >= 10


def test_kill_during_delete_undo_and_relabel(template, tmp_path):
    s = Store(template)
    victim, other = s.samples()[0], s.samples()[1]
    s.close()

    def op(store):
        if store.has(victim.id):
            store.delete(victim.id)
        store.undo()  # the delete comes back
        store.set_label(other.id, 5, actor="user")

    def check(ws, before):
        now = state(ws)
        # The victim is either present with its label, or deleted and still undoable.
        if victim.sha256 in now:
            assert now[victim.sha256] == before[victim.sha256]
        else:
            assert (ws.trash_dir / Path(victim.path).name).exists()
        assert now[other.sha256][0] in (before[other.sha256][0], 5)  # old or new label, never lost
        assert set(now) <= set(before)

    assert walk(template, tmp_path, op, check) >= 6


def test_undo_after_the_deleted_image_was_imported_again(template, tmp_path):
    s = Store(template)
    victim = s.samples()[0]
    s.set_label(s.samples()[1].id, 0)
    s.delete(victim.id)
    data = (template.trash_dir / Path(victim.path).name).read_bytes()
    (tmp_path / "again.png").write_bytes(data)
    import_paths(s, [tmp_path / "again.png"], unlabeled=True)
    first = s.undo()
    assert "imported again" in first["undone"]
    again = s.by_sha(victim.sha256)
    assert again.label == victim.label  # the deleted sample's label came back
    second = s.undo()  # older changes are still reachable
    assert second["kind"] == "label"
    s.close()


def test_kill_while_recording_a_training_run(template, tmp_path, monkeypatch):
    """Train's steps that touch the workspace: saving the checkpoint (half written, written
    but not renamed, renamed but not recorded) and recording the run. The model is trained
    once; each child replays the recording of that run (training itself only computes)."""
    from fingertui.train import pipeline
    from tests.conftest import write_bars

    monkeypatch.setenv("FINGERTUI_DEV_RANDOM_BACKBONE", "1")
    write_bars(tmp_path / "bars", 3)
    s = Store(template)
    import_paths(s, [tmp_path / "bars"])
    captured = []
    real = pipeline._record
    monkeypatch.setattr(pipeline, "_record", lambda store, *a: captured.append(a) or real(store, *a))
    pipeline.train_run(s, backbone="dev-random")
    s.close()
    [args] = captured

    def op(store):
        with store.writing():  # as pipeline.train records a run
            real(store, *args)

    before = state(template)
    points = 0
    for n in range(1, 12):
        ws = Workspace(tmp_path / f"t{n}")
        shutil.copytree(template.root, ws.root)
        code = crash_at(ws, n, op)
        if code == 0:
            break
        assert code == crashpoints.CRASH_EXIT, f"child failed at step {n} (exit {code})"
        points += 1
        healthy(ws)  # an unrecorded checkpoint is set aside, nothing else is touched
        now = state(ws)
        assert {k: v for k, v in now.items() if k in before} == before
        s = Store(ws)
        assert len(s.runs.rows()) in (1, 2)
        assert all(ws.abs(r["checkpoint"]).exists() for r in s.runs.rows())
        s.close()
    assert points >= 3

"""A workspace is a box: a crafted index (rows, journal, label events, checkpoints) never
makes fingertui touch a file outside ``data/``; doctor reports such a row in one line."""

import hashlib
import json
import os
from pathlib import Path

import pytest

from fingertui.cli import main
from fingertui.data.store import Store, now_iso
from fingertui.data.workspace import Workspace
from fingertui.errors import UnsafePath
from tests.conftest import add_sample

VICTIM = b"precious bytes outside the workspace"
VICTIM_SHA = hashlib.sha256(VICTIM).hexdigest()


add = add_sample


def fingerprint(folder: Path) -> dict[str, str]:
    """Every entry under a folder (links too) and the hash of every file's bytes."""
    out = {}
    for dirpath, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(folder))
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


@pytest.fixture
def box(tmp_path):
    """A workspace with two labelled samples, and a sentinel folder beside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_bytes(VICTIM)
    (outside / "sub").mkdir()
    (outside / "sub" / "other.txt").write_bytes(b"other")
    ws = Workspace(tmp_path / "ws")
    s = Store(ws)
    add(s, 1)
    add(s, 2, label=4)
    s.close()
    return ws, outside


def plant(ws: Workspace, sql: str, params: list) -> None:
    s = Store(ws)
    with s.transaction() as db:
        db.execute(sql, params)
    s.close()


def plant_journal(ws: Workspace, op: str, payload: dict) -> None:
    plant(ws, "INSERT INTO journal (op, payload, created) VALUES (?, ?, ?)", [op, json.dumps(payload), now_iso()])


def plant_sample(ws: Workspace, path: str, sha: str = VICTIM_SHA, label: int | None = 2) -> int:
    plant(
        ws,
        "INSERT INTO samples (sha256, path, width, height, source, created, label, split) "
        "VALUES (?, ?, 48, 48, 'import', ?, ?, ?)",
        [sha, path, now_iso(), label, None if label is None else "train"],
    )
    s = Store(ws)
    sid = s.by_sha(sha).id
    s.close()
    return sid


def run_cli(ws: Workspace, *argv: str) -> int:
    code = main(["--home", str(ws.root), *argv])
    assert code in (0, 1, 2)
    return code


def outside_paths(ws: Workspace, outside: Path) -> list[str]:
    return [
        str(outside / "victim.txt"),
        os.path.relpath(outside / "victim.txt", ws.root),
        "data/../../outside/victim.txt",
        "data/images/../../../outside/victim.txt",
    ]


# --- the one place ----------------------------------------------------------------------


def test_workspace_refuses_paths_outside_data(box, tmp_path):
    ws, outside = box
    for bad in [*outside_paths(ws, outside), "", "db/fingertui.db", "data/../db/fingertui.db", "data\0x"]:
        with pytest.raises(UnsafePath):
            ws.abs(bad)
    assert ws.abs("data/images/ab/x.png") == ws.root / "data/images/ab/x.png"
    # A symlink inside data/ that leads out is refused too.
    (ws.images_dir / "zz").symlink_to(outside)
    with pytest.raises(UnsafePath):
        ws.abs("data/images/zz/victim.txt")
    (ws.images_dir / "ln.png").symlink_to(outside / "victim.txt")
    with pytest.raises(UnsafePath):
        ws.abs("data/images/ln.png")


def test_a_data_folder_that_is_itself_a_link_is_fine(tmp_path):
    real = tmp_path / "big-disk" / "data"
    real.mkdir(parents=True)
    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir()
    (ws.root / "data").symlink_to(real)
    s = Store(ws)
    sample = add(s, 5)
    assert s.ws.abs(sample.path).exists()
    s.close()


# --- journal ----------------------------------------------------------------------------


@pytest.mark.parametrize("k", range(4))
@pytest.mark.parametrize("command", ["stats", "samples"])
def test_journal_add_outside_is_never_acted_on(box, k, command, capsys):
    ws, outside = box
    before = fingerprint(outside)
    bad = outside_paths(ws, outside)[k]
    row = {"path": bad, "sha256": "0" * 64, "label": 1}
    plant_journal(ws, "add", {"row": row, "event": {"actor": "import", "reason": "x"}})
    run_cli(ws, command)
    assert fingerprint(outside) == before
    assert "Traceback" not in capsys.readouterr().err


def test_journal_add_naming_another_images_file_leaves_it(box):
    ws, _ = box
    s = Store(ws)
    victim = s.samples()[0]
    s.close()
    row = {"path": victim.path, "sha256": "0" * 64, "label": 1}
    plant_journal(ws, "add", {"row": row, "event": {"actor": "import", "reason": "x"}})
    run_cli(ws, "stats")
    assert ws.abs(victim.path).exists()


@pytest.mark.parametrize("k", range(4))
def test_journal_remove_outside_is_never_acted_on(box, k, capsys):
    ws, outside = box
    before = fingerprint(outside)
    bad = outside_paths(ws, outside)[k]
    plant_journal(ws, "remove", {"items": [{"path": bad, "trash": "data/trash/victim.txt", "sha256": "1" * 64}]})
    run_cli(ws, "runs")
    assert fingerprint(outside) == before
    assert not (ws.trash_dir / "victim.txt").exists()
    # doctor reports it, in one line, and does not act on it either.
    assert run_cli(ws, "doctor") == 1
    out = capsys.readouterr().out
    assert fingerprint(outside) == before
    lines = [ln for ln in out.splitlines() if "journal" in ln and "refused" in ln]
    assert len(lines) == 1, out


def test_journal_trash_outside_is_never_acted_on(box):
    ws, outside = box
    before = fingerprint(outside)
    s = Store(ws)
    victim = s.samples()[0]
    s.close()
    rel_out = os.path.relpath(outside / "victim.txt", ws.root)
    plant_journal(ws, "delete", {"path": victim.path, "trash": rel_out, "sha256": victim.sha256})
    plant_journal(ws, "undo_delete", {"path": rel_out, "trash": victim.path, "sha256": "2" * 64})
    run_cli(ws, "stats")
    run_cli(ws, "doctor")
    assert fingerprint(outside) == before


# --- sample rows ------------------------------------------------------------------------


def test_doctor_never_puts_a_missing_file_back_outside(box, capsys):
    ws, outside = box
    before = fingerprint(outside)
    sid = plant_sample(ws, "../outside/new.txt")
    ws.trash_dir.mkdir(parents=True, exist_ok=True)
    (ws.trash_dir / "new.txt").write_bytes(VICTIM)  # the same bytes the row names
    assert run_cli(ws, "doctor") == 1
    out = capsys.readouterr().out
    assert fingerprint(outside) == before
    assert (ws.trash_dir / "new.txt").exists()
    assert [ln for ln in out.splitlines() if f"sample {sid}" in ln and "refused" in ln], out
    # --json says so too.
    assert run_cli(ws, "doctor", "--json") == 1
    rep = json.loads(capsys.readouterr().out)
    assert not rep["healthy"] and any(f"sample {sid}" in r for r in rep["refused"])


def test_sample_row_outside_export_delete_empty_trash(box, tmp_path, capsys):
    ws, outside = box
    before = fingerprint(outside)
    sid = plant_sample(ws, os.path.relpath(outside / "victim.txt", ws.root))
    dest = tmp_path / "export"
    assert run_cli(ws, "export", str(dest), "--json") == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["written"] == 2 and len(rep["refused"]) == 1
    assert all(p.read_bytes() != VICTIM for p in dest.rglob("*") if p.is_file())
    assert run_cli(ws, "delete", str(sid)) == 2
    err = capsys.readouterr().err
    assert "outside" in err and "Traceback" not in err
    assert run_cli(ws, "doctor", "--empty-trash", "--yes") in (0, 2)
    assert fingerprint(outside) == before


def test_sample_row_through_a_linked_folder(box, tmp_path, capsys):
    ws, outside = box
    before = fingerprint(outside)
    (ws.images_dir / "zz").symlink_to(outside)
    sid = plant_sample(ws, "data/images/zz/victim.txt")
    dest = tmp_path / "export"
    assert run_cli(ws, "export", str(dest)) == 0
    assert all(p.read_bytes() != VICTIM for p in dest.rglob("*") if p.is_file())
    assert run_cli(ws, "delete", str(sid)) == 2
    run_cli(ws, "doctor", "--empty-trash", "--yes")
    assert run_cli(ws, "doctor") == 1
    assert fingerprint(outside) == before


def test_empty_trash_refuses_a_trash_that_leads_out(box, capsys):
    ws, outside = box
    before = fingerprint(outside)
    ws.data_dir.mkdir(exist_ok=True)
    (ws.trash_dir).symlink_to(outside)
    assert run_cli(ws, "doctor", "--empty-trash", "--yes") == 2
    assert "Traceback" not in capsys.readouterr().err
    assert fingerprint(outside) == before


# --- label events (undo) ----------------------------------------------------------------


@pytest.mark.parametrize("k", range(4))
def test_undo_of_a_crafted_delete_writes_nothing_outside(box, k, capsys):
    ws, outside = box
    (outside / "victim.txt").unlink()  # undo would put the trash file there
    before = fingerprint(outside)
    bad = outside_paths(ws, outside)[k]
    ws.trash_dir.mkdir(parents=True, exist_ok=True)
    (ws.trash_dir / "victim.txt").write_bytes(VICTIM)
    row = {
        "id": 99,
        "sha256": VICTIM_SHA,
        "path": bad,
        "width": 1,
        "height": 1,
        "source": "import",
        "created": now_iso(),
        "label": 1,
        "split": "train",
    }
    plant(
        ws,
        "INSERT INTO label_events (sample_id, old, new, time, actor, reason, kind, payload) "
        "VALUES (99, 1, NULL, ?, 'user', 'delete', 'delete', ?)",
        [now_iso(), json.dumps({"row": row, "flags": []})],
    )
    run_cli(ws, "undo")
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert fingerprint(outside) == before
    assert (ws.trash_dir / "victim.txt").exists()
    assert run_cli(ws, "doctor") == 1
    assert "label event" in capsys.readouterr().out


def test_undo_of_a_delete_whose_row_names_extra_columns_is_refused(box, capsys):
    ws, _ = box
    s = Store(ws)
    victim = s.samples()[0]
    s.delete(victim.id)
    ev = s.label_events()[-1]
    payload = json.loads(ev["payload"])
    payload["row"]["label) VALUES (1); DROP TABLE runs; --"] = 1
    with s.transaction() as db:
        db.execute("UPDATE label_events SET payload = ? WHERE id = ?", [json.dumps(payload), ev["id"]])
    s.close()
    run_cli(ws, "undo")
    assert "Traceback" not in capsys.readouterr().err
    s = Store(ws)
    assert "runs" in s.db.table_names()
    s.close()


# --- checkpoints ------------------------------------------------------------------------


def test_a_run_whose_checkpoint_is_outside_is_refused(box, capsys):
    ws, outside = box
    (outside / "model.npz").write_bytes(b"PK")
    before = fingerprint(outside)
    plant(
        ws,
        "INSERT INTO runs (started, finished, backbone, seed, config, data_hash, n_train, n_test, metrics, "
        "checkpoint) VALUES (?, ?, 'x', 0, '{}', 'h', 1, 1, '{}', ?)",
        [now_iso(), now_iso(), os.path.relpath(outside / "model.npz", ws.root)],
    )
    code = run_cli(ws, "predict", str(outside / "victim.txt"))
    assert code == 2 and "Traceback" not in capsys.readouterr().err
    assert run_cli(ws, "doctor") == 1
    out = capsys.readouterr().out
    assert [ln for ln in out.splitlines() if "run 1" in ln and "refused" in ln], out
    assert fingerprint(outside) == before


@pytest.mark.slow
async def test_the_gallery_never_opens_a_row_that_leads_outside(box):
    """A crafted row in the app: left out of the gallery with one warning, no crash."""
    import numpy as np

    from fingertui.live.camera import ScriptedSource
    from fingertui.tui.app import make_app
    from fingertui.tui.screens.gallery import GalleryScreen

    ws, outside = box
    before = fingerprint(outside)
    plant_sample(ws, str(outside / "victim.txt"), label=0)  # the class the gallery opens on
    app = make_app(ws, ScriptedSource([np.zeros((64, 64, 3), np.uint8)]))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("g")
        await pilot.pause()
        assert isinstance(app.screen, GalleryScreen) and app.screen.samples == []
        assert any("outside this workspace" in n.message for n in app._notifications)
    assert fingerprint(outside) == before

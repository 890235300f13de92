"""Recovery that costs no labels: reindex and restore in any order, every writing doctor
mode under the writer lock, ids never reused, advice that names the real cause, and no
failure left silent."""

import json
import os
import resource
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from fingertui.cli import main
from fingertui.data import doctor
from fingertui.data.importer import import_paths
from fingertui.data.store import Store, now_iso
from fingertui.data.store import backup as backup_mod
from fingertui.data.store.util import sqlite_advice
from fingertui.data.workspace import Workspace
from fingertui.errors import UserError
from tests.conftest import add_sample, noise_image, save

ROOT = Path(__file__).resolve().parents[1]


add = add_sample


@pytest.fixture
def home(tmp_path, labelled_tree):
    h = tmp_path / "home"
    assert main(["--home", str(h), "import", str(labelled_tree)]) == 0
    return h


def labelled(home: Path) -> tuple[int, int]:
    s = Store(Workspace(home))
    try:
        return s.count(), s.count() - s.unlabelled_count()
    finally:
        s.close()


def garble(home: Path) -> None:
    for extra in home.glob("db/fingertui.db-*"):
        extra.unlink()
    (home / "db" / "fingertui.db").write_bytes(os.urandom(8192))


# --- reindex and restore, in either order -----------------------------------------------


def test_reindex_with_a_garbage_index_restores_the_labelled_backup(home, tmp_path, capsys):
    more = tmp_path / "more"
    for k in range(4):
        save(noise_image(700 + k), more / f"{k}.png")
    garble(home)
    # Images the backup does not know: added after it (put there by hand here).
    s_ws = Workspace(home)
    for k in range(4):
        p = s_ws.images_dir / "zz" / f"new{k}.png"
        save(noise_image(700 + k), p)
    assert main(["--home", str(home), "doctor", "--reindex"]) in (0, 1)
    out = capsys.readouterr().out
    assert labelled(home) == (64, 60), out  # every label kept, the new images unlabelled
    # …and --restore afterwards still brings back labels, never an unlabelled rebuild.
    assert main(["--home", str(home), "doctor", "--restore"]) in (0, 1)
    capsys.readouterr()
    assert labelled(home)[1] == 60


def test_restore_then_reindex(home, capsys):
    garble(home)
    assert main(["--home", str(home), "doctor", "--restore"]) == 0
    assert main(["--home", str(home), "doctor", "--reindex"]) == 0
    capsys.readouterr()
    assert labelled(home) == (60, 60)


def test_restore_skips_an_unreadable_newest_backup(home, capsys):
    ws = Workspace(home)
    s = Store(ws)
    s.backup("run")
    s.close()
    newest = backup_mod.newest(ws.backups_dir)
    newest.write_bytes(os.urandom(4096))
    garble(home)
    assert main(["--home", str(home), "doctor", "--restore"]) == 0
    capsys.readouterr()
    assert labelled(home) == (60, 60)


def test_rotation_never_drops_the_last_labelled_backup(tmp_path):
    ws = Workspace(tmp_path / "ws")
    s = Store(ws)
    for k in range(3):
        add(s, k)
    labelled_backup = s.backup("import")
    with s.transaction() as db:  # as an unlabelled rebuild would leave it
        db.execute("UPDATE samples SET label = NULL, split = NULL")
    for _ in range(backup_mod.KEEP + 2):
        s.backup("import")
    s.close()
    assert labelled_backup.exists()
    assert len(backup_mod.backups(ws.backups_dir)) == backup_mod.KEEP + 1


# --- the writer lock and the journal, first ------------------------------------------------


def test_restore_waits_for_the_writer_lock(home, monkeypatch):
    monkeypatch.setenv("FINGERTUI_LOCK_WAIT_S", "0.2")
    other = Store(Workspace(home))
    try:
        with other.writing(), pytest.raises(UserError, match="another fingertui is writing"):
            doctor.run(Workspace(home), restore=True)
    finally:
        other.close()
    assert not list(home.glob("db/fingertui.db.replaced-*"))  # the index was not swapped
    assert labelled(home) == (60, 60)


def test_a_store_open_across_a_restore_does_not_write_to_the_old_index(home, capsys):
    ws = Workspace(home)
    importing = Store(ws)  # an import under way…
    assert main(["--home", str(home), "doctor", "--restore"]) == 0  # …between two of its images
    capsys.readouterr()
    with pytest.raises(UserError, match="replaced"):
        add(importing, 999)
    importing.close()
    assert labelled(home) == (60, 60)


def _interrupted_delete(ws: Workspace) -> int:
    """A delete killed after its file reached the trash (row and journal entry remain)."""
    s = Store(ws)
    victim = s.samples()[0]
    trash = ws.trash_dir / Path(victim.path).name
    with s.transaction() as db:
        db.execute(
            "INSERT INTO journal (op, payload, created) VALUES ('delete', ?, ?)",
            [json.dumps({"path": victim.path, "trash": ws.rel(trash), "sha256": victim.sha256}), now_iso()],
        )
    s.close()
    trash.parent.mkdir(parents=True, exist_ok=True)
    os.replace(ws.abs(victim.path), trash)
    return victim.id


def test_empty_trash_finishes_an_interrupted_delete_first(home, capsys):
    ws = Workspace(home)
    sid = _interrupted_delete(ws)
    # Another writer holds the lock (so no store opening meanwhile finished the delete).
    assert main(["--home", str(home), "doctor", "--empty-trash", "--yes"]) == 0
    capsys.readouterr()
    s = Store(ws)
    assert s.ws.abs(s.get(sid).path).exists()  # its image was put back, not destroyed
    assert not s.journal.has_pending()
    s.close()
    assert main(["--home", str(home), "doctor"]) == 0


def test_empty_trash_takes_the_writer_lock(home, monkeypatch, capsys):
    monkeypatch.setenv("FINGERTUI_LOCK_WAIT_S", "0.2")
    ws = Workspace(home)
    ws.trash_dir.mkdir(parents=True)
    (ws.trash_dir / "x.png").write_bytes(b"x")
    other = Store(ws)
    try:
        with other.writing():
            assert main(["--home", str(home), "doctor", "--empty-trash", "--yes"]) == 2
    finally:
        other.close()
    assert "another fingertui is writing" in capsys.readouterr().err
    assert (ws.trash_dir / "x.png").exists()


# --- ids ------------------------------------------------------------------------------------


def test_sample_ids_are_never_reused(tmp_path):
    s = Store(Workspace(tmp_path / "ws"))
    a, b = add(s, 1), add(s, 2)
    s.delete(b.id)
    c = add(s, 3)
    assert c.id > b.id
    s.undo()
    assert s.get(b.id).sha256 == b.sha256 and s.get(c.id).sha256 == c.sha256
    assert a.id < b.id
    s.close()


def test_undo_of_a_delete_whose_id_is_taken_still_restores(tmp_path):
    s = Store(Workspace(tmp_path / "ws"))
    add(s, 1)
    b = add(s, 2, label=4)
    s.delete(b.id)
    # An index written before ids were kept unique gave the id to a new image.
    img = noise_image(3)
    with s.transaction() as db:
        db.execute(
            "INSERT INTO samples (id, sha256, path, width, height, source, created) "
            "VALUES (?, 'f00d', 'data/images/f0/f00d.png', 48, 48, 'import', ?)",
            [b.id, now_iso()],
        )
    del img
    res = s.undo()
    back = s.by_sha(b.sha256)
    assert back is not None and back.id != b.id and back.label == 4, res
    assert str(back.id) in res["undone"]
    assert s.ws.abs(back.path).exists()
    s.close()


def test_migration_keeps_ids_of_deleted_samples_unused(tmp_path):
    """An index from before the migration: the newest sample was deleted (its id lives on
    in the label events); the next image must not get that id."""
    from fingertui.data.store.migrations import MIGRATIONS, migrate

    ws = Workspace(tmp_path / "ws")
    s = Store(ws)
    add(s, 1)
    b = add(s, 2)
    s.delete(b.id)
    s.close()
    # Back to the schema before the AUTOINCREMENT migration, as an old fingertui left it.
    import sqlite_utils

    db = sqlite_utils.Database(sqlite3.connect(ws.db_path))
    old = db.execute("SELECT sql FROM sqlite_master WHERE name = 'samples'").fetchone()[0]
    assert "AUTOINCREMENT" in old
    plain = old.replace("AUTOINCREMENT", "")
    rows = db.execute("SELECT * FROM samples").fetchall()
    db.execute("DROP TABLE samples")
    db.execute(plain)
    for r in rows:
        db.execute(f"INSERT INTO samples VALUES ({','.join('?' * len(r))})", r)
    db.execute("DELETE FROM sqlite_sequence")
    target = [k for k, m in enumerate(MIGRATIONS) if m.__name__.endswith("_sample_ids")][0]
    db.execute(f"PRAGMA user_version = {target}")
    db.conn.commit()
    migrate(db)
    db.conn.close()
    s = Store(ws)
    c = add(s, 3)
    assert c.id > b.id
    s.close()


# --- advice that names the real cause -------------------------------------------------------


def _err(name: str, code: int, text: str) -> sqlite3.Error:
    e = sqlite3.OperationalError(text)
    e.sqlite_errorname = name
    e.sqlite_errorcode = code
    return e


@pytest.mark.parametrize(
    ("err", "says", "restore"),
    [
        (_err("SQLITE_FULL", 13, "database or disk is full"), "disk full", False),
        (_err("SQLITE_IOERR_WRITE", 778, "disk I/O error"), "could not write", False),
        (_err("SQLITE_BUSY", 5, "database is locked"), "another fingertui", False),
        (_err("SQLITE_READONLY", 8, "attempt to write a readonly database"), "read-only", False),
        (_err("SQLITE_CANTOPEN", 14, "unable to open database file"), "cannot open", False),
        (_err("SQLITE_TOOBIG", 18, "string or blob too big"), "too big", False),
        (_err("SQLITE_CORRUPT", 11, "database disk image is malformed"), "damaged", True),
        (_err("SQLITE_NOTADB", 26, "file is not a database"), "damaged", True),
    ],
)
def test_sqlite_advice_names_the_cause(err, says, restore):
    corrupt, text = sqlite_advice(err)
    assert says in text and corrupt == restore
    assert ("--restore" in text) == restore


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 and sys.platform != "linux", reason="needs setrlimit")
def test_file_size_limit_is_not_called_corruption(home, tmp_path):
    more = tmp_path / "more"
    for k in range(60):
        save(noise_image(900 + k, 96), more / "2" / f"{k}.png")
    limit = (home / "db" / "fingertui.db").stat().st_size + 4096

    def small_files() -> None:  # pragma: no cover - runs in the child
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = subprocess.run(
        [sys.executable, "-m", "fingertui", "--home", str(home), "import", str(more)],
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "--restore" not in r.stderr, r.stderr
    assert "size limit" in r.stderr, r.stderr
    assert labelled(home)[1] >= 60  # the index itself is fine


# --- nothing silent -------------------------------------------------------------------------


def test_a_failed_backup_is_reported_and_doctor_says_so(home, tmp_path, capsys):
    ws = Workspace(home)
    for f in ws.backups_dir.iterdir():
        f.unlink()
    ws.backups_dir.rmdir()
    ws.backups_dir.write_text("not a folder")  # backups cannot be written
    more = tmp_path / "more"
    save(noise_image(4242), more / "3" / "a.png")
    assert main(["--home", str(home), "import", str(more)]) == 0
    assert "could not back up" in capsys.readouterr().err
    assert main(["--home", str(home), "doctor"]) == 1
    out = capsys.readouterr().out
    assert "backup" in out and "failed" in out, out
    # Once a backup works again, doctor is content.
    ws.backups_dir.unlink()
    s = Store(ws)
    assert s.backup("run") is not None
    s.close()
    assert main(["--home", str(home), "doctor"]) == 0


def test_a_failed_backup_leaves_no_temporary_file(tmp_path):
    folder = tmp_path / "backups"
    conn = sqlite3.connect(tmp_path / "x.db")
    conn.execute("CREATE TABLE t (x)")
    conn.close()  # backing up a closed connection fails half-way
    with pytest.raises(sqlite3.Error):
        backup_mod.backup(conn, folder, "run")
    assert list(folder.iterdir()) == []


def test_unreadable_import_folders_are_reported(tmp_path, monkeypatch):
    tree = tmp_path / "tree"
    save(noise_image(1), tree / "3" / "a.png")
    save(noise_image(2), tree / "4" / "b.png")
    real = os.scandir

    def scandir(path="."):
        if Path(path).name == "4":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    s = Store(Workspace(tmp_path / "ws"))
    rep = import_paths(s, [tree])
    s.close()
    assert rep.added == 1
    assert any(p.endswith("4") and "cannot read" in why for p, why in rep.skipped), rep.skipped


def test_reindex_trash_keeps_relative_paths(tmp_path):
    ws = Workspace(tmp_path / "ws")
    s = Store(ws)
    add(s, 1)
    for sub in ("a", "b"):
        p = ws.quarantine_dir / "t1" / sub / "notes.txt"
        p.parent.mkdir(parents=True)
        p.write_text(sub)
    doctor.reindex(s)
    s.close()
    kept = sorted(p.read_text() for p in ws.trash_dir.rglob("notes.txt"))
    assert kept == ["a", "b"]


def test_json_lists_are_not_capped(tmp_path, capsys):
    tree = tmp_path / "tree"
    save(noise_image(1), tree / "3" / "a.png")
    for k in range(9):
        (tree / "3" / f"notes{k}.txt").write_text("x")
    assert main(["--home", str(tmp_path / "ws"), "import", str(tree), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["skipped"] == 9 and len(rep["skipped_examples"]) == 9

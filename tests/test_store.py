import sqlite3

import pytest

from fingertui import doctor
from fingertui.errors import UserError
from fingertui.store import SCHEMA_VERSION, Store
from fingertui.store.migrations import MIGRATIONS
from tests.conftest import noise_image, png_bytes


def add(store, seed, label=3, split="train"):
    img = noise_image(seed)
    return store.add_image(
        png_bytes(img),
        "png",
        width=img.width,
        height=img.height,
        source="capture",
        label=label,
        split=split,
        group_key=f"g{seed}",
        phash="0" * 16,
        session="s1",
        actor="user",
    )


def test_schema_created_with_wal_and_version(store):
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cols = set(store.db["samples"].columns_dict)
    assert {
        "id",
        "sha256",
        "path",
        "width",
        "height",
        "source",
        "origin",
        "session",
        "created",
        "label",
        "split",
        "group_key",
    } <= cols
    assert {"sample_id", "old", "new", "time", "actor", "reason"} <= set(store.db["label_events"].columns_dict)


def test_migration_from_version_1_keeps_data(ws):
    ws.ensure()
    conn = sqlite3.connect(ws.db_path)
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    MIGRATIONS[0](db)
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO samples (sha256, path, width, height, source, created, label, split) "
        "VALUES ('abc', 'data/images/ab/abc.png', 1, 1, 'import', 'now', 2, 'test')"
    )
    conn.commit()
    conn.close()
    store = Store(ws)
    assert store.migrated_from == 1
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    [s] = store.samples()
    assert (s.sha256, s.label, s.split, s.phash) == ("abc", 2, "test", None)


def test_newer_schema_is_refused(ws):
    ws.ensure()
    conn = sqlite3.connect(ws.db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(UserError, match="newer fingertui"):
        Store(ws)


def test_content_addressed_and_duplicate_is_noop(store):
    first = add(store, 1)
    again = add(store, 1, label=5)
    assert not first.duplicate and again.duplicate
    assert again.sample.id == first.sample.id and again.sample.label == 3
    assert first.sample.path == f"data/images/{first.sample.sha256[:2]}/{first.sample.sha256}.png"
    assert store.count() == 1
    events = store.label_events(first.sample.id)
    assert [(e["old"], e["new"], e["actor"], e["kind"]) for e in events] == [(None, 3, "user", "add")]


def test_crash_between_file_and_row_leaves_orphan_that_doctor_cleans(store, monkeypatch):
    add(store, 1)

    def boom(*a, **k):
        raise RuntimeError("power cut")

    monkeypatch.setattr(store.history, "record", boom)  # fails inside the insert transaction
    with pytest.raises(RuntimeError):
        add(store, 2)
    assert store.count() == 1  # the transaction rolled back: no half sample
    files = [p for p in store.ws.images_dir.rglob("*") if p.is_file()]
    assert len(files) == 2
    report = doctor.check(store)
    assert len(report.orphans) == 1 and report.healthy
    assert len([p for p in store.ws.images_dir.rglob("*") if p.is_file()]) == 1


def test_doctor_reports_missing_and_altered_files(store):
    a = add(store, 1).sample
    b = add(store, 2).sample
    store.ws.abs(a.path).unlink()
    store.ws.abs(b.path).write_bytes(b"tampered")
    report = doctor.check(store)
    assert report.missing == [a.id] and report.corrupt == [b.id] and not report.healthy


def test_set_label_records_events_and_gives_split_once(store):
    s = add(store, 1, label=None).sample
    assert s.split is None
    s = store.set_label(s.id, 4, split="test", reason="review")
    assert (s.label, s.split) == (4, "test")
    s = store.set_label(s.id, 2, split="train")
    assert s.split == "test"  # a split, once given, never changes
    changes = [(e["old"], e["new"]) for e in store.label_events(s.id) if e["kind"] == "label"]
    assert changes == [(None, 4), (4, 2)]

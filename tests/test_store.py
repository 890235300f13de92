import sqlite3

import pytest

from fingertui.data import doctor
from fingertui.data.store import SCHEMA_VERSION, Store
from fingertui.data.store.migrations import MIGRATIONS
from fingertui.errors import UserError
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


def test_failure_inside_the_insert_leaves_neither_row_nor_file(store, monkeypatch):
    add(store, 1)

    def boom(*a, **k):
        raise RuntimeError("power cut")

    monkeypatch.setattr(store.history, "record", boom)  # fails inside the insert transaction
    with pytest.raises(RuntimeError):
        add(store, 2)
    assert store.count() == 1  # the transaction rolled back: no half sample
    assert len([p for p in store.ws.images_dir.rglob("*") if p.is_file()]) == 1  # and no stray file
    assert not store.journal.has_pending()


def test_doctor_quarantines_unindexed_files_and_reindex_brings_them_back(store):
    add(store, 1)
    stray = store.ws.image_path("f" * 64, "png")
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(png_bytes(noise_image(9)))
    report = doctor.check(store)
    assert report.orphans == [store.ws.rel(stray)] and report.healthy
    assert not stray.exists() and report.quarantine_files == 1  # moved, never deleted
    manifest = next(store.ws.quarantine_dir.rglob("manifest.json")).read_text()
    assert store.ws.rel(stray) in manifest
    added, dup, aside = doctor.reindex(store)
    assert (added, dup, aside) == (1, 0, 0) and store.count() == 2 and store.unlabelled_count() == 1
    assert not any(p.is_file() for p in store.ws.quarantine_dir.rglob("*"))


def test_backups_are_online_copies_a_few_kept(store):
    from fingertui.data.store.backup import KEEP, backups

    add(store, 1)
    for _ in range(KEEP + 2):
        store.backup("test")
    kept = backups(store.ws.backups_dir)
    assert len(kept) == KEEP
    copy = sqlite3.connect(kept[-1])
    assert copy.execute("SELECT count(*) FROM samples").fetchone()[0] == 1


def test_second_writer_waits_then_says_so_in_one_line(ws, monkeypatch):
    monkeypatch.setenv("FINGERTUI_LOCK_WAIT_S", "0.2")
    a, b = Store(ws), Store(ws)
    with a.writing():
        with pytest.raises(UserError, match="another fingertui is writing"):
            add(b, 1)
        assert b.count() == 0  # readers never block
    add(b, 1)  # free again
    a.close()
    b.close()


def test_orphan_checkpoint_is_set_aside_not_deleted(store):
    ckpt = store.ws.models_dir / "run-crashed.pt"
    ckpt.write_bytes(b"weights")
    report = doctor.check(store)
    assert report.orphan_models == ["data/models/run-crashed.pt"] and report.healthy
    assert (store.ws.trash_dir / "models" / "run-crashed.pt").read_bytes() == b"weights"
    assert report.trash_files == 1


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


def test_samples_filter_by_label_split_and_exclusion_and_has_knows_the_ids(store):
    three = add(store, 1, label=3, split="train").sample
    test = add(store, 2, label=3, split="test").sample
    four = add(store, 3, label=4, split="train").sample
    loose = add(store, 4, label=None, split=None).sample
    store.set_excluded(four.id, True)

    def ids(samples):
        return [s.id for s in samples]

    assert ids(store.samples()) == [three.id, test.id, four.id, loose.id]  # by id
    assert ids(store.samples(label=3)) == [three.id, test.id]
    assert ids(store.samples(label=3, split="test")) == [test.id]
    assert ids(store.samples(unlabelled=True)) == [loose.id]
    assert ids(store.samples(excluded=True)) == [four.id]
    assert ids(store.samples(excluded=False, split="train")) == [three.id]
    assert ids(store.labelled()) == [three.id, test.id]  # labelled, split, not excluded
    assert store.has(loose.id) and not store.has(loose.id + 100) and not store.has(2**64)
    store.delete(loose.id)
    assert not store.has(loose.id)

"""The schema, as forward migrations kept in ``PRAGMA user_version``."""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlite_utils

from fingertui.errors import UserError

# Each migration takes the database from version i to i+1. Never edit a released one:
# append a new function instead, so existing workspaces upgrade in place.


def _m1_samples(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE samples (
            id INTEGER PRIMARY KEY,
            sha256 TEXT NOT NULL UNIQUE,
            path TEXT NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('capture', 'import')),
            origin TEXT,
            session TEXT,
            created TEXT NOT NULL,
            label INTEGER CHECK (label IS NULL OR label BETWEEN 0 AND 5),
            split TEXT CHECK (split IS NULL OR split IN ('train', 'test')),
            group_key TEXT
        )"""
    )
    db.execute(
        """CREATE TABLE label_events (
            id INTEGER PRIMARY KEY,
            sample_id INTEGER NOT NULL,
            old INTEGER,
            new INTEGER,
            time TEXT NOT NULL,
            actor TEXT NOT NULL CHECK (actor IN ('user', 'import')),
            reason TEXT
        )"""
    )
    db.execute("CREATE INDEX idx_label_events_sample ON label_events(sample_id)")


def _m2_phash(db: sqlite_utils.Database) -> None:
    # Perceptual hash (64-bit, hex) used to keep near-identical images in one split.
    db.execute("ALTER TABLE samples ADD COLUMN phash TEXT")
    db.execute("CREATE INDEX idx_samples_group ON samples(group_key)")


def _m3_learning(db: sqlite_utils.Database) -> None:
    # Cached backbone embeddings (float16 blobs), runs, their per-sample predictions, and
    # small settings such as the active run.
    db.execute(
        """CREATE TABLE embeddings (
            sha256 TEXT NOT NULL, backbone TEXT NOT NULL, recipe TEXT NOT NULL, view INTEGER NOT NULL,
            vec BLOB NOT NULL, PRIMARY KEY (sha256, backbone, recipe, view)
        )"""
    )
    db.execute(
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY, started TEXT NOT NULL, finished TEXT NOT NULL, backbone TEXT NOT NULL,
            seed INTEGER NOT NULL, config TEXT NOT NULL, data_hash TEXT NOT NULL, n_train INTEGER NOT NULL,
            n_test INTEGER NOT NULL, metrics TEXT NOT NULL, checkpoint TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE run_samples (
            run_id INTEGER NOT NULL, sample_id INTEGER NOT NULL, label INTEGER NOT NULL, role TEXT NOT NULL,
            pred INTEGER, confidence REAL, probs TEXT, PRIMARY KEY (run_id, sample_id)
        )"""
    )
    db.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT)")


def _m4_review(db: sqlite_utils.Database) -> None:
    # Review queue: flags with reasons; excluded samples ("not a hand"); undoable events.
    db.execute("ALTER TABLE samples ADD COLUMN excluded INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE label_events ADD COLUMN kind TEXT NOT NULL DEFAULT 'label'")
    db.execute("ALTER TABLE label_events ADD COLUMN payload TEXT")
    db.execute("ALTER TABLE label_events ADD COLUMN undone INTEGER NOT NULL DEFAULT 0")
    db.execute(
        """CREATE TABLE flags (
            id INTEGER PRIMARY KEY, sample_id INTEGER NOT NULL, reason TEXT NOT NULL, score REAL NOT NULL,
            suggested INTEGER, pred INTEGER, confidence REAL, probs TEXT, run_id INTEGER, created TEXT NOT NULL,
            resolved TEXT, resolution TEXT
        )"""
    )
    db.execute("CREATE INDEX idx_flags_sample ON flags(sample_id)")


def _m5_capture(db: sqlite_utils.Database) -> None:
    # What the model said when a snapshot was captured (run id, label, confidence).
    db.execute("ALTER TABLE samples ADD COLUMN capture_run INTEGER")
    db.execute("ALTER TABLE samples ADD COLUMN capture_pred INTEGER")
    db.execute("ALTER TABLE samples ADD COLUMN capture_conf REAL")


def _m6_landmarks(db: sqlite_utils.Database) -> None:
    # Hands found by the hand-pose detector, per (image, detector id, view), as one packed
    # float32 blob (an empty blob: no hand found), so every image is searched once.
    db.execute(
        """CREATE TABLE landmarks (
            sha256 TEXT NOT NULL, detector TEXT NOT NULL, view TEXT NOT NULL, hands BLOB NOT NULL,
            PRIMARY KEY (sha256, detector, view)
        )"""
    )


def _m7_journal(db: sqlite_utils.Database) -> None:
    # Intent records of multi-step changes (files and rows), so a crash at any step is
    # completed or rolled back by the next writer (see store/journal.py).
    db.execute(
        "CREATE TABLE journal (id INTEGER PRIMARY KEY, op TEXT NOT NULL, payload TEXT NOT NULL, created TEXT NOT NULL)"
    )


def _m8_evidence(db: sqlite_utils.Database) -> None:
    # Each expert's own out-of-fold probabilities per run sample (JSON {name: probs}), and a
    # flag's evidence (JSON), so "the label looks wrong" can say why.
    db.execute("ALTER TABLE run_samples ADD COLUMN experts TEXT")
    db.execute("ALTER TABLE flags ADD COLUMN evidence TEXT")


def _m9_sample_ids(db: sqlite_utils.Database) -> None:
    # Sample ids are never reused (AUTOINCREMENT): an id a label event, flag or run still
    # names after its sample was deleted is never given to a new image, so `undo` of that
    # delete finds its id free. SQLite cannot add AUTOINCREMENT in place: the table is
    # rebuilt from its own definition (whatever columns earlier migrations added).
    sql = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'samples'").fetchone()[0]
    if "AUTOINCREMENT" not in sql.upper():
        sql = re.sub(
            r"\bid\s+INTEGER\s+PRIMARY\s+KEY\b", "id INTEGER PRIMARY KEY AUTOINCREMENT", sql, count=1, flags=re.I
        )
        indexes = [
            r[0]
            for r in db.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'samples' AND sql IS NOT NULL"
            )
        ]
        db.execute(re.sub(r"^\s*CREATE\s+TABLE\s+\"?samples\"?", "CREATE TABLE samples_ids", sql, count=1, flags=re.I))
        db.execute("INSERT INTO samples_ids SELECT * FROM samples")
        db.execute("DROP TABLE samples")
        db.execute("ALTER TABLE samples_ids RENAME TO samples")
        for index in indexes:
            db.execute(index)
    # The highest id ever given, deleted samples' included.
    top = db.execute(
        "SELECT max(coalesce((SELECT max(id) FROM samples), 0), coalesce((SELECT max(sample_id) FROM label_events), 0),"
        " coalesce((SELECT max(sample_id) FROM flags), 0), coalesce((SELECT max(sample_id) FROM run_samples), 0))"
    ).fetchone()[0]
    db.execute("DELETE FROM sqlite_sequence WHERE name = 'samples'")
    db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('samples', ?)", [top])


def _m10_sessions(db: sqlite_utils.Database) -> None:
    # Every sample belongs to a session (sessions.py): a sample without one gets one from
    # its source and stored time (gaps of sessions.GAP_S).
    from fingertui.data.sessions import backfill

    rows = db.execute("SELECT id, source, created FROM samples WHERE session IS NULL").fetchall()
    names = backfill(rows)
    db.conn.executemany("UPDATE samples SET session = ? WHERE id = ?", [(n, i) for i, n in names.items()])


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m1_samples,
    _m2_phash,
    _m3_learning,
    _m4_review,
    _m5_capture,
    _m6_landmarks,
    _m7_journal,
    _m8_evidence,
    _m9_sample_ids,
    _m10_sessions,
]
SCHEMA_VERSION = len(MIGRATIONS)


def version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database, before: Callable[[int], None] | None = None) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version it started at.
    ``before(start)`` runs first when there is something to migrate (the backup)."""
    start = version(db)
    if start > SCHEMA_VERSION:
        raise UserError(
            f"this workspace was written by a newer fingertui (schema {start} > {SCHEMA_VERSION}); upgrade fingertui"
        )
    if start < SCHEMA_VERSION and before is not None:
        before(start)
    for v in range(start, SCHEMA_VERSION):
        with db.atomic():
            MIGRATIONS[v](db)
            db.execute(f"PRAGMA user_version = {v + 1}")
    return start

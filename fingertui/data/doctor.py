"""Consistency check and repair of a workspace. Doctor never deletes a user's image.

* Files under ``data/images`` that no row points to are moved to
  ``data/quarantine/<time>/`` with a ``manifest.json``; ``--reindex`` brings them back as
  unlabelled samples.
* A row whose file is missing gets it back from the trash or the quarantine when the
  same image is there; otherwise it is reported.
* Checkpoints under ``data/models`` that no run records (a crash between saving and
  recording) go to ``data/trash/models``; runs whose checkpoint is gone are reported.
* With a missing, empty or unreadable index nothing is touched (the Store refuses to open
  it); ``--restore`` puts back the newest backup, ``--reindex`` indexes images again.
* The orphan scan runs holding the writer lock, so nothing being imported at the same
  time is mistaken for an orphan.
* A stored path that leads outside ``data/`` (a sample row, a run's checkpoint, a journal
  entry, a deleted row kept for undo) is reported in one line and never acted on; folders
  under ``data/`` that are links leading out are not walked.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fingertui.data.store import BACKUP_FAILED_KEY, TMP_PREFIX, IndexUnusable, Store, recovery_advice
from fingertui.data.store.backup import leftovers as backup_leftovers
from fingertui.data.store.util import sha256_file, walk_files
from fingertui.data.workspace import Workspace
from fingertui.errors import UserError

MANIFEST = "manifest.json"


@dataclass
class DoctorReport:
    checked: int = 0
    orphans: list[str] = field(default_factory=list)  # unindexed image files found
    quarantined: list[str] = field(default_factory=list)  # where they went
    missing: list[int] = field(default_factory=list)  # sample ids whose file is gone
    corrupt: list[int] = field(default_factory=list)  # sample ids whose file changed
    refound: list[str] = field(default_factory=list)  # missing files put back from trash/quarantine
    orphan_models: list[str] = field(default_factory=list)  # checkpoints no run records
    models_moved: list[str] = field(default_factory=list)
    missing_models: list[int] = field(default_factory=list)  # run ids without their checkpoint
    recovered: list[str] = field(default_factory=list)  # interrupted changes completed / rolled back
    refused: list[str] = field(default_factory=list)  # stored paths leading outside data/: never acted on
    backup_failed: str | None = None  # the last backup of the index failed: when and why
    restored_backup: str | None = None
    reindexed: int = 0
    trash_files: int = 0
    trash_bytes: int = 0
    quarantine_files: int = 0
    readonly: bool = False
    fixed: bool = True

    @property
    def healthy(self) -> bool:
        handled = len(self.quarantined) == len(self.orphans) and len(self.models_moved) == len(self.orphan_models)
        return (
            not self.missing
            and not self.corrupt
            and not self.missing_models
            and not self.refused
            and not self.backup_failed
            and handled
        )

    def as_json(self) -> dict:
        return {
            "healthy": self.healthy,
            "checked": self.checked,
            "orphans": self.orphans,
            "quarantined": self.quarantined,
            "missing": self.missing,
            "corrupt": self.corrupt,
            "refound": self.refound,
            "orphan_models": self.orphan_models,
            "models_moved": self.models_moved,
            "missing_models": self.missing_models,
            "recovered": self.recovered,
            "refused": self.refused,
            "backup_failed": self.backup_failed,
            "restored_backup": self.restored_backup,
            "reindexed": self.reindexed,
            "trash": {"files": self.trash_files, "bytes": self.trash_bytes},
            "quarantine_files": self.quarantine_files,
            "readonly": self.readonly,
        }


def _files(folder: Path) -> list[Path]:
    """Files under one of the workspace's folders; links to folders are not followed, and
    a folder that is itself a link leading out of ``data/`` is not walked (see
    :func:`_outside_folders`)."""
    if not folder.is_dir() or not _inside_data(folder):
        return []
    return walk_files(folder)


def _inside_data(folder: Path) -> bool:
    # data/ is the folder's parent (or itself): data/ may be a link (another disk), its
    # sub-folders may not lead out of it.
    data = folder if folder.name == "data" else folder.parent
    try:
        return folder.resolve().is_relative_to(data.resolve())
    except (OSError, RuntimeError):
        return False


def _outside_folders(ws: Workspace) -> list[str]:
    return [
        f"{ws.rel(d)}/ is a link that leads out of data/; not walked, nothing in it touched"
        for d in (ws.images_dir, ws.trash_dir, ws.quarantine_dir, ws.models_dir, ws.backups_dir)
        if (d.exists() or d.is_symlink()) and not _inside_data(d)
    ]


def usage(folder: Path) -> tuple[int, int]:
    """(files, bytes) under a folder."""
    files = _files(folder)
    return len(files), sum(p.stat().st_size for p in files)


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + f"-{time.time_ns() % 1_000_000:06d}"


def check(store: Store, *, fix: bool = True, allow_empty: bool = False) -> DoctorReport:
    """Check every row's file, then (holding the writer lock) move unindexed files to the
    quarantine, put back missing files found in the trash, and set orphan checkpoints
    aside. ``fix=False`` only reports."""
    ws = store.ws
    report = DoctorReport(readonly=store.readonly, fixed=fix and not store.readonly)
    fix = report.fixed
    report.recovered += store.recovered
    # Hashing is the slow part and only reads: done without the lock.
    samples = store.samples()
    report.checked = len(samples)
    bad: dict[int, str] = {}
    for s in samples:
        why = ws.unsafe(s.path)
        if why:
            bad[s.id] = "refused"
            report.refused.append(
                f"sample {s.id}: stored path {s.path[:200]!r} is not inside data/ ({why}); refused, never acted on"
            )
            continue
        f = ws.abs(s.path)
        if not f.exists():
            bad[s.id] = "missing"
        elif sha256_file(f) != s.sha256:
            bad[s.id] = "corrupt"
    if fix:
        with store.writing():  # also completes or rolls back a crashed writer's changes
            report.recovered += [r for r in store.recovered if r not in report.recovered]
            _scan_locked(store, report, bad, fix=True, allow_empty=allow_empty)
            for tmp in backup_leftovers(ws.backups_dir) if _inside_data(ws.backups_dir) else []:
                tmp.unlink(missing_ok=True)  # a backup cut short: never a backup
    else:
        _scan_locked(store, report, bad, fix=False, allow_empty=allow_empty)
    if store.get_setting(BACKUP_FAILED_KEY) is not None and fix:
        store.backup("doctor")  # works again? then nothing to report
    report.backup_failed = store.get_setting(BACKUP_FAILED_KEY)
    report.trash_files, report.trash_bytes = usage(ws.trash_dir)
    report.quarantine_files = sum(1 for p in _files(ws.quarantine_dir) if p.name != MANIFEST)
    return report


def _scan_locked(store: Store, report: DoctorReport, bad: dict[int, str], *, fix: bool, allow_empty: bool) -> None:
    ws = store.ws
    report.refused += _outside_folders(ws) + store.journal.refused() + store.history.refused()
    every = store.samples()  # again: what is indexed now
    samples = {s.path: s for s in every if not ws.unsafe(s.path)}
    refused_ids = {s.id for s in every if ws.unsafe(s.path)}
    for sid in refused_ids - {k for k, v in bad.items() if v == "refused"}:  # crafted meanwhile
        report.refused.append(f"sample {sid}: stored path is not inside data/; refused, never acted on")
    found = [f for f in _files(ws.images_dir)]
    orphans = [f for f in found if ws.rel(f) not in samples]
    if orphans and not samples and not allow_empty:
        raise IndexUnusable(recovery_advice(ws, "the index holds no samples but data/images holds images"))
    # Missing files: the same image may sit in the trash or the quarantine.
    spare = {p.name: p for p in _files(ws.trash_dir) + _files(ws.quarantine_dir) if not p.is_symlink()}
    for path, s in samples.items():
        why = bad.get(s.id)
        if why is None and ws.abs(path).exists():
            continue
        f = ws.abs(path)
        if not f.exists():
            cand = spare.get(f.name)
            if fix and cand is not None and sha256_file(cand) == s.sha256:
                f.parent.mkdir(parents=True, exist_ok=True)
                os.replace(cand, f)
                report.refound.append(path)
                continue
            report.missing.append(s.id)
        elif why == "corrupt" or sha256_file(f) != s.sha256:
            report.corrupt.append(s.id)
    report.orphans = [ws.rel(f) for f in orphans]
    if fix and orphans:
        report.quarantined = quarantine(ws, orphans, "not in the index")
    # Checkpoints.
    recorded = store.runs.checkpoints()
    for f in _files(ws.models_dir):
        if ws.rel(f) not in recorded:
            report.orphan_models.append(ws.rel(f))
            if fix:
                dest = ws.trashed_models_dir / f.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, dest)
                report.models_moved.append(ws.rel(dest))
    for run in store.runs.rows():
        why = ws.unsafe(run["checkpoint"])
        if why:
            report.refused.append(
                f"run {run['id']}: checkpoint path {str(run['checkpoint'])[:200]!r} is not inside data/ ({why}); "
                "refused, never acted on"
            )
        elif not ws.abs(run["checkpoint"]).exists():
            report.missing_models.append(run["id"])


def quarantine(ws: Workspace, files: list[Path], reason: str) -> list[str]:
    """Move files into a new ``data/quarantine/<time>/`` folder with a manifest."""
    folder = ws.quarantine_batch(_stamp())
    entries, moved = [], []
    for f in files:
        rel = f.relative_to(ws.images_dir) if f.is_relative_to(ws.images_dir) else Path(f.name)
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        size = f.stat().st_size
        os.replace(f, dest)
        moved.append(ws.rel(dest))
        entries.append(
            {
                "file": rel.as_posix(),
                "original": ws.rel(f),
                "bytes": size,
                "reason": "partial write" if f.name.startswith(TMP_PREFIX) else reason,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
        )
    (folder / MANIFEST).write_text(json.dumps(entries, indent=2))
    return moved


def reindex(store: Store) -> tuple[int, int, int]:
    """Bring quarantined files back as unlabelled samples. Returns (added, duplicates,
    set aside): files that are not images go to the trash, never deleted."""
    from fingertui.data import splits
    from fingertui.data.images import decode

    ws = store.ws
    added = dup = aside = 0
    with store.writing():
        for f in _files(ws.quarantine_dir):
            if f.name == MANIFEST:
                continue
            try:
                if f.is_symlink():  # a link is no image of ours: never read through it
                    raise UserError("a link")
                d = decode(f)
                data = f.read_bytes()
            except (UserError, OSError):
                _to_trash(ws, f)
                aside += 1
                continue
            from PIL import Image

            res = store.add_image(
                data,
                d.ext,
                width=d.width,
                height=d.height,
                source="import",
                label=None,
                split=None,
                group_key=None,
                phash=splits.phash(Image.fromarray(d.rgb)),
                origin=f"quarantine:{ws.rel(f)}",
                actor="import",
                reason="reindex",
            )
            if res.duplicate:
                dup += 1
                _to_trash(ws, f)
            else:
                added += 1
                f.unlink()  # its bytes are now stored under data/images
        for folder in sorted(ws.quarantine_dir.glob("*"), reverse=True) if ws.quarantine_dir.is_dir() else []:
            if folder.is_dir() and not any(p.name != MANIFEST for p in _files(folder)):
                shutil.rmtree(folder)
    if added:
        store.backup("reindex")
    return added, dup, aside


def _to_trash(ws: Workspace, f: Path) -> None:
    """Set a quarantined file aside in ``data/trash/quarantine/``, under its path in the
    quarantine (two ``notes.txt`` in two folders stay two files)."""
    rel = f.relative_to(ws.quarantine_dir) if f.is_relative_to(ws.quarantine_dir) else Path(f.name)
    dest = ws.trashed_quarantine_dir / rel
    k = 0
    while dest.exists() or dest.is_symlink():  # never over a file set aside before
        k += 1
        dest = dest.with_name(f"{rel.stem}.{k}{rel.suffix}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(f, dest)


def set_index_aside(ws: Workspace) -> Path | None:
    """Move the current index (and its WAL files) aside, never deleting it."""
    if not ws.db_path.exists():
        return None
    aside = ws.replaced_index(_stamp())
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{ws.db_path}{suffix}")
        if src.exists():
            os.replace(src, Path(f"{aside}{suffix}"))
    return aside


@contextmanager
def _swapping(ws: Workspace) -> Iterator[None]:
    """Hold the writer lock while the index file is set aside or replaced. A readable
    index first completes or rolls back what an interrupted writer left (its journal), and
    its connection is closed before the file moves; other processes' stores notice the new
    file and stop writing (Store._recover)."""
    from fingertui.data.store.journal import WriterLock

    try:
        current: Store | None = Store(ws)
    except UserError:  # unusable: nothing in it can be finished
        current = None
    if current is not None and current.readonly:
        current.close()
        raise UserError(f"this workspace is read-only ({ws.root}); make it writable to restore or reindex")
    lock = current.writer if current is not None else WriterLock(ws.lock_path)
    try:
        with lock.hold():  # on_acquire: the journal, completed or rolled back
            if current is not None:
                with current.lock:
                    current.db.close()
            ws.db_dir.mkdir(parents=True, exist_ok=True)
            yield
    finally:
        lock.close()


def restore_backup(ws: Workspace) -> Path:
    """Put the newest usable backup in place of the index (the old one is set aside),
    holding the writer lock."""
    from fingertui.data.store.backup import backups, newest_usable, restore

    last = newest_usable(ws.backups_dir)
    if last is None:
        some = "no usable backup" if backups(ws.backups_dir) else "no backup"
        raise UserError(
            f"{some} in {ws.rel(ws.backups_dir)}; run `fingertui doctor --reindex` to index the images again, unlabelled"
        )
    with _swapping(ws):
        set_index_aside(ws)
        restore(last, ws.db_path)
    return last


def run(ws: Workspace, *, fix: bool = True, restore: bool = False, reindex_files: bool = False) -> DoctorReport:
    """What ``fingertui doctor`` does: restore and reindex when asked, then check."""
    from fingertui.data.store.backup import newest_usable

    restored = None
    if restore:
        restored = restore_backup(ws)
    try:
        store = Store(ws)
    except IndexUnusable:
        if not reindex_files:
            raise
        if newest_usable(ws.backups_dir) is not None:
            # Labels come back from the newest usable backup; images added since it are
            # quarantined by the check and indexed again (unlabelled) below.
            restored = restore_backup(ws)
            store = Store(ws)
        else:
            # No backup to recover from: the user asked to index the images again.
            with _swapping(ws):
                set_index_aside(ws)
            store = Store(ws, new_index_ok=True)
    try:
        report = check(store, fix=fix, allow_empty=reindex_files)
        report.restored_backup = ws.rel(restored) if restored else None
        if reindex_files and fix and not store.readonly:
            report.reindexed, _, _ = reindex(store)
            report.quarantine_files = sum(1 for p in _files(ws.quarantine_dir) if p.name != MANIFEST)
        return report
    finally:
        store.close()


def empty_trash(ws: Workspace, confirm: Callable[[int, int], bool] | None = None) -> tuple[int, int] | None:
    """Delete everything in ``data/trash`` for good, holding the writer lock after the
    journal has completed or rolled back interrupted changes (a delete cut short puts its
    image back first). ``confirm(files, bytes)`` is asked first; None when it says no."""
    if (ws.trash_dir.exists() or ws.trash_dir.is_symlink()) and not _inside_data(ws.trash_dir):
        raise UserError(f"{ws.rel(ws.trash_dir)} is a link that leads out of data/; refused, nothing was deleted")
    store = Store(ws)  # an unusable index: refused with the way to recover (rows may need the trash)
    try:
        with store.writing():  # completes or rolls back what a crashed writer left
            n, size = usage(ws.trash_dir)
        # Asked without the lock: a user thinking it over does not hold up other writers.
        if n and confirm is not None and not confirm(n, size):
            return None
        with store.writing():  # anything interrupted meanwhile is put right first, again
            n, size = usage(ws.trash_dir)
            if ws.trash_dir.is_dir():
                shutil.rmtree(ws.trash_dir)
        return n, size
    finally:
        store.close()

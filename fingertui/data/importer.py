"""Import labelled image folder trees into the store.

A folder's name gives the label (``3`` or ``three``); split folders (``train``,
``val``, ``test``) above it keep their split (``val`` counts as train); folders below a
label folder are groups (one capture session), kept together in one split.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from fingertui.data import splits
from fingertui.data.images import IMAGE_EXTS
from fingertui.data.splits import Existing
from fingertui.data.store import Store, sha256_bytes
from fingertui.data.store.util import sha256_file, walk_files
from fingertui.errors import UserError
from fingertui.labels import ACCEPTED, try_parse_label
from fingertui.progress import Progress

SPLIT_FOLDERS = {"train": "train", "val": "train", "valid": "train", "validation": "train", "test": "test"}
UNLABELED_FOLDERS = {"unlabeled", "unlabelled"}
SKIPPED_SHOWN = 5
IMPORTING = "importing"  # the phase import_paths reports progress in


@dataclass
class FileEntry:
    path: Path
    label: int | None
    split: str | None
    group_hint: str | None


@dataclass
class LoadedImage:
    """What pass 1 keeps of an image: a description, not its bytes (memory stays flat)."""

    ext: str
    width: int
    height: int
    phash: str
    sha256: str
    taken: float | None = None  # EXIF capture time (seconds), if the camera wrote one


@dataclass
class ImportReport:
    added: int = 0
    duplicates: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    per_label_split: Counter[tuple[str, str]] = field(default_factory=Counter)
    sample_ids: list[int] = field(default_factory=list)

    def as_json(self) -> dict:
        table: dict[str, dict[str, int]] = {}
        for (label, split), n in sorted(self.per_label_split.items()):
            table.setdefault(label, {})[split] = n
        return {
            "added": self.added,
            "duplicates": self.duplicates,
            "skipped": len(self.skipped),
            "skipped_examples": [{"path": p, "reason": r} for p, r in self.skipped],  # all: JSON is not a screen
            "added_by_label": table,
        }


def load_image(path: Path) -> LoadedImage:
    """Hash (in chunks) and decode (bounded, see images.py) one file; raises UserError."""
    from fingertui.data.images import decode

    d = decode(path, taken=True)
    try:
        sha = sha256_file(path)
    except OSError as e:
        raise UserError(f"cannot read ({e.strerror or e})") from e
    return LoadedImage(d.ext, d.width, d.height, splits.phash(Image.fromarray(d.rgb)), sha, d.taken)


# Photos the camera took within this many seconds of the previous one are one burst:
# the same hand in the same pose, so they must share a split like near-duplicates do.
BURST_GAP_S = 2.0


def burst_hints(loaded: list[tuple[FileEntry, LoadedImage]]) -> list[str | None]:
    """A burst hint for each unlabelled image, from the cameras' capture times (EXIF):
    consecutive shots no more than ``BURST_GAP_S`` apart share one. (Labelled folders keep
    their sub-folder and near-duplicate groups, so the splits of an existing labelled set
    do not move.)"""
    hints: list[str | None] = [None] * len(loaded)
    timed = sorted(
        (img.taken, k)
        for k, (e, img) in enumerate(loaded)
        if e.label is None and e.group_hint is None and img.taken is not None
    )
    start, prev = None, None
    for t, k in timed:
        if prev is None or t - prev > BURST_GAP_S:
            start = loaded[k][1].sha256[:16]
        prev = t
        hints[k] = f"burst-exif:{start}"
    # A "burst" of one photo is no group at all.
    sizes = Counter(h for h in hints if h)
    return [h if h and sizes[h] > 1 else None for h in hints]


def _classify_parts(parts: list[str]) -> tuple[int | None, str | None, list[str], str | None, bool]:
    """(label, split, sub-folders below the label, first unknown folder, unlabeled-folder)."""
    label: int | None = None
    split: str | None = None
    below: list[str] = []
    for part in parts:
        if label is not None:
            below.append(part)
            continue
        low = part.lower()
        if low in SPLIT_FOLDERS:
            split = SPLIT_FOLDERS[low]
        elif low in UNLABELED_FOLDERS:
            return None, split, [], None, True
        elif (lab := try_parse_label(part)) is not None:
            label = lab
        else:
            return None, split, [], part, False
    return label, split, below, None, False


def scan(
    paths: Iterable[str | Path],
    *,
    label: int | None = None,
    unlabeled: bool = False,
    skip_unknown: bool = False,
) -> tuple[list[FileEntry], list[tuple[str, str]]]:
    """Walk the given files and folders, work out each image's label, split and group.

    Raises UserError before anything is imported when a folder name is not a label.
    """
    entries: list[FileEntry] = []
    skipped: list[tuple[str, str]] = []
    for raw in paths:
        root = Path(raw).expanduser()
        if not root.exists():
            raise UserError(f"{raw}: no such file or folder; check the path")
        if root.is_file():
            files, base = [root], root.parent
        else:
            files = [
                p
                for p in walk_files(
                    root, unreadable=lambda d, e: skipped.append((str(d), f"cannot read folder ({e.strerror or e})"))
                )
                if not p.name.startswith(".")
            ]
            base = root
        # The folder named on the command line counts too when it is a label or split folder.
        lead = [base.name] if (try_parse_label(base.name) is not None or base.name.lower() in SPLIT_FOLDERS) else []
        for f in files:
            if f.suffix.lower() not in IMAGE_EXTS:
                skipped.append((str(f), "not an image file"))
                continue
            parts = lead + list(f.relative_to(base).parts[:-1])
            group_parts = list(f.relative_to(base).parts[:-1])
            # A folder that carries no label says nothing about which images belong
            # together (a flat folder would be one group, none of it ever tested):
            # unlabelled images are grouped by near-duplicate hashes and by the camera's
            # capture times (bursts) instead.
            if unlabeled:
                entries.append(FileEntry(f, None, None, None))
                continue
            lab, split, below, unknown, unlab_folder = _classify_parts(parts)
            if unlab_folder:
                entries.append(FileEntry(f, None, None, None))
                continue
            if label is not None:
                # --label N: the whole tree is one class; sub-folders are groups.
                entries.append(FileEntry(f, label, split, _hint(root, group_parts) if group_parts else None))
                continue
            if unknown is not None:
                if skip_unknown:
                    skipped.append((str(f), f"folder {unknown!r} is not a label"))
                    continue
                raise UserError(
                    f"folder {unknown!r} ({f.parent}) is not a label: name label folders {ACCEPTED}, "
                    "or pass --skip-unknown, --label N or --unlabeled"
                )
            if lab is None:
                raise UserError(
                    f"{f} is not inside a label folder: put images in folders named {ACCEPTED}, "
                    "or pass --label N or --unlabeled"
                )
            entries.append(FileEntry(f, lab, split, _hint(root, parts) if below else None))
    return entries, skipped


def _hint(root: Path, parts: list[str]) -> str:
    # Files in one sub-folder below the label are one session: kept together in a split.
    return "dir:" + "/".join([root.resolve().name, *parts])


def import_paths(
    store: Store,
    paths: Iterable[str | Path],
    *,
    label: int | None = None,
    unlabeled: bool = False,
    skip_unknown: bool = False,
    session: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import images into the store; returns what was added, duplicated and skipped.
    ``session`` names the sitting they were taken in; without it the cameras' capture times
    split them into sessions (sessions.py), else the import is one session. ``progress``
    hears ("importing", step, steps): two steps an image, reading it and storing it."""
    from fingertui.data import sessions as sessions_mod

    session = sessions_mod.clean_name(session) if session is not None else None
    paths = list(paths)
    entries, skipped = scan(paths, label=label, unlabeled=unlabeled, skip_unknown=skip_unknown)
    if not entries:
        where = ", ".join(str(p) for p in paths)
        extra = f" ({len(skipped)} other files skipped)" if skipped else ""
        raise UserError(f"found no images in {where}{extra}; fingertui reads {', '.join(sorted(IMAGE_EXTS))}")
    report = ImportReport(skipped=skipped)
    total = len(entries) * 2
    # Pass 1: decode and hash everything, so groups and splits are planned over the whole
    # import (order-independent) before anything is written. Only descriptions are kept.
    loaded: list[tuple[FileEntry, LoadedImage]] = []
    seen: set[str] = set()
    for k, entry in enumerate(entries):
        try:
            img = load_image(entry.path)
        except UserError as e:
            report.skipped.append((str(entry.path), str(e).removeprefix(f"{entry.path}: ")))
        else:
            if img.sha256 in seen or store.by_sha(img.sha256) is not None:
                report.duplicates += 1
            else:
                seen.add(img.sha256)
                loaded.append((entry, img))
        if progress:
            progress(IMPORTING, k + 1, total)
    bursts = burst_hints(loaded)
    items = [
        splits.Item(e.label, img.phash, e.group_hint or burst, e.split, img.sha256)
        for (e, img), burst in zip(loaded, bursts, strict=True)
    ]
    existing = [Existing(p, g, s) for _, p, g, s in store.group_index()]
    plan = splits.plan(items, existing, store.split_counts())
    batch = sessions_mod.batch_name()
    session_of = [session] * len(loaded) if session else sessions_mod.by_time([img.taken for _, img in loaded], batch)
    # Pass 2: write each sample atomically (one file's bytes in memory at a time).
    for k, ((entry, img), (group_key, split), sess) in enumerate(zip(loaded, plan, session_of, strict=True)):
        try:
            data = entry.path.read_bytes()
        except OSError as e:
            report.skipped.append((str(entry.path), f"cannot read ({e.strerror or e})"))
            continue
        if sha256_bytes(data) != img.sha256:
            report.skipped.append((str(entry.path), "changed while being imported; import it again"))
            continue
        res = store.add_image(
            data,
            img.ext,
            width=img.width,
            height=img.height,
            source="import",
            label=entry.label,
            split=split,
            group_key=group_key,
            phash=img.phash,
            session=sess,
            origin=str(entry.path.resolve()),
            actor="import",
            reason="import",
        )
        del data
        if res.duplicate:
            report.duplicates += 1
        else:
            report.added += 1
            report.sample_ids.append(res.sample.id)
            lab = "unlabeled" if entry.label is None else str(entry.label)
            report.per_label_split[(lab, split or "-")] += 1
        if progress:
            progress(IMPORTING, len(entries) + k + 1, total)
    if report.added:
        store.backup("import")
    if progress:
        progress(IMPORTING, total, total)
    return report

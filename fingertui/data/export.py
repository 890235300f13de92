"""Export the dataset as a plain folder tree that ``fingertui import`` reads back."""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from fingertui.data.store import Sample, Store, atomic_write
from fingertui.errors import UnsafePath, UserError


@dataclass
class ExportReport:
    written: int
    missing: list[str]
    dest: Path
    refused: list[str] = field(default_factory=list)  # stored paths leading outside data/

    def as_json(self) -> dict:
        return {"dest": str(self.dest), "written": self.written, "missing": self.missing, "refused": self.refused}


def export_dataset(store: Store, dest: Path) -> ExportReport:
    """Write ``dest/{train,test}/<label>/`` (and ``unlabeled/``) plus ``labels.csv``."""
    dest = dest.expanduser()
    if dest.exists() and not dest.is_dir():
        raise UserError(f"{dest} is a file; export into a new or empty folder")
    if dest.exists() and any(dest.iterdir()):
        raise UserError(f"{dest} is not empty; export into a new or empty folder")
    rows = []
    missing = []
    refused = []
    samples = store.samples()

    def folder(s: Sample) -> Path:
        return Path("unlabeled") if s.label is None else Path(s.split or "train") / str(s.label)

    def original(s: Sample) -> str | None:
        """The imported file's own name (its stored extension), or None for a capture."""
        if not s.origin or s.origin.startswith("quarantine:"):
            return None
        stem = Path(s.origin).stem
        return f"{stem}{Path(s.path).suffix}" if stem else None

    # Original names where they are unique in their folder; the content hash otherwise.
    taken: dict[Path, int] = {}
    for s in samples:
        name = original(s)
        if name is not None:
            key = folder(s) / name.lower()
            taken[key] = taken.get(key, 0) + 1
    for s in samples:
        try:
            src = store.ws.abs(s.path)
        except UnsafePath:  # never copied out: `doctor` lists the row
            refused.append(s.path)
            continue
        if not src.exists():
            missing.append(s.path)
            continue
        sub = folder(s)
        name = original(s)
        rel = sub / (name if name is not None and taken[sub / name.lower()] == 1 else src.name)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(src, target)
        except OSError as e:
            raise UserError(f"could not write {target}: {e.strerror or e}; check free space and permissions") from e
        rows.append(
            [rel.as_posix(), "" if s.label is None else s.label, s.split or "", s.sha256, s.source, s.group_key or ""]
        )
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "label", "split", "sha256", "source", "group_key"])
    w.writerows(rows)
    atomic_write(dest / "labels.csv", buf.getvalue().encode())
    return ExportReport(len(rows), missing, dest, refused)

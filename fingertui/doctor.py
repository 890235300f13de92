"""Consistency check of the workspace: files without rows, rows without (intact) files."""

from __future__ import annotations

from dataclasses import dataclass, field

from fingertui.store import TMP_PREFIX, Store, sha256_bytes


@dataclass
class DoctorReport:
    orphans: list[str] = field(default_factory=list)  # files no row points to
    removed: list[str] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # sample ids whose file is gone
    corrupt: list[int] = field(default_factory=list)  # sample ids whose file changed

    @property
    def healthy(self) -> bool:
        return not self.missing and not self.corrupt and len(self.removed) == len(self.orphans)

    def as_json(self) -> dict:
        return {
            "healthy": self.healthy,
            "orphans": self.orphans,
            "removed": self.removed,
            "missing": self.missing,
            "corrupt": self.corrupt,
        }


def check(store: Store, *, fix: bool = True) -> DoctorReport:
    """Find orphaned files (removed when ``fix``) and rows whose file is missing or altered."""
    report = DoctorReport()
    known = {}
    for s in store.samples():
        known[s.path] = s
        f = store.ws.abs(s.path)
        if not f.exists():
            report.missing.append(s.id)
        elif sha256_bytes(f.read_bytes()) != s.sha256:
            report.corrupt.append(s.id)
    if store.ws.images_dir.exists():
        for f in sorted(store.ws.images_dir.rglob("*")):
            if f.is_file() and (f.name.startswith(TMP_PREFIX) or store.ws.rel(f) not in known):
                report.orphans.append(store.ws.rel(f))
                if fix:
                    f.unlink(missing_ok=True)
                    report.removed.append(store.ws.rel(f))
    return report

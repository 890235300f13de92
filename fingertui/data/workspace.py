"""The workspace: the one place every fingertui path comes from."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeAlias

from fingertui.errors import UnsafePath, UserError

ENV_HOME = "FINGERTUI_HOME"

# A value read back from the index or one of its JSON payloads, before it is checked: a
# shared workspace's index may have been crafted, so a "path" may be anything.
JsonValue: TypeAlias = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


@dataclass(frozen=True)
class Workspace:
    """A folder holding ``data/`` (images, checkpoints) and ``db/fingertui.db``."""

    root: Path

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None = None) -> Workspace:
        """``--home`` if given, else ``$FINGERTUI_HOME``, else the current directory."""
        chosen = home or os.environ.get(ENV_HOME) or os.getcwd()
        try:
            return cls(Path(chosen).expanduser().resolve())
        except (RuntimeError, OSError) as e:  # "~nouser/x": no such user to expand
            where = "--home" if home else f"${ENV_HOME}"
            raise UserError(f"{where} {str(chosen)!r} cannot be used as a folder ({e}); give a plain path") from None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def trash_dir(self) -> Path:
        """What was deleted, kept until ``doctor --empty-trash``: undo takes images back from here."""
        return self.data_dir / "trash"

    def trashed_image(self, stored: str) -> Path:
        """Where the image stored at ``stored`` waits once deleted: ``data/trash/<its name>``."""
        return self.trash_dir / PurePosixPath(stored).name

    @property
    def trashed_models_dir(self) -> Path:
        """Checkpoints no run records, set aside by ``doctor``."""
        return self.trash_dir / "models"

    @property
    def trashed_quarantine_dir(self) -> Path:
        """Quarantined files ``doctor --reindex`` could not index again (no image, a duplicate)."""
        return self.trash_dir / "quarantine"

    @property
    def quarantine_dir(self) -> Path:
        """Files ``doctor`` found unindexed: moved here with a manifest, never deleted."""
        return self.data_dir / "quarantine"

    def quarantine_batch(self, stamp: str) -> Path:
        """One ``doctor`` pass's quarantine: ``data/quarantine/<stamp>/``."""
        return self.quarantine_dir / stamp

    @property
    def backups_dir(self) -> Path:
        """Online backups of the index (outside ``db/``, so losing that folder spares them)."""
        return self.data_dir / "backups"

    @property
    def db_dir(self) -> Path:
        return self.root / "db"

    @property
    def db_path(self) -> Path:
        return self.db_dir / "fingertui.db"

    def replaced_index(self, stamp: str) -> Path:
        """Where ``doctor`` sets the index aside before putting a backup in its place."""
        return self.db_dir / f"{self.db_path.name}.replaced-{stamp}"

    @property
    def lock_path(self) -> Path:
        """The OS file lock one writer at a time holds."""
        return self.db_dir / "writer.lock"

    def checkpoint_path(self, name: str) -> Path:
        """A model checkpoint file: ``data/models/<name>``."""
        return self.models_dir / name

    def image_path(self, sha256: str, ext: str) -> Path:
        """Content-addressed location of an image: ``data/images/ab/<sha256>.<ext>``."""
        return self.images_dir / sha256[:2] / f"{sha256}.{ext}"

    def rel(self, path: Path) -> str:
        """A path relative to the workspace root, as stored in the database."""
        return path.relative_to(self.root).as_posix()

    def abs(self, rel: str) -> Path:
        """The file a stored path names. Every path read from the index (rows, journal,
        label events, runs) comes through here: one that is absolute, climbs out with
        ``..`` or resolves (through a link) outside ``data/`` is refused with
        :class:`UnsafePath` — a shared workspace's index may have been crafted."""
        why = self.unsafe(rel)
        if why:
            raise UnsafePath(
                f"stored path {str(rel)[:200]!r} is not inside the workspace's data/ folder ({why}); refused, "
                "nothing was touched (a damaged or crafted index: `fingertui doctor` lists such rows)"
            )
        return self.root / rel

    def unsafe(self, rel: JsonValue) -> str | None:
        """Why a stored path may not be used (see :meth:`abs`), else None."""
        if not isinstance(rel, str) or not rel or "\0" in rel:
            return "not a path"
        pure = PurePosixPath(rel)
        if pure.is_absolute():
            return "an absolute path"
        if ".." in pure.parts:
            return "it climbs out with '..'"
        if pure.parts[0] != "data":
            return "not under data/"
        try:
            real = (self.root / rel).resolve()
            inside = real.is_relative_to(self.data_dir.resolve())
        except (OSError, RuntimeError):  # a link loop, a name too long
            return "it cannot be resolved"
        return None if inside else "a link leads out of data/"

    def inside_data(self, path: Path) -> bool:
        """Whether a folder or file resolves (links followed) inside ``data/``."""
        try:
            return path.resolve().is_relative_to(self.data_dir.resolve())
        except (OSError, RuntimeError):
            return False

    def ensure(self) -> Workspace:
        """Create the folders on first use."""
        for d in (self.images_dir, self.models_dir, self.db_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

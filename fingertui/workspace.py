"""The workspace: the one place every fingertui path comes from."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_HOME = "FINGERTUI_HOME"


@dataclass(frozen=True)
class Workspace:
    """A folder holding ``data/`` (images, checkpoints) and ``db/fingertui.db``."""

    root: Path

    @classmethod
    def resolve(cls, home: str | os.PathLike[str] | None = None) -> Workspace:
        """``--home`` if given, else ``$FINGERTUI_HOME``, else the current directory."""
        chosen = home or os.environ.get(ENV_HOME) or os.getcwd()
        return cls(Path(chosen).expanduser().resolve())

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
        return self.data_dir / "trash"

    @property
    def quarantine_dir(self) -> Path:
        """Files ``doctor`` found unindexed: moved here with a manifest, never deleted."""
        return self.data_dir / "quarantine"

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

    @property
    def lock_path(self) -> Path:
        """The OS file lock one writer at a time holds."""
        return self.db_dir / "writer.lock"

    def image_path(self, sha256: str, ext: str) -> Path:
        """Content-addressed location of an image: ``data/images/ab/<sha256>.<ext>``."""
        return self.images_dir / sha256[:2] / f"{sha256}.{ext}"

    def rel(self, path: Path) -> str:
        """A path relative to the workspace root, as stored in the database."""
        return path.relative_to(self.root).as_posix()

    def abs(self, rel: str) -> Path:
        return self.root / rel

    def ensure(self) -> Workspace:
        """Create the folders on first use."""
        for d in (self.images_dir, self.models_dir, self.db_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

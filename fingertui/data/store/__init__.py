"""The dataset store: image files under ``data/images`` indexed in SQLite under ``db/``.

``samples.py`` holds the :class:`Store` (open, recover, add, label, delete, undo); its tables
are beside it (flags, runs, embeddings and landmarks), with the journal that makes every
write whole, the label history, the schema migrations and the backups."""

from fingertui.data.store.core import Sample
from fingertui.data.store.history import UNDOABLE
from fingertui.data.store.migrations import SCHEMA_VERSION
from fingertui.data.store.samples import (
    BACKUP_FAILED_KEY,
    SPLITS,
    AddResult,
    IndexUnusable,
    Store,
    has_images,
    recovery_advice,
)
from fingertui.data.store.util import TMP_PREFIX, atomic_write, now_iso, sha256_bytes

__all__ = [
    "BACKUP_FAILED_KEY",
    "SCHEMA_VERSION",
    "SPLITS",
    "TMP_PREFIX",
    "UNDOABLE",
    "AddResult",
    "IndexUnusable",
    "Sample",
    "Store",
    "atomic_write",
    "has_images",
    "now_iso",
    "recovery_advice",
    "sha256_bytes",
]

"""What the store's tables (flags, history, journal, runs, vectors) need of the store that
holds them, and the sample row they pass around. The tables are given the store as a
``StoreCore``, so none of them imports the package that imports them all."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import sqlite_utils

from fingertui.data.workspace import Workspace


@dataclass(frozen=True)
class Sample:
    id: int
    sha256: str
    path: str
    width: int
    height: int
    source: str
    origin: str | None
    session: str | None
    created: str
    label: int | None
    split: str | None
    group_key: str | None
    phash: str | None
    excluded: int = 0
    capture_run: int | None = None
    capture_pred: int | None = None
    capture_conf: float | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Sample:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})

    @property
    def origin_name(self) -> str:
        """Where the sample came from, as its user would name it: the imported file with its
        folder ("3/IMG_4509.JPG"), else "capture" with the time it was taken."""
        if self.origin and self.origin.startswith("quarantine:"):
            return f"reindexed {Path(self.origin.partition(':')[2]).name}"
        if self.origin:
            p = Path(self.origin)
            return f"{p.parent.name}/{p.name}" if p.parent.name else p.name
        try:  # stored in UTC; shown in the user's own time
            when = datetime.fromisoformat(self.created).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            when = self.created
        return f"{self.source} {when}"


class Flagging(Protocol):
    """The flags table, as the history moves and reopens flags with a sample."""

    def reopen(self, db: sqlite_utils.Database, ids: Sequence[int]) -> None: ...

    def move(self, db: sqlite_utils.Database, ids: Sequence[int], sample_id: int) -> None: ...


class Recording(Protocol):
    """The history, as the journal records a finished change in it."""

    def record(
        self,
        db: sqlite_utils.Database,
        sample_id: int,
        old: int | None,
        new: int | None,
        actor: str,
        reason: str | None,
        *,
        kind: str = "label",
        payload: dict | None = None,
    ) -> int: ...


class Holding(Protocol):
    """The writer lock: one process writes a workspace at a time."""

    def hold(self, wait: float | None = None) -> AbstractContextManager[None]: ...


class Journalling(Protocol):
    """The journal, as the history undoes a delete through it."""

    def step(self, op: str, payload: dict[str, Any]) -> AbstractContextManager[int]: ...

    def finish(self, db: Any, entry_id: int) -> None: ...


class StoreCore(Protocol):
    """The store as its tables see it: the database, its lock and transactions, samples by
    hash or id, and the row writes that keep the history and the journal in step."""

    @property
    def ws(self) -> Workspace: ...

    @property
    def db(self) -> sqlite_utils.Database: ...

    @property
    def lock(self) -> AbstractContextManager[Any]: ...

    @property
    def writer(self) -> Holding: ...

    @property
    def flags(self) -> Flagging: ...

    @property
    def history(self) -> Recording: ...

    @property
    def journal(self) -> Journalling: ...

    def backup(self, reason: str) -> Path | None: ...

    def remove_capture(self, sample_id: int) -> Sample: ...

    def transaction(self) -> AbstractContextManager[sqlite_utils.Database]: ...

    def by_sha(self, sha: str) -> Sample | None: ...

    def has(self, sample_id: int) -> bool: ...

    def _insert_row(self, db: sqlite_utils.Database, row: dict[str, Any]) -> int: ...

    def _write_label(self, db: sqlite_utils.Database, sample_id: int, label: int | None, split: str | None) -> None: ...

    def _write_excluded(self, db: sqlite_utils.Database, sample_id: int, excluded: bool) -> None: ...

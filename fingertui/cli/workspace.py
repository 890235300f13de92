"""The workspace a command works in: found from --home, opened on demand, closed (with its
warnings printed) when the command ends."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from fingertui.errors import UserError

if TYPE_CHECKING:  # the store loads with the first command that needs it
    from fingertui.data.store import Store
    from fingertui.data.workspace import Workspace

_OPENED: list[Store] = []


def workspace(args: argparse.Namespace) -> Workspace:
    """The workspace ``--home`` (else ``$FINGERTUI_HOME``, else the current folder) names."""
    from fingertui.data.workspace import Workspace

    return Workspace.resolve(args.home)


def has_workspace(args: argparse.Namespace) -> bool:
    """Whether the chosen folder holds a workspace already (an index, or data to recover)."""
    ws = workspace(args)
    return ws.db_path.exists() or ws.data_dir.exists()


def open_store(args: argparse.Namespace, create: bool = False) -> Store:
    """The workspace's store, closed when the command ends (:func:`close_stores`). Only
    commands that write (``create``) make a new workspace: a reading command run in the
    wrong folder says so instead of leaving an empty data/ and db/ there."""
    from fingertui.data.store import Store

    ws = workspace(args)
    if not create and not has_workspace(args):
        if ws.root.exists() and not ws.root.is_dir():
            raise UserError(f"{ws.root} is a file, not a workspace folder; pass a folder with --home")
        raise UserError(
            f"no fingertui workspace in {ws.root} (no db/ or data/ there); `fingertui import DIR` or the app "
            "(`fingertui`) creates one, or pass --home DIR / set FINGERTUI_HOME"
        )
    store = Store(ws)
    _OPENED.append(store)
    return store


def close_stores() -> None:
    """Close what the command opened. A store holds reference cycles, so without this its
    connection stays open until the garbage collector runs: a later command in the same
    process (the tests) could see the old database through it after the file was replaced."""
    while _OPENED:
        store = _OPENED.pop()
        for w in dict.fromkeys(store.warnings):  # e.g. a backup that failed: never silent
            print(f"fingertui: warning: {w}", file=sys.stderr)
        try:
            store.close()
        except Exception:  # closing must not hide the command's own result or error
            pass

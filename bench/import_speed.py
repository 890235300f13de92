"""Import speed: the 1,237 shared sign-digits photos into a fresh workspace.

Run: .venv/bin/python bench/import_speed.py [PATH]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from _results import record  # bench/_results.py: what this prints goes to bench/results/

from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sign-digits"


def main() -> int:
    record(__file__)
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if not src.is_dir():
        print(f"no dataset at {src}; pass a folder of labelled images")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Workspace(Path(tmp)))
        t0 = time.perf_counter()
        report = import_paths(store, [src])
        dt = time.perf_counter() - t0
        t1 = time.perf_counter()
        again = import_paths(store, [src])
        dt2 = time.perf_counter() - t1
    print(f"import {report.added} images: {dt:.2f} s, {report.added / dt:.0f} images/s")
    print(f"re-import (all duplicates, {again.duplicates}): {dt2:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Rebuild docs/screenshot.svg: the capture screen on a real photo, counted by the starter model.

Run from the checkout: PYTHONPATH=. .venv/bin/python docs/screenshot.py [PHOTO_FOLDER]
(default: ../shared/datasets/sign-digits/3). Nothing is written to the folder; the workspace is
a temporary one.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from fingertui.tui.app import make_app
from fingertui.tui.widgets.panels import PredictionPanel

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parent.parent / "shared" / "datasets" / "sign-digits" / "3"


async def main(photos: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(Path(tmp) / "my-hands", f"folder:{photos}")
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(1200):  # the starter loads, then the first photo is counted
                if app.screen.query(PredictionPanel) and app.screen.query_one(PredictionPanel).shown is not None:
                    break
                await pilot.pause(0.05)
            await pilot.pause(6.0)
            svg = app.export_screenshot(title="fingertui")
    # The temporary folder's name says nothing to a reader: show it as a home folder.
    (HERE / "screenshot.svg").write_text(svg.replace(str(Path(tmp).resolve()), "~"), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT))

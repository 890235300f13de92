"""Key-press latency of the app while a training run goes on in its background worker.

A fresh workspace holds 300 shared sign-digits photos (--images; so the training spends
a while embedding); the app is driven headless with Pilot on the demo source, training
is started with `t` (in a child process, the app's default, or a thread: --train-in),
and while it runs the `m` (mirror) key is pressed 20 times (--presses): the time from
the key press to the capture screen having handled it is measured.

Writes bench/results/tui_responsiveness-images<N>-presses<K>-<process|thread>.json.

Run: PYTHONPATH=. .venv/bin/python bench/tui_responsiveness.py [--images 300] [--presses 20] [--train-in process]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _results import record  # bench/_results.py: what this prints goes to bench/results/

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sign-digits"


async def run(home: Path, presses: int, train_in: str) -> tuple[list[float], bool]:
    from textual import events

    from fingertui.tui.app import make_app

    app = make_app(home, "demo", backbone="efficientnet-lite0", train_in=train_in)
    latencies = []
    async with app.run_test(size=(140, 42)) as pilot:
        await pilot.pause(1.0)
        await pilot.press("t")
        while not app.training:
            await pilot.pause(0.05)
        await pilot.pause(3.0)  # well into embedding
        screen = app.capture_screen
        for _ in range(presses):
            before = screen.framing.mirror
            t0 = time.perf_counter()
            # Post the key as the terminal driver would, then wait for its effect (pilot.press
            # would also wait for the whole screen to go idle, which is not what a user feels).
            app.post_message(events.Key("m", "m"))
            while screen.framing.mirror == before:
                await asyncio.sleep(0.001)
            latencies.append(time.perf_counter() - t0)
            await pilot.pause(0.2)
        still = app.training
        app.cancel_training()
        while app.training:
            await pilot.pause(0.1)
    return latencies, still


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--images",
        type=int,
        default=300,
        help="sign-digits photos in the workspace, every 4th (default 300, at most 310)",
    )
    ap.add_argument("--presses", type=int, default=20, help="`m` presses timed while training (default 20)")
    ap.add_argument("--train-in", choices=["process", "thread"], default="process", help="where the app trains")
    args = ap.parse_args()
    record(__file__, f"images{args.images}-presses{args.presses}-{args.train_in}")
    files = sorted(p for p in SHARED.rglob("*") if p.is_file())[::4][: args.images]
    if len(files) < args.images:
        print(f"only {len(files)} photos (every 4th under {SHARED}): fewer than --images {args.images}")
        return 2
    from fingertui.data.importer import import_paths
    from fingertui.data.store import Store
    from fingertui.data.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        for f in files:
            (src / f.parent.name).mkdir(parents=True, exist_ok=True)
            (src / f.parent.name / f.name).symlink_to(f)
        import_paths(Store(Workspace(Path(tmp) / "ws")), [src])
        lat, still = asyncio.run(run(Path(tmp) / "ws", args.presses, args.train_in))
    ms = sorted(1000 * x for x in lat)
    print(
        f"{len(files)} photos, training in a {args.train_in}; "
        f"key press handled while training: median {statistics.median(ms):.0f} ms, max {ms[-1]:.0f} ms over {len(ms)} presses"
        + ("" if still else " (training had finished before the last press)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

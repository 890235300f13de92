"""Capture screen speed in a real terminal (tmux): screen refreshes and predictions per
second with the demo source and a trained efficientnet-lite0 model, idle and while a
training run goes on in another process; and start-up time to the first drawn frame.

The app measures its own rates (the status line under the camera); this script starts it
in tmux, reads that line, then runs `fingertui train` beside it and reads it again.

Run: .venv/bin/python bench/tui_fps.py --home WORKSPACE   (a workspace with a trained run)
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXE = str(ROOT / ".venv" / "bin" / "fingertui")


def status(session: str) -> tuple[float, float]:
    out = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
    fps = re.search(r"([\d.]+) fps", out)
    pps = re.search(r"([\d.]+) predictions/s", out)
    return (float(fps.group(1)) if fps else 0.0, float(pps.group(1)) if pps else 0.0)


def sample(session: str, seconds: float) -> tuple[float, float]:
    readings = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(1.0)
        readings.append(status(session))
    fps = sorted(r[0] for r in readings)[len(readings) // 2]
    pps = sorted(r[1] for r in readings)[len(readings) // 2]
    return fps, pps


def startup_seconds(home: str) -> float:
    code = (
        "import asyncio, time\n"
        "t0 = time.monotonic()\n"
        "from fingertui.tui.app import make_app\n"
        f"app = make_app({home!r}, 'demo')\n"
        "async def go():\n"
        "    async with app.run_test(size=(140, 42)) as pilot:\n"
        "        while app.first_frame_s is None:\n"
        "            await pilot.pause(0.02)\n"
        "    print(time.monotonic() - t0)\n"
        "asyncio.run(go())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--seconds", type=float, default=12)
    args = ap.parse_args()
    if not shutil.which("tmux"):
        print("tmux is needed: apt-get install tmux")
        return 2
    session = "fingertui-bench"
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    subprocess.run(
        ["tmux", "new", "-d", "-s", session, "-x", "140", "-y", "42", f"{EXE} --home {args.home} --source demo"],
        check=True,
    )
    try:
        time.sleep(8)  # model load and warm-up
        idle = sample(session, args.seconds)
        train = subprocess.Popen(
            [EXE, "--home", args.home, "train", "--backbone", "efficientnet-lite0", "--json"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(2)
        busy = sample(session, args.seconds)
        still_training = train.poll() is None
        train.wait()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    first = startup_seconds(args.home)
    print(
        f"idle: screen {idle[0]:.1f} fps, {idle[1]:.1f} predictions/s (median of 1 s readings over {args.seconds:.0f} s)"
    )
    print(
        f"while `fingertui train` runs beside it: screen {busy[0]:.1f} fps, {busy[1]:.1f} predictions/s"
        + ("" if still_training else " (the training ended before the sampling did)")
    )
    print(f"start-up to first drawn frame (headless, imports included): {first:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

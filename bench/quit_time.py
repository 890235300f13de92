"""How long `q` takes to end `fingertui --source demo`, in a real terminal (a pty, 160×48).

Two moments: once the model has loaded ("starter model" on screen), and while it still
loads ("no model yet" on screen: the worker is importing torch). Measured from writing
`q` to the process's exit. `--repo PATH` (repeatable) times other checkouts too, e.g. the
code before a change. Writes bench/results/quit_time.json.
Run: .venv/bin/python bench/quit_time.py [--tries 3] [--repo PATH ...]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import record  # noqa: E402  bench/_results.py: what this prints goes to bench/results/

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def quit_after(repo: Path, marker: bytes, timeout: float = 180.0) -> float:
    """Start the app, wait for ``marker`` on screen, press q; seconds from q to exit."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "FINGERTUI_HOME": home, "PYTHONPATH": str(repo)}
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 48, 160, 0, 0))
        proc = subprocess.Popen(
            [sys.executable, "-m", "fingertui", "--source", "demo"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=repo,
            start_new_session=True,
        )
        os.close(slave)
        seen = threading.Event()
        screen = bytearray()

        def drain() -> None:
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                screen.extend(ANSI.sub(b"", chunk))
                if marker in screen:
                    seen.set()
                del screen[:-4096]

        threading.Thread(target=drain, daemon=True).start()
        try:
            if not seen.wait(timeout):
                raise RuntimeError(f"{marker!r} never appeared")
            os.write(master, b"q")
            t0 = time.monotonic()
            proc.wait(120)
            return time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
            os.close(master)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tries", type=int, default=3)
    ap.add_argument("--repo", type=Path, action="append", help="checkout to time (default: this one)")
    args = ap.parse_args()
    record(__file__)
    for repo in [r.resolve() for r in args.repo or [ROOT]]:
        print(f"checkout {repo}")
        for what, marker in (("model loaded", b"starter model"), ("model still loading", b"no model yet")):
            times = [quit_after(repo, marker) for _ in range(args.tries)]
            each = ", ".join(f"{t:.2f}" for t in times)
            print(f"  q with the {what}: median {statistics.median(times):.2f} s (each: {each} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

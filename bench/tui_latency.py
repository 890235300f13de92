"""Key-to-screen latency of the real app in a terminal, idle and while it trains on many
new real photos.

A fresh workspace gets ``--images`` shared photos (sign-digits and hagrid-rooms, never seen
by this workspace: every one is hand-searched and embedded by the run). The app runs as a
user starts it, ``python -m fingertui --source folder:<hagrid-rooms frames>``, on a
pseudo-terminal (160×48) with Textual's real terminal driver. Latency is what a user
feels: from writing a key to the terminal until the screen's answer to it has been read
back from the terminal:

- ``m`` (mirror): until the status line says the new state ("mirror off" / "mirror on");
- ``?``: until the help screen's text arrives (then ``?`` closes it, untimed).

Idle first (the live view running), then ``t`` and the same keys every ``--gap`` seconds
until the run has finished (its results screen is on show) or ``--max-s`` passed.

Run: .venv/bin/python bench/tui_latency.py [--images 300] [--train-in process|thread]
Writes bench/results/tui_latency-images<N>-<train-in>[-<tag>].json (named by its arguments).
"""

from __future__ import annotations

import argparse
import fcntl
import json
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

KEY_TIMEOUT = 60.0  # a key with no answer after this long counts as this long
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
RESULTS = ROOT / "bench" / "results"
# Between two words on screen: blanks, SGR styles and cursor moves (a wrapped line).
GAP = rb"(?:[ \r\n]|\x1b\[[0-9;?]*[A-Za-z])+"
DONE_TEXT = b"results of run"  # the results screen's title: the run is over
HELP_TEXT = b"opens the command palette"  # the help box's last line


class Terminal:
    """The app on a pty; every chunk it draws is kept with the time it was read."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 48, 160, 0, 0))
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, start_new_session=True
        )
        os.close(slave)
        self.master = master
        self.buf = bytearray()
        self.cond = threading.Condition()
        self._seen_at: dict[bytes, int] = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 1 << 16)
            except OSError:
                chunk = b""
            with self.cond:
                if not chunk:
                    self.cond.notify_all()
                    return
                self.buf += chunk
                self.cond.notify_all()

    def mark(self) -> int:
        with self.cond:
            return len(self.buf)

    def wait_for(self, needle: bytes, start: int, timeout: float, unless: bytes | None = None) -> float | None:
        """Seconds until ``needle`` appears after byte ``start`` (None: it did not, or
        ``unless`` appeared first). Words of the needle may be apart on screen: a line
        wrapped between them puts cursor moves and blanks there, which match too."""

        def words(text: bytes) -> bytes:
            return GAP.join(re.escape(w) for w in text.split(b" "))

        pattern = re.compile(words(needle) + (b"|(" + words(unless) + b")" if unless else b""))
        t0 = time.perf_counter()
        deadline = t0 + timeout
        at = start  # searched up to here: each new chunk is searched once (the app draws MBs)
        with self.cond:
            while True:
                # A needle split across two reads is found once both are in.
                found = pattern.search(self.buf, max(start, at - 4 * len(needle)))
                if found:
                    return None if unless and found.group(1) else time.perf_counter() - t0
                at = len(self.buf)
                left = deadline - time.perf_counter()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self.cond.wait(left)

    def key(self, data: bytes, needle: bytes, timeout: float = KEY_TIMEOUT) -> float | None:
        """Seconds from writing ``data`` until ``needle`` arrived; None when it did not, or
        the run ended first (the results screen took the key)."""
        start = self.mark()
        t0 = time.perf_counter()
        os.write(self.master, data)
        got = self.wait_for(needle, start, timeout, unless=DONE_TEXT)
        return None if got is None else time.perf_counter() - t0

    def seen(self, needle: bytes, start: int = 0) -> bool:
        """Whether ``needle`` arrived after byte ``start`` (searched incrementally)."""
        with self.cond:
            if self._seen_at.get(needle) == -1:
                return True
            at = max(start, self._seen_at.get(needle, start) - len(needle))
            found = self.buf.find(needle, at) >= 0
            self._seen_at[needle] = -1 if found else len(self.buf)
            return found

    def close(self) -> None:
        if self.proc.poll() is None:
            os.write(self.master, b"q")
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        os.close(self.master)


def photos(n: int) -> list[Path]:
    """``n`` real photos, labelled by their folder: sign-digits and hagrid-rooms mixed."""
    pools = [sorted((SHARED / "hagrid-rooms" / "hands").rglob("*.jpg"))]
    pools.append(sorted(p for p in (SHARED / "sign-digits").rglob("*") if p.suffix.lower() in (".jpg", ".png")))
    out: list[Path] = []
    take = min(n // 3, len(pools[0]))
    out += pools[0][:: max(1, len(pools[0]) // max(1, take))][:take]
    rest = pools[1]
    out += rest[:: max(1, len(rest) // max(1, n - len(out)))][: n - len(out)]
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def summary(name: str, xs: list[float]) -> dict:
    if not xs:
        return {"keys": 0}
    ms = [1000 * x for x in xs]
    out = {
        "keys": len(ms),
        "median_ms": round(statistics.median(ms), 1),
        "p95_ms": round(pct(ms, 0.95), 1),
        "p99_ms": round(pct(ms, 0.99), 1),
        "max_ms": round(max(ms), 1),
        "over_100ms": sum(1 for x in ms if x > 100),
    }
    print(
        f"{name}: {out['keys']} keys, median {out['median_ms']:.0f} ms, p95 {out['p95_ms']:.0f} ms, "
        f"p99 {out['p99_ms']:.0f} ms, max {out['max_ms']:.0f} ms, {out['over_100ms']} over 100 ms"
    )
    return out


TIMELINE: list[tuple[float, str, float | None]] = []  # (s since t, key, latency) while training
T0 = [0.0]
TRAIN_START = [0]  # the terminal's byte count when t was pressed


def press_round(term: Terminal, mirror: list[bool], lat: dict[str, list[float]], failed: list[str]) -> None:
    """m, then ? twice (help opens, closes): one round of keys. A key the results screen
    took (the run ended meanwhile) is not counted."""
    for key, needle in ((b"m", b"mirror off" if mirror[0] else b"mirror on"), (b"?", HELP_TEXT)):
        at = time.perf_counter() - T0[0]
        got = term.key(key, needle)
        if got is None and term.seen(DONE_TEXT, TRAIN_START[0]):
            return
        if key == b"m":
            mirror[0] = not mirror[0]
        name = key.decode()
        TIMELINE.append((round(at, 2), name, None if got is None else round(1000 * got, 1)))
        lat[name].append(KEY_TIMEOUT if got is None else got)  # no answer counts as the whole wait
        if got is None:
            failed.append(name)
    # Closing is not timed on its own (the capture screen keeps drawing around the help
    # box, so no text marks the moment it closed); a late close shows in the next m. ? closes
    # it, not esc: an esc still unread when the next m arrives is read as alt+m.
    os.write(term.master, b"?")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300, help="new real photos in the workspace (default 300)")
    ap.add_argument("--train-in", choices=["process", "thread"], default="process", help="FINGERTUI_TRAIN_IN")
    ap.add_argument("--gap", type=float, default=0.4, help="seconds between rounds of keys while training")
    ap.add_argument("--idle-rounds", type=int, default=10)
    ap.add_argument("--max-s", type=float, default=400.0, help="stop pressing after this long")
    ap.add_argument("--tag", default="", help="added to the result file's name (e.g. what else loads the machine)")
    args = ap.parse_args()
    files = photos(args.images)
    if len(files) < args.images:
        print(f"only {len(files)} photos under {SHARED}: this bench needs the shared datasets")
        return 2
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="fingertui-latency-") as tmp:
        src = Path(tmp) / "src"
        for i, f in enumerate(files):
            d = src / f.parent.name
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{i:04d}{f.suffix}").symlink_to(f)
        home = Path(tmp) / "ws"
        env = {**os.environ, "FINGERTUI_HOME": str(home), "FINGERTUI_TRAIN_IN": args.train_in}
        env["PYTHONPATH"] = str(ROOT)
        subprocess.run(
            [sys.executable, "-m", "fingertui", "import", str(src)], env=env, check=True, capture_output=True
        )
        frames = SHARED / "hagrid-rooms" / "frames"
        term = Terminal([sys.executable, "-m", "fingertui", "--source", f"folder:{frames}"], env)
        lat_idle: dict[str, list[float]] = {"m": [], "?": []}
        lat_train: dict[str, list[float]] = {"m": [], "?": []}
        failed: list[str] = []
        mirror = [True]
        result: dict = {}
        try:
            if term.wait_for(b"predictions/s", 0, 180) is None:
                print("the app never started predicting")
                return 1
            time.sleep(3.0)
            for _ in range(args.idle_rounds):
                press_round(term, mirror, lat_idle, failed)
                time.sleep(args.gap)
            start = term.mark()
            t0 = time.perf_counter()
            TIMELINE.clear()
            T0[0] = t0
            TRAIN_START[0] = start
            os.write(term.master, b"t")
            # The run is over when its results screen opens.
            while time.perf_counter() - t0 < args.max_s and not term.seen(DONE_TEXT, start):
                press_round(term, mirror, lat_train, failed)
                time.sleep(args.gap)
            train_s = time.perf_counter() - t0
            finished = term.seen(DONE_TEXT, start)
        finally:
            term.close()
    load_after = os.getloadavg()
    print(
        f"{args.images} new photos, training in a {args.train_in}; run {'finished' if finished else 'still going'} "
        f"after {train_s:.0f} s; load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        f"({os.cpu_count()} cpus)"
    )
    result["idle"] = {k: summary(f"idle {k}", v) for k, v in lat_idle.items()}
    result["training"] = {k: summary(f"training {k}", v) for k, v in lat_train.items()}
    every = [x for v in lat_train.values() for x in v]
    result["training_all"] = summary("training, every key", every)
    result.update(
        images=args.images,
        train_in=args.train_in,
        train_s=round(train_s, 1),
        finished=finished,
        unanswered=failed,
        timeline=TIMELINE,
        loadavg_before=load_before,
        loadavg_after=load_after,
        cpus=os.cpu_count(),
        argv=sys.argv[1:],
        when=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    if failed:
        print(f"keys with no answer within {KEY_TIMEOUT:.0f} s (counted as {KEY_TIMEOUT:.0f} s): {failed}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"tui_latency-images{args.images}-{args.train_in}{'-' + args.tag if args.tag else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

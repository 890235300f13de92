"""Peak memory (RSS) of import, predict and train: on a 12000×12000 all-black PNG, and on
N normal images (default 5,000 copies of the shared photos, each made unique).

Each command runs as its own process; its peak RSS comes from ``os.wait4``. Writes
bench/results/memory.csv. Run: ``python bench/memory.py [--n 5000] [--skip-train]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets" / "sign-digits"
OUT = ROOT / "bench" / "results" / "memory.csv"


def peak(home: Path, *args: str) -> tuple[float, float, int]:
    """(peak RSS in MB, seconds, exit code) of one fingertui command."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fingertui", "--home", str(home), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode()[-300:] if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code:
        print(f"  {' '.join(args[:2])}: exit {code}: {err.strip().splitlines()[-1] if err.strip() else ''}")
    return usage.ru_maxrss / 1024, time.perf_counter() - t0, code


def normal_images(dest: Path, n: int) -> Path:
    """n distinct small photos: the shared ones, each with one pixel changed per copy."""
    found = sorted(p for p in SHARED.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    by_label: dict[str, list[Path]] = {}
    for p in found:
        by_label.setdefault(p.parent.name, []).append(p)
    # Round-robin over the labels, so any prefix has every class.
    photos = [p for group in zip(*by_label.values(), strict=False) for p in group]
    for k in range(n):
        src = photos[k % len(photos)]
        label = src.parent.name
        arr = np.array(Image.open(src).convert("RGB"))
        arr[0, 0] = [k % 256, (k // 256) % 256, 7]
        out = dest / label / f"{k}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(out)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--only", choices=["big", "normal"], help="run one half")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = tmp / "big" / "1" / "black.png"
        big.parent.mkdir(parents=True)
        Image.new("RGB", (12000, 12000)).save(big)
        print(f"12000×12000 PNG: {big.stat().st_size / 1024:.0f} KB")
        small = normal_images(tmp / "normal", args.n) if args.only != "big" else tmp

        home = tmp / "ws-big"
        # A little real data beside the big image so there is something to train on.
        if args.only != "normal":
            peak(home, "import", str(normal_images(tmp / "few", 60)))
        for name, cmd in (
            []
            if args.only == "normal"
            else [
                ("import", ["import", str(tmp / "big")]),
                ("train", ["train", "--backbone", "efficientnet-lite0", "--views", "1"]),
                ("predict", ["predict", str(big)]),
            ]
        ):
            if name == "train" and args.skip_train:
                continue
            mb, s, code = peak(home, *cmd)
            rows.append(("12000x12000 png", name, round(mb), round(s, 1), code))
            print(rows[-1])

        home = tmp / "ws-normal"
        some = [str(p) for p in sorted(small.rglob("*.png"))[:50]]
        for name, cmd in (
            []
            if args.only == "big"
            else [
                ("import", ["import", str(small)]),
                ("train", ["train", "--backbone", "efficientnet-lite0", "--views", "0"]),
                ("predict", ["predict", *some]),
            ]
        ):
            if name == "train" and args.skip_train:
                continue
            mb, s, code = peak(home, *cmd)
            label = f"{args.n} normal images" if name != "predict" else "50 of the normal images"
            rows.append((label, name, round(mb), round(s, 1), code))
            print(rows[-1])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    new = not OUT.exists()
    with open(OUT, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["input", "command", "peak_rss_mb", "seconds", "exit"])
        w.writerows(rows)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

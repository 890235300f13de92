"""Peak memory of `fingertui train` on 5,000 images.

The shared set has 1,237 photos; 5,000 distinct images are made from them (each photo
plus re-encoded copies with a small crop and brightness change), imported, and then
`fingertui train --backbone efficientnet-lite0` runs in a child process whose peak
resident memory is read from the kernel (ru_maxrss).

Run: .venv/bin/python bench/train_memory.py   (takes several minutes: 13,000 embeddings)
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import record  # bench/_results.py: what this prints goes to bench/results/
from PIL import Image, ImageEnhance

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sign-digits"
N = 5000


def main() -> int:
    record(__file__)
    files = sorted(p for p in SHARED.rglob("*") if p.is_file())
    if not files:
        print(f"no dataset at {SHARED}")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        for i in range(N):
            f = files[i % len(files)]
            k = i // len(files)
            img = Image.open(f).convert("RGB")
            if k:
                img = img.crop((k, k, img.width - k, img.height - k)).resize(img.size)
                img = ImageEnhance.Brightness(img).enhance(1 + 0.04 * k)
            dest = src / f.parent.name / f"{f.stem}_{k}.png"
            dest.parent.mkdir(parents=True, exist_ok=True)
            img.save(dest)
        home = Path(tmp) / "ws"
        exe = [sys.executable, "-m", "fingertui", "--home", str(home)]
        subprocess.run([*exe, "import", str(src)], check=True, capture_output=True)
        t0 = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        subprocess.run([*exe, "train", "--backbone", "efficientnet-lite0", "--json"], check=True, capture_output=True)
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        dt = time.perf_counter() - t0
    print(
        f"fingertui train on {N} images (efficientnet-lite0, cold cache): {dt:.0f} s, peak RSS {peak_kib / 1024:.0f} MiB"
    )
    if before >= peak_kib:
        print("(peak may belong to the import step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

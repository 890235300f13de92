"""How often the hand is found, on every set we have, as `fingertui predict` finds it
(whole picture, zoomed out, then tiles): sign-digits, hagrid-rooms frames and hand crops,
and hagrid-rooms frames darkened to a quarter of their brightness (a dim room).

Writes bench/results/hand_found.json. Run: .venv/bin/python bench/hand_found.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"
OUT = ROOT / "bench" / "results"


def found(home: Path, paths: list[Path]) -> dict:
    cmd = [sys.executable, "-m", "fingertui", "--home", str(home), "predict", *map(str, paths), "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if p.returncode != 0:
        raise SystemExit(p.stderr[-400:])
    preds = json.loads(p.stdout)["predictions"]
    hit = np.array([bool(x["hand_found"]) for x in preds])
    reasons: dict[str, int] = {}
    for x in preds:
        if not x["hand_found"]:
            why = x["note"].partition("(")[2].rstrip(")") or x["note"]
            reasons[why] = reasons.get(why, 0) + 1
    return {"n": len(preds), "found": float(hit.mean()), "reasons": reasons}


def main() -> int:
    if not DATA.is_dir():
        print(f"no datasets at {DATA}")
        return 2
    rows = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        sets = {
            "sign-digits": sorted((DATA / "sign-digits").rglob("*.JPG"))
            + sorted((DATA / "sign-digits").rglob("*.jpg")),
            "hagrid-rooms/frames": sorted((DATA / "hagrid-rooms" / "frames").rglob("*.jpg")),
            "hagrid-rooms/hands": sorted((DATA / "hagrid-rooms" / "hands").rglob("*.jpg")),
        }
        dark = []
        for p in sets["hagrid-rooms/frames"]:
            d = tmp / "dark" / p.parent.name / p.name
            d.parent.mkdir(parents=True, exist_ok=True)
            a = np.asarray(Image.open(p).convert("RGB")).astype(np.float32) * 0.25
            Image.fromarray(a.astype(np.uint8)).save(d)
            dark.append(d)
        sets["hagrid-rooms/frames at 1/4 brightness"] = dark
        for name, paths in sets.items():
            rows[name] = found(tmp / "empty", paths)
            print(name, json.dumps(rows[name]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "hand_found.json"
    path.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "sets": rows}, indent=1) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

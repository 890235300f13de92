"""A user's first `fingertui train` on all of sign-digits from a cold cache, as a whole
process, for the image features alone and with hand pose (both); then a retrain after 20
new images (whole process again). Writes bench/results/first_train.json.

Run: .venv/bin/python bench/first_train.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "sign-digits"
OUT = ROOT / "bench" / "results"


def timed(*args: str, env: dict | None = None) -> tuple[float, dict]:
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "fingertui", *args, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    secs = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(p.stderr[-400:])
    return secs, json.loads(p.stdout)


def main() -> int:
    if not DATA.is_dir():
        print(f"no photos at {DATA}")
        return 2
    result = {"load_avg_before": os.getloadavg(), "cores": os.cpu_count()}
    for feats in ("image", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            src, ws = Path(tmp) / "src", str(Path(tmp) / "ws")
            # Hold back 20 photos (of class 2) for the retrain.
            shutil.copytree(DATA, src)
            later = sorted((src / "2").iterdir())[:20]
            held = Path(tmp) / "later" / "2"
            held.mkdir(parents=True)
            for p in later:
                shutil.move(p, held / p.name)
            timed("--home", ws, "import", str(src))
            secs, out = timed("--home", ws, "train", "--backbone", "efficientnet-lite0", "--features", feats)
            timed("--home", ws, "import", str(held.parent))
            resecs, re_out = timed("--home", ws, "train", "--backbone", "efficientnet-lite0", "--features", feats)
            result[feats] = {
                "first_train_s": round(secs, 1),
                "pipeline_s": out["metrics"]["duration_s"],
                "features_s": out["metrics"].get("features_s"),
                "load_avg": [round(x, 2) for x in os.getloadavg()],
                "test_accuracy": out["metrics"]["test"]["accuracy"],
                "engine": out["metrics"].get("engine"),
                "retrain_after_20_s": round(resecs, 1),
                "retrain_pipeline_s": re_out["metrics"]["duration_s"],
                # Seconds per phase of the pipeline (the rest of a whole process is start-up:
                # imports, opening the store, printing).
                "first_phases": out["metrics"].get("phases", {}).get("seconds"),
                "retrain_phases": re_out["metrics"].get("phases", {}).get("seconds"),
            }
            print(feats, json.dumps(result[feats]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        ws = str(Path(tmp) / "ws")
        timed("--home", ws, "import", str(DATA))
        env = {"FINGERTUI_CACHE": str(Path(tmp) / "engine-cache")}  # never exported here
        secs, out = timed("--home", ws, "train", "--backbone", "efficientnet-lite0", "--features", "image", env=env)
        result["image_first_export"] = {
            "first_train_s": round(secs, 1),
            "pipeline_s": out["metrics"]["duration_s"],
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        }
        print("image, first export", json.dumps(result["image_first_export"]), flush=True)
    result["load_avg_after"] = os.getloadavg()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "first_train.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

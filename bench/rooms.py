"""Counting in rooms fingertui has never seen: image vs pose vs both, through the CLI.

1. hagrid-rooms 5-fold cross-validation (stratified, seeded): for each fold a fresh
   workspace imports the other four folds as ``train/`` and the fold as ``test/``, then
   ``fingertui train --features image|pose|both`` (one workspace per fold, so the three
   share the caches) and the run's test accuracy is read from ``train --json``. Done on
   ``frames`` (whole photos, hand often small) and ``hands`` (150 px crops).
2. Transfer with no data from the rooms: train on all of sign-digits, then
   ``fingertui eval DIR`` on hagrid-rooms classes 1–5 (its 0 is a fist, sign-digits' an O).
   And the shipped starter with no labels at all (``fingertui predict`` in an empty
   workspace), all classes.
3. sign-digits itself: import (its frozen ~20 % test split), train, test accuracy and
   class-2 recall.

Writes bench/results/rooms.json and rooms.csv. Run:
    .venv/bin/python bench/rooms.py [--only cv|transfer|signdigits] [--folds 5]
"""

from __future__ import annotations

import argparse
import csv
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
FEATURES = ("image", "pose", "both")
BACKBONE = "efficientnet-lite0"


def cli(*args: str) -> dict:
    """Run fingertui as a user would (a whole process) and parse its JSON."""
    cmd = [sys.executable, "-m", "fingertui", *args, "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({p.returncode}): {p.stderr.strip()[-400:]}")
    return json.loads(p.stdout)


def files_by_label(root: Path, labels: range = range(6)) -> dict[int, list[Path]]:
    return {c: sorted(p for p in (root / str(c)).iterdir() if p.is_file()) for c in labels}


def link_tree(dest: Path, split: str, items: list[tuple[int, Path]]) -> None:
    for label, p in items:
        d = dest / split / str(label)
        d.mkdir(parents=True, exist_ok=True)
        os.symlink(p, d / p.name)


def cross_validate(name: str, folds: int) -> list[dict]:
    from sklearn.model_selection import StratifiedKFold

    by = files_by_label(DATA / "hagrid-rooms" / name)
    items = [(c, p) for c, ps in by.items() for p in ps]
    y = np.array([c for c, _ in items])
    rows = []
    for k, (tr, te) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=0).split(np.zeros(len(y)), y)):
        with tempfile.TemporaryDirectory() as tmp:
            src, ws = Path(tmp) / "src", Path(tmp) / "ws"
            link_tree(src, "train", [items[i] for i in tr])
            link_tree(src, "test", [items[i] for i in te])
            cli("--home", str(ws), "import", str(src))
            for feats in FEATURES:
                t0 = time.perf_counter()
                out = cli("--home", str(ws), "train", "--backbone", BACKBONE, "--features", feats)
                m = out["metrics"]
                row = {
                    "set": name,
                    "fold": k,
                    "features": feats,
                    "features_used": m["features"],
                    "n_test": m["test"]["n"],
                    "correct": round(m["test"]["accuracy"] * m["test"]["n"]),
                    "accuracy": m["test"]["accuracy"],
                    "recall_2": m["test"]["per_class"].get("2", {}).get("recall"),
                    "hands_found_test": (m.get("hands_found") or {}).get("test"),
                    "pooling": m.get("pooling"),
                    "train_s": round(time.perf_counter() - t0, 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def transfer() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        cli("--home", str(ws), "import", str(DATA / "sign-digits"))
        for name in ("frames", "hands"):
            d = Path(tmp) / f"hagrid-{name}-1to5"
            for c in range(1, 6):
                shutil.copytree(DATA / "hagrid-rooms" / name / str(c), d / str(c), symlinks=True)
        for feats in FEATURES:
            t0 = time.perf_counter()
            out = cli("--home", str(ws), "train", "--backbone", BACKBONE, "--features", feats)
            secs = round(time.perf_counter() - t0, 1)
            for name in ("frames", "hands"):
                ev = cli("--home", str(ws), "eval", str(Path(tmp) / f"hagrid-{name}-1to5"))["metrics"]
                row = {
                    "trained_on": "sign-digits (all)",
                    "scored_on": f"hagrid-rooms/{name} classes 1-5",
                    "features": feats,
                    "features_used": out["metrics"]["features"],
                    "n": ev["n"],
                    "accuracy": ev["accuracy"],
                    "sign_digits_test_accuracy": out["metrics"]["test"]["accuracy"],
                    "train_s": secs,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def sign_digits() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        cli("--home", str(ws), "import", str(DATA / "sign-digits"))
        for feats in FEATURES:
            m = cli("--home", str(ws), "train", "--backbone", BACKBONE, "--features", feats)["metrics"]
            row = {
                "set": "sign-digits",
                "features": feats,
                "features_used": m["features"],
                "n_test": m["test"]["n"],
                "accuracy": m["test"]["accuracy"],
                "recall_2": m["test"]["per_class"]["2"]["recall"],
                "hands_found": m.get("hands_found"),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def starter() -> list[dict]:
    """The shipped starter model with no labels at all, as a user meets it: `fingertui
    predict` in an empty workspace (hand search with tiles, the finger head)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("frames", "hands"):
            by = files_by_label(DATA / "hagrid-rooms" / name)
            paths = [p for ps in by.values() for p in ps]
            y = np.array([c for c, ps in by.items() for _ in ps])
            out = cli("--home", str(Path(tmp) / "ws"), "predict", *map(str, paths))
            pred = np.array([-1 if p["label"] is None else p["label"] for p in out["predictions"]])
            found = np.array([bool(p["hand_found"]) for p in out["predictions"]])
            row = {
                "model": out["model"],
                "scored_on": f"hagrid-rooms/{name}",
                "n": len(y),
                "accuracy_0to5": float((pred == y).mean()),
                "accuracy_1to5": float((pred == y)[y > 0].mean()),
                "hand_found": float(found.mean()),
                "accuracy_where_hand_found": float((pred == y)[found].mean()),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["cv", "transfer", "signdigits", "starter"])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--sets", nargs="+", default=["frames", "hands"])
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"no datasets at {DATA}")
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "rooms.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    if args.only in (None, "cv"):
        # A set not rerun keeps its rows from the last run (--sets frames leaves hands alone).
        kept = [r for r in result.get("cv", {}).get("rows", []) if r["set"] not in args.sets]
        cv = kept + [r for s in args.sets for r in cross_validate(s, args.folds)]
        summary = {}
        for s in dict.fromkeys(r["set"] for r in cv):
            for f in FEATURES:
                rs = [r for r in cv if r["set"] == s and r["features"] == f]
                summary[f"{s}/{f}"] = sum(r["correct"] for r in rs) / sum(r["n_test"] for r in rs)
        result["cv"] = {"folds": args.folds, "accuracy": summary, "rows": cv}
        with open(OUT / "rooms_cv.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(cv[0]))
            w.writeheader()
            w.writerows(cv)
        print("cross-validated accuracy:", json.dumps(summary, indent=1))
    if args.only in (None, "transfer"):
        result["transfer"] = transfer()
    if args.only in (None, "starter"):
        result["starter"] = starter()
    if args.only in (None, "signdigits"):
        result["sign_digits"] = sign_digits()
    result["machine"] = {"cores": os.cpu_count(), "load_avg_at_end": os.getloadavg()}
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

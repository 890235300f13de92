"""Flicker and delay of the live count, before (the raw per-frame count) and after the
steady count (fingertui/live/steady.py), on clips made from real photos.

A model is trained (features both, efficientnet-lite0) in a temporary workspace on half of
the hagrid-rooms frames (every other photo of each class) and sign-digits (--digits photos
a class), or (``--train digits``) on sign-digits alone. Clips are made from the other half of the hagrid-rooms frames, which the model
has not seen:

- a *constant-hand* clip: one photo repeated --frames times, each frame jittered
  independently (shift up to ±2 % of the side, scale ±3 %, brightness ±6 %, pixel noise
  σ = 2), as a hand held still in front of a webcam;
- a *change* clip: a photo of one count (--frames // 2 frames), then one of another
  count (--frames frames), the tracker running on through the cut.

Each frame goes through the live view's steps as `FingerApp.live_loop` does them: the
tracker (MediaPipe in tracking mode), the square around the hand (the whole frame when
none), the model on that square with the tracked hand given. Figures at a nominal
25 predictions/s (the live view's floor):

- flicker: changes of the shown count per second on constant-hand clips (after the first
  count shown; to or from "no hand" counts as a change);
- delay: frames (and ms at 25/s) from the cut until the shown count first equals the new
  photo's label, over the change clips where the raw count's majority in the second half
  of the new photo is that label (the model can count it).

The steady count is scored with its defaults and a few other settings (the per-frame
predictions are made once). Writes bench/results/flicker-<args>.json.
Run: .venv/bin/python bench/flicker.py [--photos 8] [--frames 40] [--digits 20] [--seed 0]
[--train rooms+digits|digits]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"
FRAMES = DATA / "hagrid-rooms" / "frames"
DIGITS = DATA / "sign-digits"
OUT = ROOT / "bench" / "results"
FPS = 25.0
# Other steady settings scored besides the defaults (alpha, margin, frames).
GRID = [(0.3, 0.1, 2), (0.5, 0.1, 2), (0.5, 0.15, 3), (0.6, 0.2, 2), (0.4, 0.15, 3), (0.3, 0.15, 4)]


def jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    s = 1.0 + rng.uniform(-0.03, 0.03)
    dx, dy = rng.uniform(-0.02, 0.02, 2) * min(h, w)
    cx, cy = w / 2, h / 2
    # PIL's affine maps output → input pixels: scale about the centre, then shift.
    a = 1 / s
    coeffs = (a, 0, cx - a * cx - dx, 0, a, cy - a * cy - dy)
    out = np.asarray(Image.fromarray(img).transform((w, h), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR))
    out = out.astype(np.float32) * (1.0 + rng.uniform(-0.06, 0.06)) + rng.normal(0, 2.0, out.shape)
    return out.clip(0, 255).astype(np.uint8)


def split_photos(per_class: int) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    train, test = [], []
    for c in range(6):
        files = sorted((FRAMES / str(c)).glob("*.jpg"))
        train += [(f, c) for f in files[0::2]]
        test += [(f, c) for f in files[1::2][:per_class]]
    return train, test


def live_predictions(model: object, tracker: object, frames: list[np.ndarray]) -> list[tuple]:
    """(label, probs, hand_found) of each frame, as the live view computes them."""
    from fingertui.learn.boxes import hand_in_box

    out = []
    for view in frames:
        track = tracker.update(view)
        box = track.box or (0, 0, view.shape[1], view.shape[0])
        x0, y0, x1, y1 = box
        crop = np.ascontiguousarray(view[y0:y1, x0:x1])
        hand = hand_in_box(track.hand, box) if track.hand is not None else None
        p = model.predict_image(crop, hand=hand, hand_known=True)
        out.append((p.label, p.probs, p.hand_found))
    return out


def shown_raw(preds: list[tuple]) -> list[int | None]:
    return [label for label, _, _ in preds]


def shown_steady(preds: list[tuple], settings: dict) -> list[int | None]:
    from fingertui.live.steady import SteadyCount

    s = SteadyCount(**settings)
    return [s.update(probs if label is not None else None, hand).count for label, probs, hand in preds]


def changes(shown: list[int | None]) -> int:
    first = next((i for i, v in enumerate(shown) if v is not None), len(shown))
    tail = shown[first:]
    return sum(a != b for a, b in zip(tail, tail[1:], strict=False))


def score(const: list[list[tuple]], pairs: list[tuple[int, int, list[tuple]]], show: object) -> dict:
    flick = [changes(show(p)) for p in const]
    seconds = sum(len(p) for p in const) / FPS
    delays, missed = [], 0
    for cut, label, preds in pairs:
        raw = shown_raw(preds)[cut:]
        second = [v for v in raw[len(raw) // 2 :] if v is not None]
        if not second or max(set(second), key=second.count) != label:
            continue  # the model cannot count the new photo: no delay to measure
        shown = show(preds)[cut:]
        if label in shown:
            delays.append(shown.index(label))
        else:
            missed += 1
    d = np.array(delays, dtype=float)
    return {
        "flicker_per_s": round(sum(flick) / seconds, 3),
        "clips_with_a_change": round(float(np.mean([f > 0 for f in flick])), 3),
        "delay_frames_median": float(np.median(d)) if len(d) else None,
        "delay_frames_p90": float(np.percentile(d, 90)) if len(d) else None,
        "delay_ms_median": round(1000 * float(np.median(d)) / FPS) if len(d) else None,
        "changes_measured": len(d),
        "changes_never_followed": missed,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=8, help="test photos per class (constant clips)")
    ap.add_argument("--frames", type=int, default=40, help="frames per constant clip")
    ap.add_argument("--digits", type=int, default=20, help="sign-digits photos per class added to training")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--train",
        choices=["rooms+digits", "digits"],
        default="rooms+digits",
        help="what the model learns from: half the hagrid-rooms frames and sign-digits, or sign-digits alone "
        "(a model in a room it has never seen: less sure, more flicker)",
    )
    args = ap.parse_args()
    if not FRAMES.is_dir():
        print(f"no photos at {FRAMES}")
        return 2
    from fingertui.data.importer import import_paths
    from fingertui.data.store import Store
    from fingertui.data.workspace import Workspace
    from fingertui.learn.embeddings import read_rgb
    from fingertui.learn.model import Model
    from fingertui.learn.streams import PoseStream
    from fingertui.live.steady import DEFAULTS
    from fingertui.live.tracking import HandTracker
    from fingertui.train.pipeline import train

    t_start = time.time()
    rng = np.random.default_rng(args.seed)
    train_photos, test_photos = split_photos(args.photos)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "train"
        for i, (f, c) in enumerate(train_photos if args.train == "rooms+digits" else []):
            (tree / str(c)).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, tree / str(c) / f"h{i}{f.suffix}")
        for c in range(6):
            (tree / str(c)).mkdir(parents=True, exist_ok=True)
            for i, f in enumerate(sorted((DIGITS / str(c)).glob("*"))[: args.digits]):
                shutil.copy(f, tree / str(c) / f"d{i}{f.suffix}")
        store = Store(Workspace(Path(tmp) / "ws"))
        import_paths(store, [tree])
        run = train(store, features="both", backbone="efficientnet-lite0", flags=False).run
        model = Model.for_run(store, run)
        print(
            f"trained run {run.id}: {run.n_train} train / {run.n_test} test, test accuracy "
            f"{run.metrics['test']['accuracy']:.3f} ({time.time() - t_start:.0f} s)"
        )
        tracker = HandTracker(PoseStream().detector(tracking=True))
        photos = [(read_rgb(f), c) for f, c in test_photos]
        t0 = time.time()
        const = []
        for img, _ in photos:
            tracker.reset()
            const.append(live_predictions(model, tracker, [jitter(img, rng) for _ in range(args.frames)]))
        pairs = []
        order = rng.permutation(len(photos))
        for a, b in zip(order, np.roll(order, 1), strict=True):
            (ia, ca), (ib, cb) = photos[a], photos[b]
            if ca == cb:
                continue
            tracker.reset()
            clip = [jitter(ia, rng) for _ in range(args.frames // 2)] + [jitter(ib, rng) for _ in range(args.frames)]
            pairs.append((args.frames // 2, cb, live_predictions(model, tracker, clip)))
        n = sum(len(c) for c in const) + sum(len(p) for _, _, p in pairs)
        per_s = n / (time.time() - t0)
        store.close()
    hands = float(np.mean([h is True for c in const for _, _, h in c]))
    results = {"raw per-frame count": score(const, pairs, shown_raw)}
    results[f"steady {DEFAULTS} (default)"] = score(const, pairs, lambda p: shown_steady(p, {}))
    for alpha, margin, k in GRID:
        cfg = {"alpha": alpha, "margin": margin, "frames": k}
        results[f"steady {cfg}"] = score(const, pairs, lambda p, cfg=cfg: shown_steady(p, cfg))
    report = {
        "script": "bench/flicker.py",
        "argv": sys.argv[1:],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.time() - t_start, 1),
        "load_avg_at_end": os.getloadavg(),
        "cpus": os.cpu_count(),
        "constant_clips": len(const),
        "change_clips": len(pairs),
        "frames_per_clip": args.frames,
        "frames_with_a_hand": round(hands, 3),
        "live_steps_per_s": round(per_s, 1),
        "fps_assumed": FPS,
        "results": results,
    }
    for name, r in results.items():
        print(f"{name}: {r}")
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"flicker-{args.train}-photos{args.photos}-frames{args.frames}-digits{args.digits}-seed{args.seed}"
    out = OUT / f"{name}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

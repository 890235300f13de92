"""Hand landmarks vs image embeddings vs both, on the shared real photos.

Measures (1) how often MediaPipe finds a hand, with and without the replicated-border
padding, and how long a still image takes; (2) stratified 5-fold accuracy of logistic
regression on hagrid-rooms frames and hand crops for pose features alone, fingertui's image
embedding alone (efficientnet-lite0; whole frame, and the frame cropped around the found
hand), and several ways to fuse the two; (3) transfer: train on all of sign-digits, test on
hagrid-rooms classes 1–5 (hagrid's 0 is a fist, sign-digits' an O, so 0 cannot transfer).

Where no hand is found the pose head cannot answer; every fused method (and "pose, image
fallback") then answers with the image head. "pose only" counts such images as wrong.

Detections and embeddings are cached under $TMPDIR/fingertui-pose-bench, so reruns take
seconds. Writes bench/results/pose_experiment.json.

Run: PYTHONPATH=. .venv/bin/python bench/pose_experiment.py
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from fingertui.learn import hands as H
from fingertui.learn import pose as P
from fingertui.learn.boxes import crop_box

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FINGERTUI_SHARED") or ROOT.parent / "shared") / "datasets"
OUT = ROOT / "bench" / "results" / "pose_experiment.json"
CACHE = Path(tempfile.gettempdir()) / "fingertui-pose-bench"
SPACES: tuple[P.Space, ...] = ("image", "world", "both")
AUG_COPIES = 10
CS = [0.01, 0.1, 1.0, 10.0]

warnings.filterwarnings("ignore", category=ConvergenceWarning)
warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")


def listing(name: str) -> tuple[list[Path], np.ndarray]:
    paths, labels = [], []
    for c in range(6):
        for p in sorted((SHARED / name / str(c)).iterdir()):
            if p.suffix.lower() in (".jpg", ".jpeg", ".png"):
                paths.append(p)
                labels.append(c)
    return paths, np.array(labels)


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


class Cache:
    def __init__(self, name: str) -> None:
        self.path = CACHE / f"{name}.pkl"
        self.data: dict = pickle.loads(self.path.read_bytes()) if self.path.exists() else {}
        self.dirty = False

    def get(self, key: tuple, make: Callable[[], object]) -> object:
        if key not in self.data:
            self.data[key] = make()
            self.dirty = True
        return self.data[key]

    def save(self) -> None:
        if self.dirty:
            CACHE.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(pickle.dumps(self.data))
            self.dirty = False


def main_hand(hands: list[H.Hand]) -> H.Hand | None:
    """The largest hand: in the few frames with two, the gesturing hand is raised toward
    the camera and so is usually the bigger one."""
    if not hands:
        return None

    def area(h: H.Hand) -> float:
        x0, y0, x1, y1 = h.bbox
        return (x1 - x0) * (y1 - y0)

    return max(hands, key=area)


def detect_all(det: H.HandDetector, paths: list[Path], variant: str, cache: Cache) -> tuple[list, list[float]]:
    """(main hand or None per image, ms per image) for one padding variant."""
    pad_frac = {"pad": 0.35, "pad0.2": 0.2, "pad0.5": 0.5, "pad0.75": 0.75}.get(variant)
    out, ms = [], []
    for p in paths:

        def run(p: Path = p) -> tuple[bytes, float]:
            img = rgb(p)
            saved = dict(H.PAD)
            if pad_frac is not None:
                H.PAD["frac"] = pad_frac
            det.pad = pad_frac is not None
            t0 = time.perf_counter()
            found = det.detect(img)
            dt = (time.perf_counter() - t0) * 1000
            H.PAD.update(saved)
            return H.hands_to_bytes(found), dt

        blob, dt = cache.get((variant, str(p)), run)
        out.append(main_hand(H.hands_from_bytes(blob)))
        ms.append(dt)
    cache.save()
    return out, ms


def embed_all(bb, items: list[tuple[str, Callable[[], np.ndarray]]], cache: Cache) -> np.ndarray:
    from fingertui.learn.embeddings import Embedder

    def one(make: Callable[[], np.ndarray]) -> np.ndarray:
        return Embedder.embed_images(bb, [np.array(make(), copy=True)])[0]

    vecs = [cache.get(key, lambda m=make: one(m)) for key, make in items]
    cache.save()
    return np.stack(vecs)


def hand_crop(path: Path, hand: H.Hand | None) -> np.ndarray:
    img = rgb(path)
    if hand is None:
        return img
    x0, y0, x1, y1 = crop_box(hand)
    return img[y0:y1, x0:x1]


def pose_matrix(hands: list, space: P.Space) -> np.ndarray:
    d = P.feature_dim(space)
    return np.stack([P.pose_features(h, space) if h is not None else np.full(d, np.nan, np.float32) for h in hands])


def head(C: float | None = None) -> object:
    # Inner 3-fold choice of C on the training fold only, so no test fold picks it.
    lr = (
        LogisticRegression(C=C, max_iter=3000)
        if C is not None
        else LogisticRegressionCV(Cs=CS, cv=3, max_iter=3000, scoring="neg_log_loss")
    )
    return make_pipeline(StandardScaler(), lr)


def full_proba(model: object, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Probabilities over all ``classes`` (a fold may lack none here, but stay safe)."""
    p = np.zeros((len(X), len(classes)))
    got = model.predict_proba(X)
    for j, c in enumerate(model.classes_):
        p[:, np.searchsorted(classes, c)] = got[:, j]
    return p


def augmented(hands: list, y: np.ndarray, space: P.Space, seed: int) -> tuple[np.ndarray, np.ndarray]:
    X, Y = [], []
    for i, (h, lab) in enumerate(zip(hands, y, strict=True)):
        X.append(P.pose_features(h, space))
        Y.append(lab)
        for k in range(AUG_COPIES):
            X.append(P.pose_features(P.augment(h, seed * 1_000_003 + i * 101 + k), space))
            Y.append(lab)
    return np.stack(X), np.array(Y)


def fuse(p_img: np.ndarray, p_pose: np.ndarray, has: np.ndarray, how: str) -> np.ndarray:
    out = p_img.copy()
    if how == "product":
        f = np.log(p_img[has] + 1e-9) + np.log(p_pose[has] + 1e-9)
    elif how == "mixture":
        f = (p_img[has] + p_pose[has]) / 2
    elif how == "fallback":
        f = p_pose[has]
    else:
        raise ValueError(how)
    out[has] = f
    return out


def evaluate(
    train: dict, test: dict, classes: np.ndarray, seed: int, spaces: tuple[P.Space, ...] = SPACES
) -> dict[str, np.ndarray]:
    """Predictions on ``test`` of every method, trained on ``train``. Each dict has y, E
    (image embeddings), hands (main hand or None), and per space a pose matrix."""
    preds: dict[str, np.ndarray] = {}
    img = head().fit(train["E"], train["y"])
    p_img = full_proba(img, test["E"], classes)
    preds["image"] = p_img.argmax(1)
    has_tr = np.array([h is not None for h in train["hands"]])
    has_te = np.array([h is not None for h in test["hands"]])
    for space in spaces:
        Xtr, Xte = train[space], test[space]
        p_pose = np.zeros_like(p_img)
        if has_te.any():
            pm = head().fit(Xtr[has_tr], train["y"][has_tr])
            p_pose[has_te] = full_proba(pm, Xte[has_te], classes)
        pose_only = np.where(has_te, p_pose.argmax(1), -1)
        preds[f"pose[{space}] only"] = pose_only
        preds[f"pose[{space}], image fallback"] = fuse(p_img, p_pose, has_te, "fallback").argmax(1)
        preds[f"product[{space}]"] = fuse(p_img, p_pose, has_te, "product").argmax(1)
        preds[f"mixture[{space}]"] = fuse(p_img, p_pose, has_te, "mixture").argmax(1)
        # Concatenation: a missing hand's pose is the training mean (0 once
        # standardised) plus a has-hand flag, so one head handles both cases.
        mu = np.nanmean(Xtr[has_tr], 0)

        def cat(d: dict, has: np.ndarray, X: np.ndarray, mu: np.ndarray = mu) -> np.ndarray:
            Xf = np.where(has[:, None], X, mu)
            return np.hstack([d["E"], Xf, has[:, None].astype(np.float32)])

        cm = head().fit(cat(train, has_tr, Xtr), train["y"])
        preds[f"concat[{space}]"] = full_proba(cm, cat(test, has_te, Xte), classes).argmax(1)
        # Pose head trained on landmark-augmented copies.
        hands_tr = [h for h in train["hands"] if h is not None]
        Xa, ya = augmented(hands_tr, train["y"][has_tr], space, seed)
        am = head().fit(Xa, ya)
        p_aug = np.zeros_like(p_img)
        if has_te.any():
            p_aug[has_te] = full_proba(am, Xte[has_te], classes)
        preds[f"pose[{space}]+aug, image fallback"] = fuse(p_img, p_aug, has_te, "fallback").argmax(1)
        preds[f"product[{space}]+aug"] = fuse(p_img, p_aug, has_te, "product").argmax(1)
    return preds


def subset(d: dict, idx: np.ndarray) -> dict:
    return {k: (v[idx] if isinstance(v, np.ndarray) else [v[i] for i in idx]) for k, v in d.items()}


def cv(data: dict, seed: int = 0, spaces: tuple[P.Space, ...] = SPACES) -> dict[str, float]:
    classes = np.arange(6)
    correct: dict[str, np.ndarray] = {}
    skf = StratifiedKFold(5, shuffle=True, random_state=seed)
    for tr, te in skf.split(data["E"], data["y"]):
        for name, pred in evaluate(subset(data, tr), subset(data, te), classes, seed, spaces).items():
            correct.setdefault(name, np.zeros(len(data["y"]), bool))[te] = pred == data["y"][te]
    out = {k: round(float(v.mean()), 3) for k, v in correct.items()}
    has = np.array([h is not None for h in data["hands"]])
    for k in [k for k in correct if k.endswith(" only")]:
        out[k.replace(" only", " | hand found")] = round(float(correct[k][has].mean()), 3)
    return out


def dataset(name: str, paths: list[Path], y: np.ndarray, hands: list, E: np.ndarray) -> dict:
    d = {"y": y, "E": E, "hands": hands}
    for s in SPACES:
        d[s] = pose_matrix(hands, s)
    return d


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", action="store_true", help="also try other padding fractions")
    args = ap.parse_args()
    # One BLAS thread: on 2 shared cores a threaded BLAS made one logistic-regression fit on
    # 155 × 1280 take 10 s instead of 0.2 s (oversubscription).
    threadpool_limits(1)
    if not SHARED.is_dir():
        print(f"no datasets at {SHARED} (set FINGERTUI_SHARED to the folder holding datasets/)")
        return 2
    from fingertui.learn import backbones

    sets = {n: listing(n) for n in ("sign-digits", "hagrid-rooms/frames", "hagrid-rooms/hands")}
    dcache, ecache = Cache("detections"), Cache("embeddings")
    result: dict = {
        "detector": H.DETECTOR_ID,
        "pad_recipe": H.PAD,
        "feature_dim": {s: P.feature_dim(s) for s in SPACES},
    }

    det = H.HandDetector("still")
    det.detect(rgb(sets["sign-digits"][0][0]))  # model load outside the timings
    detection: dict = {}
    found: dict[str, dict[str, list]] = {}
    variants = ["raw", "pad"] + (["pad0.2", "pad0.5", "pad0.75"] if args.sweep else [])
    for name, (paths, _) in sets.items():
        for v in variants:
            if v != "raw" and name.endswith("frames"):
                continue  # frames are larger than PAD["max_side"]: padding never applies
            hs, ms = detect_all(det, paths, v, dcache)
            found.setdefault(name, {})[v] = hs
            detection[f"{name} {v}"] = {
                "n": len(paths),
                "found": round(sum(h is not None for h in hs) / len(paths), 3),
                "ms_median": round(float(np.median(ms)), 1),
                "ms_mean": round(float(np.mean(ms)), 1),
            }
            print(name, v, detection[f"{name} {v}"], flush=True)
    det.close()
    result["detection"] = detection

    bb = backbones.load("efficientnet-lite0")
    result["backbone"] = bb.id
    fr_paths, fr_y = sets["hagrid-rooms/frames"]
    fr_hands = found["hagrid-rooms/frames"]["raw"]
    hd_paths, hd_y = sets["hagrid-rooms/hands"]
    hd_hands = found["hagrid-rooms/hands"]["pad"]
    sd_paths, sd_y = sets["sign-digits"]
    sd_hands = found["sign-digits"]["pad"]
    E_whole = embed_all(bb, [((bb.id, "whole", str(p)), lambda p=p: rgb(p)) for p in fr_paths], ecache)
    E_framed = embed_all(
        bb,
        [
            ((bb.id, "framed", H.DETECTOR_ID, str(p)), lambda p=p, h=h: hand_crop(p, h))
            for p, h in zip(fr_paths, fr_hands, strict=True)
        ],
        ecache,
    )
    E_hd = embed_all(bb, [((bb.id, "whole", str(p)), lambda p=p: rgb(p)) for p in hd_paths], ecache)
    E_sd = embed_all(bb, [((bb.id, "whole", str(p)), lambda p=p: rgb(p)) for p in sd_paths], ecache)
    print("embedded", flush=True)

    frames = dataset("frames", fr_paths, fr_y, fr_hands, E_framed)
    acc: dict = {}
    acc["hagrid frames"] = cv(frames)
    acc["hagrid frames"]["image (whole frame)"] = cv({**frames, "E": E_whole}, spaces=())["image"]
    acc["hagrid frames"]["image (hand-framed crop)"] = acc["hagrid frames"].pop("image")
    print("frames", acc["hagrid frames"], flush=True)
    hands_set = dataset("hands", hd_paths, hd_y, hd_hands, E_hd)
    acc["hagrid hands"] = cv(hands_set)
    print("hands", acc["hagrid hands"], flush=True)
    result["cv5_accuracy"] = acc

    # Transfer: sign-digits → hagrid-rooms classes 1–5.
    sd = dataset("sign-digits", sd_paths, sd_y, sd_hands, E_sd)
    transfer: dict = {}
    for name, test in (("hagrid hands", hands_set), ("hagrid frames (framed)", frames)):
        keep = np.flatnonzero(test["y"] > 0)
        t = subset(test, keep)
        preds = evaluate(sd, t, np.arange(6), seed=0)
        transfer[name] = {k: round(float((p == t["y"]).mean()), 3) for k, p in preds.items()}
        print("transfer", name, transfer[name], flush=True)
    transfer["hagrid frames (whole)"] = {
        "image": round(
            float(
                (
                    evaluate(sd, subset({**frames, "E": E_whole}, np.flatnonzero(fr_y > 0)), np.arange(6), 0, ())[
                        "image"
                    ]
                    == fr_y[fr_y > 0]
                ).mean()
            ),
            3,
        )
    }
    result["transfer_signdigits_to_hagrid_1to5"] = transfer

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

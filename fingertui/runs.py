"""Training runs: one call turns the labelled dataset into a recorded, comparable run.

A run keeps its backbone, config, seed, data snapshot (sample ids, labels, splits and a
hash of them), metrics, confusion matrix, per-sample predictions (test split, and
out-of-fold for training samples) and a checkpoint under ``data/models/``. Nothing is
written until the run is complete, so a cancelled or failed run leaves nothing behind.
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

from fingertui.errors import Cancelled, UserError
from fingertui.labels import CLASSES
from fingertui.metrics import ece, evaluate, mcnemar
from fingertui.store import Sample, Store, now_iso
from fingertui.store.run_table import ACTIVE_KEY

if TYPE_CHECKING:
    from fingertui.train import TrainConfig

Progress = Callable[[str, int, int], None]
MIN_PER_CLASS = 2


def data_hash(samples: list[Sample]) -> str:
    text = "\n".join(f"{s.id}:{s.sha256}:{s.label}:{s.split}" for s in sorted(samples, key=lambda s: s.id))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class RunRecord:
    id: int
    started: str
    finished: str
    backbone: str
    seed: int
    config: dict
    data_hash: str
    n_train: int
    n_test: int
    metrics: dict
    checkpoint: str

    @classmethod
    def from_row(cls, row: dict) -> RunRecord:
        return cls(
            id=row["id"],
            started=row["started"],
            finished=row["finished"],
            backbone=row["backbone"],
            seed=row["seed"],
            config=json.loads(row["config"]),
            data_hash=row["data_hash"],
            n_train=row["n_train"],
            n_test=row["n_test"],
            metrics=json.loads(row["metrics"]),
            checkpoint=row["checkpoint"],
        )

    def summary(self) -> dict:
        test = self.metrics["test"]
        weakest = test.get("weakest_class")
        return {
            "id": self.id,
            "finished": self.finished,
            "backbone": self.backbone,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "accuracy": test["accuracy"],
            "accuracy_ci95": test["accuracy_ci95"],
            "balanced_accuracy": test["balanced_accuracy"],
            "weakest_class": weakest,
            "weakest_recall": test["per_class"][weakest]["recall"] if weakest is not None else None,
            "ece": test["ece"],
            "duration_s": self.metrics["duration_s"],
        }


def train_run(
    store: Store,
    *,
    samples: list[Sample] | None = None,
    backbone: str | None = None,
    weights_file: str | None = None,
    cfg: TrainConfig | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    warn: Callable[[str], None] | None = None,
) -> RunRecord:
    """Embed (new images only), train, calibrate, evaluate and record one run.

    ``samples`` restricts the run to a subset of the labelled samples (benchmarks,
    simulations); by default every labelled sample takes part.
    """
    from fingertui import backbones
    from fingertui.features import Embedder
    from fingertui.train import TrainConfig, fit_linear_lbfgs, group_folds, logits, softmax, train_calibrated

    cfg = cfg or TrainConfig()
    started, t0 = now_iso(), time.perf_counter()
    report = progress or (lambda phase, k, n: None)
    snapshot = store.labelled() if samples is None else [s for s in samples if s.label is not None and s.split]
    train = [s for s in snapshot if s.split == "train"]
    test = [s for s in snapshot if s.split == "test"]
    per_class = {c: sum(1 for s in train if s.label == c) for c in CLASSES}
    usable = [c for c, n in per_class.items() if n >= MIN_PER_CLASS]
    if len(usable) < 2:
        have = ", ".join(f"{c}:{n}" for c, n in per_class.items())
        raise UserError(
            f"not enough labelled training images (per class {have}); label at least {MIN_PER_CLASS} "
            "images in each of two classes first"
        )
    bb = backbones.load(backbone, weights_file=weights_file, warn=warn)
    emb = Embedder(store, bb)
    vecs = emb.vectors(
        [(s.sha256, s.path) for s in train + test], [cfg.views] * len(train) + [0] * len(test), report, cancel
    )
    Xtr = np.stack(vecs[: len(train)])  # (N, views+1, dim)
    Xte = np.stack([v[0] for v in vecs[len(train) :]]) if test else np.zeros((0, bb.dim), np.float32)
    ytr = np.array([s.label for s in train])
    yte = np.array([s.label for s in test], dtype=int)
    groups = np.array([s.group_key or f"id:{s.id}" for s in train])
    t_embed = time.perf_counter() - t0

    folds = group_folds(ytr, groups, cfg.folds, cfg.seed)
    n_fits = 1 + len(folds)
    report("training", 0, n_fits)
    report("calibrating", 0, 1)
    model = train_calibrated(Xtr, ytr, groups, cfg, cancel=cancel)
    fit, temperature, threshold, val_idx = model.fit, model.temperature, model.threshold, model.val_idx
    z_val = logits(fit.head, Xtr[val_idx, 0]) if len(val_idx) else np.zeros((0, len(CLASSES)))
    p_val = softmax(z_val, temperature)
    report("training", 1, n_fits)
    report("calibrating", 1, 1)

    # Out-of-fold predictions for every training sample: the review queue's evidence.
    oof = np.full((len(train), len(CLASSES)), np.nan)
    # These heads are quick L-BFGS fits on plain views: they exist to point at suspicious
    # labels, and being quick keeps retraining within seconds.
    for k, held in enumerate(folds):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        rest = np.setdiff1d(np.arange(len(train)), held)
        oof_head = fit_linear_lbfgs(Xtr[rest, 0], ytr[rest], cfg)
        oof[held] = softmax(logits(oof_head, Xtr[held, 0]), temperature)
        report("training", 2 + k, n_fits)

    report("evaluating", 0, 1)
    z_te = logits(fit.head, Xte)
    p_te = softmax(z_te, temperature)
    test_metrics = evaluate(yte, p_te, seed=cfg.seed)
    test_metrics["ece_uncalibrated"] = ece(softmax(z_te, 1.0), yte) if len(yte) else float("nan")
    has_oof = ~np.isnan(oof[:, 0])
    metrics = {
        "test": test_metrics,
        "val": {
            "n": int(len(val_idx)),
            "ece_uncalibrated": ece(softmax(z_val, 1.0), ytr[val_idx]) if len(val_idx) else None,
            "ece": ece(p_val, ytr[val_idx]) if len(val_idx) else None,
        },
        "oof_accuracy": float((oof[has_oof].argmax(1) == ytr[has_oof]).mean()) if has_oof.any() else None,
        "temperature": temperature,
        "unsure_threshold": threshold,
        "epochs": fit.epochs,
        "backbone": bb.id,
        "embedded_new": emb.computed,
        "embed_s": round(t_embed, 3),
        "duration_s": round(time.perf_counter() - t0, 3),
    }
    report("evaluating", 1, 1)
    if cancel is not None and cancel.is_set():
        raise Cancelled()
    return _record(store, started, bb, cfg, fit, temperature, threshold, metrics, train, test, val_idx, oof, p_te)


def _record(
    store, started, bb, cfg, fit, temperature, threshold, metrics, train, test, val_idx, oof, p_te
) -> RunRecord:  # noqa: ANN001, PLR0913
    # The writer lock spans saving the checkpoint and recording its run, so doctor never
    # sees the checkpoint as an orphan in between.
    with store.writing():
        return _record_locked(
            store, started, bb, cfg, fit, temperature, threshold, metrics, train, test, val_idx, oof, p_te
        )


def _record_locked(
    store, started, bb, cfg, fit, temperature, threshold, metrics, train, test, val_idx, oof, p_te
) -> RunRecord:  # noqa: ANN001, PLR0913
    from fingertui.predict import FORMAT, save_checkpoint

    ckpt_path = store.ws.models_dir / f"run-{uuid.uuid4().hex[:12]}.pt"
    head_spec = {"kind": fit.head.kind, "dim": bb.dim, "hidden": cfg.hidden}
    save_checkpoint(
        ckpt_path,
        {
            "format": FORMAT,
            "head_state": fit.head.state_dict(),
            "head": head_spec,
            "backbone": bb.id,
            "classes": list(CLASSES),
            "temperature": temperature,
            "unsure_threshold": threshold,
            "config": cfg.as_dict(),
            "metrics": {"accuracy": metrics["test"]["accuracy"], "ece": metrics["test"]["ece"]},
        },
    )
    val_set = set(val_idx.tolist())
    rows = []
    for i, s in enumerate(train):
        p = oof[i]
        ok = not np.isnan(p[0])
        rows.append(
            (
                s.id,
                s.label,
                "val" if i in val_set else "train",
                int(p.argmax()) if ok else None,
                float(p.max()) if ok else None,
                json.dumps([round(float(x), 5) for x in p]) if ok else None,
            )
        )
    for i, s in enumerate(test):
        p = p_te[i]
        rows.append(
            (s.id, s.label, "test", int(p.argmax()), float(p.max()), json.dumps([round(float(x), 5) for x in p]))
        )
    try:
        run_id = store.runs.add(
            {
                "started": started,
                "finished": now_iso(),
                "backbone": bb.id,
                "seed": cfg.seed,
                "config": json.dumps(cfg.as_dict()),
                "data_hash": data_hash(train + test),
                "n_train": len(train),
                "n_test": len(test),
                "metrics": json.dumps(metrics),
                "checkpoint": store.ws.rel(ckpt_path),
            },
            rows,
        )
    except BaseException:
        ckpt_path.unlink(missing_ok=True)
        raise
    return get_run(store, run_id)


def list_runs(store: Store) -> list[RunRecord]:
    return [RunRecord.from_row(r) for r in store.runs.rows()]


def get_run(store: Store, run_id: int | str) -> RunRecord:
    try:
        rid = int(run_id)
    except (TypeError, ValueError):
        raise UserError(f"run id must be a number, not {run_id!r}; `fingertui runs` lists them") from None
    row = store.runs.row(rid)
    if row is None:
        raise UserError(f"no run {rid}; `fingertui runs` lists them")
    return RunRecord.from_row(row)


def active_run(store: Store) -> RunRecord | None:
    """The run the user picked, else the newest; None before any training."""
    chosen = store.get_setting(ACTIVE_KEY)
    runs = list_runs(store)
    for r in runs:
        if chosen is not None and str(r.id) == chosen:
            return r
    return runs[-1] if runs else None


def set_active(store: Store, run_id: int | str) -> RunRecord:
    run = get_run(store, run_id)
    store.set_setting(ACTIVE_KEY, str(run.id))
    return run


def resolve_run(store: Store, run_id: int | str | None) -> RunRecord:
    if run_id is not None:
        return get_run(store, run_id)
    run = active_run(store)
    if run is None:
        raise UserError("no trained model yet; label some images and run `fingertui train`")
    return run


def run_predictions(store: Store, run_id: int, role: str | None = None) -> list[dict]:
    """Per-sample rows of a run: sample_id, label, role, pred, confidence, probs."""
    return store.runs.predictions(run_id, role)


def compare(store: Store, a: int | str, b: int | str) -> dict:
    """Two runs on the test samples both saw: accuracy delta, McNemar, recall deltas, flips."""
    ra, rb = get_run(store, a), get_run(store, b)
    pa = {r["sample_id"]: r for r in run_predictions(store, ra.id, "test")}
    pb = {r["sample_id"]: r for r in run_predictions(store, rb.id, "test")}
    common = sorted(set(pa) & set(pb))
    # The label may have been corrected between runs: judge both against the newer label.
    truth = np.array([pb[i]["label"] for i in common], dtype=int)
    pred_a = np.array([pa[i]["pred"] for i in common], dtype=int)
    pred_b = np.array([pb[i]["pred"] for i in common], dtype=int)
    right_a, right_b = pred_a == truth, pred_b == truth
    recall_delta = {}
    for c in CLASSES:
        m = truth == c
        if m.any():
            recall_delta[str(c)] = {
                "a": float(right_a[m].mean()),
                "b": float(right_b[m].mean()),
                "delta": float(right_b[m].mean() - right_a[m].mean()),
            }
    return {
        "a": ra.id,
        "b": rb.id,
        "n_common": len(common),
        "accuracy_a": float(right_a.mean()) if common else None,
        "accuracy_b": float(right_b.mean()) if common else None,
        "accuracy_delta": float(right_b.mean() - right_a.mean()) if common else None,
        "mcnemar": mcnemar(right_a, right_b),
        "recall": recall_delta,
        "right_to_wrong": [int(i) for i, x, y in zip(common, right_a, right_b, strict=True) if x and not y],
        "wrong_to_right": [int(i) for i, x, y in zip(common, right_a, right_b, strict=True) if not x and y],
    }

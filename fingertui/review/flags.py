"""The flags a run raises, kept in SQLite so that the review queue survives restarts.

- ``unsure``: unlabelled samples, and labelled ones whose calibrated confidence is below
  the run's unsure threshold;
- ``misclassified``: the prediction (out-of-fold for training samples, the run's own for
  test samples) differs from the label;
- ``label-error`` ("the label looks wrong"): strong evidence only — out-of-fold, the
  label is improbable and another class far more probable, and the views (image, hand
  pose, finger count) agree against the label; the suggestion is the most probable
  class, and the flag keeps its evidence so the review can say why;
- ``disagrees`` ("the model leans to 4"): the weaker case — confident learning fires
  (another class is the most probable and the label's probability is below that class's
  typical self-confidence) but the evidence falls short of the above; ranked below;
- ``no-hand``: the run looks at the hand's pose but the detector found no hand in the
  image (often a bad snapshot: blurred, cut off, no hand at all);
- ``finger-borderline``: the run's finger-state expert cannot tell whether a finger is up
  (its up-probability is between 0.35 and 0.65): the snapshot shows the finger half-bent,
  hidden or blurred, exactly the case where the label deserves a second look;
- ``weak-class``: added to flagged samples of the class with the lowest recall, and of the
  most-confused pair, which boosts them in the queue;
- ``near-duplicate``: in the queue, near-identical images (embedding cosine similarity)
  are shown as one item that lists the others.

A confirmed label raises no flag until its label or image changes (``Store.confirmed``).
Any other resolved flag stays resolved when the same (or an older) run still disagrees; a
run finished after the resolution that disagrees again reopens it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fingertui.data.store import Sample, Store
from fingertui.labels import CLASSES
from fingertui.review.evidence import label_errors
from fingertui.review.ranking import BONUS, DEFAULT_STRATEGY, uncertainty
from fingertui.runs.records import RunRecord, active_run, newest_run, run_predictions

BORDERLINE = (0.35, 0.65)
STATE_KEY = "flags_state"


@dataclass
class Flag:
    sample_id: int
    reason: str
    score: float
    suggested: int | None
    pred: int | None
    confidence: float | None
    probs: list[float] | None
    evidence: dict | None = None


def probs_and_vectors(store: Store, run: RunRecord, sample_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The run's calibrated probabilities and standardised features of stored samples
    (computing any missing features through the caches)."""
    from fingertui.learn.model import Model

    if not sample_ids:
        return np.zeros((0, len(CLASSES))), np.zeros((0, 0))
    by_id = {s.id: s for s in store.samples()}
    return Model.for_run(store, run, lazy=True).sample_probs(store, [by_id[i] for i in sample_ids])


def finger_ups(store: Store, run: RunRecord, samples: Sequence[Sample]) -> dict[int, list[float] | None]:
    """Per sample, the run's finger-state up-probabilities (thumb … little), from the cached
    landmarks; None where no hand was found or the run has no finger expert."""
    detector = run.metrics.get("detector")
    if not detector or "fingers" not in run.metrics.get("experts", []):
        return {}
    from fingertui.learn.fingers import finger_matrix
    from fingertui.learn.hands import hands_from_bytes
    from fingertui.learn.model import Model
    from fingertui.learn.streams import POSE_VIEW

    head = Model.for_run(store, run, lazy=True).fingers
    blobs = store.landmarks.get(detector, POSE_VIEW, [s.sha256 for s in samples])
    hands = []
    for s in samples:
        got = hands_from_bytes(blobs[s.sha256]) if s.sha256 in blobs else []
        hands.append(got[0] if got else None)
    if head is None or not samples:
        return {}
    F, mask = finger_matrix(hands)
    ups = head.up(F)
    return {s.id: ([float(u) for u in ups[i]] if mask[i] else None) for i, s in enumerate(samples)}


def compute_flags(store: Store, run: RunRecord) -> list[Flag]:
    """Every flag the run raises on the current dataset (labels as they are now)."""
    current = {s.id: s for s in store.samples(excluded=False)}
    rows = [r for r in run_predictions(store, run.id) if r["probs"] is not None and r["sample_id"] in current]
    rows = [r for r in rows if current[r["sample_id"]].label is not None]
    thr = run.metrics["unsure_threshold"]
    flags: list[Flag] = []
    ids = [r["sample_id"] for r in rows]
    labels = np.array([current[i].label for i in ids], dtype=int)
    P = np.array([r["probs"] for r in rows]) if rows else np.zeros((0, len(CLASSES)))
    test = run.metrics["test"]
    weakest = int(test["weakest_class"]) if test.get("weakest_class") is not None else None
    cm = np.array(test["confusion"]["counts"])
    np.fill_diagonal(cm, 0)
    pair = divmod(int(cm.argmax()), cm.shape[1]) if cm.sum() else None
    preds = P.argmax(axis=1) if len(P) else np.zeros(0, dtype=int)

    def flag(i: int, reason: str, score: float, suggested: int | None, p: np.ndarray, ev: dict | None = None) -> None:
        flags.append(
            Flag(
                i, reason, float(score), suggested, int(p.argmax()), float(p.max()), [round(float(x), 5) for x in p], ev
            )
        )

    for n, sid in enumerate(ids):
        p, y, pr = P[n], int(labels[n]), int(preds[n])
        if p.max() < thr:
            flag(sid, "unsure", 1.0 - p.max(), pr, p)
        if pr != y:
            flag(sid, "misclassified", p[pr] - p[y], pr, p)
    for v in label_errors(labels, P, [r["experts"] for r in rows], [r["role"] for r in rows]):
        flag(ids[v.index], "label-error" if v.strong else "disagrees", v.strength, v.suggested, P[v.index], v.evidence)
    detector = run.metrics.get("detector")
    if detector:
        from fingertui.learn.streams import POSE_VIEW

        row_of = {sid: n for n, sid in enumerate(ids)}
        uniform = np.full(len(CLASSES), 1.0 / len(CLASSES))

        found = store.landmarks.get(detector, POSE_VIEW, [s.sha256 for s in current.values()])
        for s in current.values():
            if found.get(s.sha256) == b"":  # searched, and no hand found
                flag(s.id, "no-hand", 0.5, None, P[row_of[s.id]] if s.id in row_of else uniform)
        for sid, ups in finger_ups(store, run, list(current.values())).items():
            if ups is None:
                continue
            closeness = [0.5 - abs(u - 0.5) for u in ups if BORDERLINE[0] < u < BORDERLINE[1]]
            if closeness:
                p = P[row_of[sid]] if sid in row_of else uniform
                flag(sid, "finger-borderline", max(closeness), None, p)
    unlabelled = [s.id for s in current.values() if s.label is None]
    if unlabelled:
        UP, _ = probs_and_vectors(store, run, unlabelled)
        for sid, p in zip(unlabelled, UP, strict=True):
            flag(sid, "unsure", uncertainty(p[None], DEFAULT_STRATEGY)[0], int(p.argmax()), p)
    # weak-class: boosts samples already flagged that touch the weakest class or the most
    # confused pair.
    flagged: dict[int, Flag] = {}
    for f in flags:
        flagged.setdefault(f.sample_id, f)
    for sid, f in flagged.items():
        label = current[sid].label
        touches = weakest is not None and weakest in (label, f.pred)
        if pair is not None and label is not None and {label, f.pred} == set(pair):
            touches = True
        if touches:
            flags.append(Flag(sid, "weak-class", BONUS["weak-class"], f.suggested, f.pred, f.confidence, f.probs))
    # The user's word beats any run: a confirmed label is not asked about again until the
    # label or the image changes (store.confirmed).
    confirmed = store.confirmed()
    return [f for f in flags if f.sample_id not in confirmed]


def recompute(store: Store, run: RunRecord | None = None) -> dict:
    """Bring the stored flags up to date with ``run`` (default: the active run)."""
    run = run or active_run(store) or newest_run(store)
    if run is None:
        return {"run": None, "open": 0, "added": 0, "cleared": 0}
    new = {(f.sample_id, f.reason): f for f in compute_flags(store, run)}
    existing = store.flags.all()
    open_rows = {(r["sample_id"], r["reason"]): r for r in existing if r["resolved"] is None}
    resolved: dict[tuple[int, str], str] = {}
    for r in existing:
        if r["resolved"] is not None:
            resolved[(r["sample_id"], r["reason"])] = max(
                resolved.get((r["sample_id"], r["reason"]), ""), r["resolved"]
            )
    inserts, updates, cleared = [], [], []
    for key, f in new.items():
        evidence = json.dumps(f.evidence) if f.evidence is not None else None
        vals = (f.score, f.suggested, f.pred, f.confidence, json.dumps(f.probs), evidence, run.id)
        if key in open_rows:
            updates.append((*vals, open_rows[key]["id"]))
        elif key in resolved and resolved[key] >= run.finished:
            continue  # resolved after this run was made: only a later run can reopen it
        else:
            inserts.append((f.sample_id, f.reason, *vals))
    for key, r in open_rows.items():
        if key not in new:
            cleared.append(r["id"])
    store.flags.sync(run.id, updates, inserts, cleared)
    store.set_setting(STATE_KEY, _state(store, run))
    return {"run": run.id, "open": len(new), "added": len(inserts), "cleared": len(cleared)}


def _state(store: Store, run: RunRecord) -> str:
    return f"{run.id}:{store.change_marker()}"


def ensure_fresh(store: Store) -> None:
    """Recompute flags when the active run or the dataset changed since last time."""
    run = active_run(store) or newest_run(store)
    if run is not None and store.get_setting(STATE_KEY) != _state(store, run):
        recompute(store, run)

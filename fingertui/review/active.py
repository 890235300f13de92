"""Active learning: which snapshots the user should look at next, and why.

Flags (stored in SQLite, so the queue survives restarts):
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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fingertui.data.store import Sample, Store
from fingertui.errors import UserError
from fingertui.labels import CLASSES
from fingertui.review.reasons import NEAR_DUPLICATE, REASONS
from fingertui.runs.records import RunRecord, active_run, newest_run, run_predictions
from fingertui.words import rough_pct

if TYPE_CHECKING:  # the model loads when flags are computed
    from fingertui.learn.model import Model

# What a user can answer a queue item with (apply_action).
Action = Literal["confirm", "relabel", "exclude", "delete", "skip"]
BORDERLINE = (0.35, 0.65)
STRATEGIES = ("margin", "least-confidence", "entropy", "random")
DEFAULT_STRATEGY = "margin"
# Queue score = uncertainty (0–1) + a bonus per reason: a known mistake costs the model
# most; a weak-class sample is worth a little more. (Label errors and disagreements rank
# above all of these: TIER below.)
BONUS = {
    "misclassified": 0.5,
    "no-hand": 0.3,
    "finger-borderline": 0.2,
    "weak-class": 0.25,
    "unsure": 0.0,
}
# Label-error and disagrees items come first, in that order, whatever else is flagged
# (the other reasons together score at most 1 + 1.25): queue score = tier + evidence.
TIER = {"label-error": 4.0, "disagrees": 3.0}
# A disagreement where an expert sides with the label ranks below every one where none does
# (strengths are at most 1).
SIDED_PENALTY = 1.0
# "The label looks wrong" needs the label's out-of-fold probability at most STRONG_P_LABEL,
# the suggestion at least STRONG_RATIO times as probable, and the views to agree: no
# expert favours the label, most of those that saw the image favour the suggestion, and at
# least two saw it when the run has two. With the default pipeline, 3 seeds
# (bench/label_errors.py, bench/results/label_errors.json): on sign-digits with 5 % of
# labels flipped, 98.4 % of the label-error flags are flips and every flip is in the top
# 2x of the queue; on the clean set the one flag is sign-digits/2/IMG_5176.JPG, labelled 2
# with the thumb out (a 3 here). In cluttered rooms (hagrid-rooms, 10 % flipped) the
# agreement of the views is what counts: 100 % of the flags are flips with it, 89.2 %
# (frames) and 98.1 % (hand crops) without it.
STRONG_P_LABEL = 0.15
STRONG_RATIO = 5.0
EXPERT_NAMES = {"image": "image", "pose": "hand pose", "fingers": "finger count"}
NEAR_DUPLICATE_COS = 0.97
STATE_KEY = "flags_state"


def uncertainty(probs: np.ndarray, strategy: str, seed: int = 0) -> np.ndarray:
    """Higher = more worth a label. ``probs`` is (N, classes)."""
    if strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if len(probs) == 0:
        return np.zeros(0)
    if strategy == "least-confidence":
        return 1.0 - probs.max(axis=1)
    if strategy == "margin":
        top2 = np.sort(probs, axis=1)[:, -2:]
        return 1.0 - (top2[:, 1] - top2[:, 0])
    if strategy == "entropy":
        p = np.clip(probs, 1e-12, 1.0)
        return -(p * np.log(p)).sum(axis=1) / np.log(probs.shape[1])
    return np.random.default_rng(seed).random(len(probs))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.clip(np.linalg.norm(v, axis=1, keepdims=True), 1e-12, None)


def fold_near_duplicates(
    order: Sequence[int], vectors: np.ndarray, near: float = NEAR_DUPLICATE_COS
) -> tuple[list[int], dict[int, list[int]]]:
    """Walk candidates best-first; one whose embedding is within ``near`` cosine similarity
    of an earlier kept one is folded into it. Returns kept indices (in order) and the
    near-duplicates folded into each."""
    order = list(order)
    if not order:
        return [], {}
    u = _unit(vectors[order].astype(np.float32))
    kept: list[int] = []
    dupes: dict[int, list[int]] = {}
    owner = np.full(len(order), -1)
    for n, idx in enumerate(order):
        if owner[n] >= 0:
            dupes[order[owner[n]]].append(idx)
            continue
        kept.append(idx)
        dupes[idx] = []
        later = np.arange(n + 1, len(order))
        close = later[(owner[later] < 0) & (u[later] @ u[n] >= near)]
        owner[close] = n
    return kept, dupes


def diverse_order(order: Sequence[int], vectors: np.ndarray, k: int | None = None) -> list[int]:
    """Greedy k-center over candidates given best-first: start from the best, then take
    the candidate farthest (cosine) from everything taken so far."""
    order = list(order)
    if not order:
        return []
    k = len(order) if k is None else min(k, len(order))
    u = _unit(vectors[order].astype(np.float32))
    taken = [0]
    min_dist = 1.0 - u @ u[0]
    min_dist[0] = -np.inf
    while len(taken) < k:
        nxt = int(np.argmax(min_dist))  # ties go to the better-ranked (earlier) candidate
        taken.append(nxt)
        min_dist = np.minimum(min_dist, 1.0 - u @ u[nxt])
        min_dist[taken] = -np.inf
    return [order[i] for i in taken]


def select(
    probs: np.ndarray,
    vectors: np.ndarray,
    k: int,
    strategy: str = DEFAULT_STRATEGY,
    *,
    diversity: bool = True,
    boost_class: int | None = None,
    seed: int = 0,
    pool_factor: int = 3,
) -> list[int]:
    """Which ``k`` of N unlabelled samples to label next (indices into ``probs``)."""
    score = uncertainty(probs, strategy, seed)
    if boost_class is not None and strategy != "random":
        score = score + BONUS["weak-class"] * (probs.argmax(axis=1) == boost_class)
    order = list(np.argsort(-score, kind="stable"))
    if not diversity:
        return order[:k]
    reps, _ = fold_near_duplicates(order, vectors)
    return diverse_order(reps[: k * pool_factor], vectors, k)


@dataclass
class Verdict:
    """One sample the model disagrees with, and how strongly (see :func:`label_errors`)."""

    index: int
    suggested: int
    strength: float  # p(suggested) - p(label)
    strong: bool
    evidence: dict


def label_errors(
    labels: np.ndarray,
    probs: np.ndarray,
    experts: Sequence[dict[str, Sequence[float]]] | None = None,
    roles: Sequence[str] | None = None,
) -> list[Verdict]:
    """Probably mislabelled samples, from out-of-fold (or held-out test) probabilities.

    Confident learning picks the candidates: a class's threshold t_c is the mean
    probability the model gives class c on samples labelled c; a sample labelled i is a
    candidate when another class is the most probable and p_i < t_i. A candidate is
    *strong* ("the label looks wrong") when p_i <= STRONG_P_LABEL, the suggestion is at
    least STRONG_RATIO times as probable, and the experts that saw the sample
    (``experts[n]``: {name: probabilities}) agree: none has the label as its most probable
    class, most have the suggestion, and there are at least two of them when the run has
    two or more (an image where no hand was found has only the image's word). The rest
    only *disagree*. The suggestion is the most probable class.
    """
    labels = np.asarray(labels, dtype=int)
    k = probs.shape[1]
    thresh = np.full(k, np.inf)
    for c in range(k):
        m = labels == c
        if m.any():
            thresh[c] = probs[m, c].mean()
    rows = np.arange(len(labels))
    own = probs[rows, labels]
    pred = probs.argmax(axis=1)
    experts = experts if experts is not None else [{}] * len(labels)
    views = max((len(e) for e in experts), default=0)
    out = []
    for i in np.nonzero((pred != labels) & (own < thresh[labels]))[0].tolist():
        y, s = int(labels[i]), int(pred[i])
        says = {n: int(np.argmax(p)) for n, p in experts[i].items()}
        agree = (
            y not in says.values() and 2 * sum(c == s for c in says.values()) > len(says) and len(says) >= min(2, views)
        )
        strong = own[i] <= STRONG_P_LABEL and probs[i, s] >= STRONG_RATIO * own[i] and (agree or not views)
        evidence = {
            "label": y,
            "p_label": round(float(own[i]), 4),
            "suggested": s,
            "p_suggested": round(float(probs[i, s]), 4),
            "experts": says,
            "held_out": "test split" if roles is not None and roles[i] == "test" else "out-of-fold",
        }
        out.append(Verdict(int(i), s, float(probs[i, s] - own[i]), bool(strong), evidence))
    return out


def evidence_text(ev: dict) -> str:
    """A label-error or disagrees flag's evidence in words, e.g. "out-of-fold: label 2 at
    3 %, 4 at 94 %; image, hand pose and finger count all say 4"."""
    y, s = ev["label"], ev["suggested"]
    text = f"{ev['held_out']}: label {y} at {rough_pct(ev['p_label'])}, {s} at {rough_pct(ev['p_suggested'])}"
    order = list(EXPERT_NAMES)
    got = sorted(ev.get("experts", {}).items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    says = {EXPERT_NAMES.get(n, n): c for n, c in got}
    if not says:
        return text
    if len(says) > 1 and set(says.values()) == {s}:
        names = list(says)
        return f"{text}; {', '.join(names[:-1])} and {names[-1]} {'both' if len(names) == 2 else 'all'} say {s}"
    parts = [f"{n} says {c}" + (" (your label)" if c == y else "") for n, c in says.items()]
    return f"{text}; {', '.join(parts)}"


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


def _probs_and_vectors(store: Store, run: RunRecord, sample_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
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
        UP, _ = _probs_and_vectors(store, run, unlabelled)
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


@dataclass
class QueueItem:
    sample_id: int
    path: str
    label: int | None
    pred: int | None
    confidence: float | None
    probs: list[float] | None
    reasons: list[str]
    score: float
    suggested: int | None
    duplicates: list[int] = field(default_factory=list)
    evidence: dict | None = None  # of the label-error or disagrees flag (see evidence_text)
    # Other flagged frames of the same take (a hold, a burst: captured as one pose), folded
    # into this item; the review screen's answer applies to them too.
    hold: list[int] = field(default_factory=list)

    @property
    def why(self) -> str | None:
        """The evidence in words, for label-error and disagrees items."""
        return evidence_text(self.evidence) if self.evidence else None

    def as_json(self) -> dict:
        return {
            "sample_id": self.sample_id,
            "path": self.path,
            "label": self.label,
            "prediction": self.pred,
            "confidence": self.confidence,
            "probs": self.probs,
            "reasons": self.reasons,
            "score": round(self.score, 4),
            "suggested": self.suggested,
            "duplicates": self.duplicates,
            "hold": self.hold,
            "evidence": self.evidence,
            "why": self.why,
        }


def queue(
    store: Store,
    *,
    strategy: str = DEFAULT_STRATEGY,
    reason: str | None = None,
    label: int | None = None,
    limit: int | None = None,
    diversity: bool = True,
    seed: int = 0,
) -> list[QueueItem]:
    """The open flags as a review queue, one item per sample (and per near-duplicate
    cluster), best first."""
    if reason is not None and reason not in REASONS:
        raise UserError(f"unknown reason {reason!r}: use one of {', '.join(REASONS)}")
    if strategy not in STRATEGIES:
        raise UserError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    ensure_fresh(store)
    rows = store.flags.open_with_samples()
    items: dict[int, QueueItem] = {}
    strength: dict[int, float] = {}
    for r in rows:
        it = items.get(r["sample_id"])
        if it is None:
            probs = json.loads(r["probs"]) if r["probs"] else None
            it = items[r["sample_id"]] = QueueItem(
                r["sample_id"], r["path"], r["label"], r["pred"], r["confidence"], probs, [], 0.0, None
            )
        it.reasons.append(r["reason"])
        if r["reason"] in TIER:
            it.suggested = r["suggested"]
            it.evidence = json.loads(r["evidence"]) if r.get("evidence") else None
            strength[it.sample_id] = float(r["score"])
        elif it.suggested is None and r["suggested"] != r["label"]:
            it.suggested = r["suggested"]
    picked = [
        it
        for it in items.values()
        if (reason is None or reason in it.reasons)
        and (label is None or it.label == label or (it.label is None and it.pred == label))
    ]
    if not picked:
        return []
    P = np.array([it.probs or [1.0 / len(CLASSES)] * len(CLASSES) for it in picked])
    unc = uncertainty(P, strategy, seed)
    for it, u in zip(picked, unc, strict=True):
        tier = max((TIER[rsn] for rsn in it.reasons if rsn in TIER), default=None)
        if tier is not None:  # ranked by the strength of the evidence, not by uncertainty
            it.score = tier + strength[it.sample_id]
            if sides_with_label(it):
                it.score -= SIDED_PENALTY
        else:
            it.score = float(u) + sum(BONUS.get(rsn, 0.0) for rsn in set(it.reasons))
        it.reasons.sort(key=REASONS.index)
    order = sorted(range(len(picked)), key=lambda i: -picked[i].score)
    order = fold_takes(store, picked, order)
    if diversity:
        run = active_run(store) or newest_run(store)
        _, X = _probs_and_vectors(store, run, [it.sample_id for it in picked]) if run else (None, None)
        if X is not None and len(X):
            order, dupes = fold_near_duplicates(order, X)
            if limit:
                batch = set(diverse_order(order[: 3 * limit], X, limit))
                order = [i for i in order if i in batch]  # a diverse batch, shown best first
            for i in order:
                picked[i].duplicates = [picked[j].sample_id for j in dupes.get(i, [])]
                if picked[i].duplicates:
                    picked[i].reasons.append(NEAR_DUPLICATE)
    out = [picked[i] for i in order]
    return out[:limit] if limit else out


def sides_with_label(item: QueueItem) -> bool:
    """Whether an expert that saw the sample has its label as its own answer (the finger
    count says 1, your label): weaker evidence against the label than none siding with it."""
    says = (item.evidence or {}).get("experts") or {}
    return item.label is not None and item.label in says.values()


def fold_takes(store: Store, picked: list[QueueItem], order: list[int]) -> list[int]:
    """One item per take: flagged frames of one hold or burst (captures sharing a group,
    i.e. one pose captured in a row) fold into the best-ranked of them (``hold``): a held key
    stores a frame after frame of one pose, and the queue says one thing about them all."""
    by_id = store.by_ids([it.sample_id for it in picked])
    first: dict[str, int] = {}
    kept = []
    for i in order:
        s = by_id.get(picked[i].sample_id)
        key = s.group_key if s is not None and s.source == "capture" and s.group_key else None
        if key is not None and key in first:
            picked[first[key]].hold.append(picked[i].sample_id)
            continue
        if key is not None:
            first[key] = i
        kept.append(i)
    return kept


def apply_action(store: Store, sample_id: int, action: Action, label: int | None = None) -> dict[str, Any]:
    """Carry out the user's answer to a queue item (confirm, relabel, exclude, delete or
    skip) on the store; returns ``{"sample", "action", "label"}`` (the JSON of `label`)."""
    if action == "confirm":
        s = store.confirm(sample_id)
    elif action == "relabel":
        if label is None:
            raise UserError("relabel needs a label 0–5")
        s = store.get(sample_id)
        s = store.confirm(sample_id) if s.label == label else store.set_label(sample_id, label, reason="review")
    elif action == "exclude":
        s = store.set_excluded(sample_id, True)
    elif action == "delete":
        s = store.delete(sample_id)
    elif action == "skip":
        s = store.get(sample_id)
    else:
        raise UserError(f"unknown action {action!r}")
    return {"sample": s.id, "action": action, "label": s.label}


def unlabelled_items(store: Store, model: Model | None = None) -> list[QueueItem]:
    """Before any run exists the queue is empty (flags come from a run), yet unlabelled
    captures wait for a label: they are the review items then, in capture order. With the
    shipped starter ``model`` its count is the suggestion where it sees a hand."""
    samples = store.samples(unlabelled=True)
    samples = [s for s in samples if not s.excluded]
    items = [QueueItem(s.id, s.path, None, None, None, None, ["unlabelled"], 0.0, None) for s in samples]
    if model is None or not samples:
        return items
    f = model.features_of_samples(store, samples)
    for it, p, hand in zip(items, model.probs(f), f.hand, strict=True):
        if hand:  # no hand: the starter cannot count, so it suggests nothing
            k = int(p.argmax())
            it.pred, it.suggested, it.confidence = CLASSES[k], CLASSES[k], float(p[k])
            it.probs = [float(x) for x in p]
    return items

"""The review queue: the open flags as one item per sample, per take and per cluster of
near-duplicates, best first; and the user's answer to an item."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fingertui.data.store import Store
from fingertui.errors import UserError
from fingertui.labels import CLASSES
from fingertui.review.evidence import evidence_text
from fingertui.review.flags import ensure_fresh, probs_and_vectors
from fingertui.review.ranking import (
    BONUS,
    DEFAULT_STRATEGY,
    SIDED_PENALTY,
    STRATEGIES,
    TIER,
    diverse_order,
    fold_near_duplicates,
    uncertainty,
)
from fingertui.review.reasons import NEAR_DUPLICATE, REASONS
from fingertui.runs.records import active_run, newest_run

if TYPE_CHECKING:  # the starter model suggests labels for unlabelled captures
    from fingertui.learn.model import Model


# What a user can answer a queue item with (apply_action).
Action = Literal["confirm", "relabel", "exclude", "delete", "skip"]


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


def items(
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
    by_sample: dict[int, QueueItem] = {}
    strength: dict[int, float] = {}
    for r in rows:
        it = by_sample.get(r["sample_id"])
        if it is None:
            probs = json.loads(r["probs"]) if r["probs"] else None
            it = by_sample[r["sample_id"]] = QueueItem(
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
        for it in by_sample.values()
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
        _, X = probs_and_vectors(store, run, [it.sample_id for it in picked]) if run else (None, None)
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

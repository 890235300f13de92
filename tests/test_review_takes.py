"""The review queue: one item per take (a hold, a burst), and a disagreement that an
expert backs the label on ranks below one that none backs."""

from __future__ import annotations

import json

import numpy as np

from fingertui.data.capture import CaptureSession
from fingertui.review import queue
from tests.conftest import near_copy, noise_image


def flag_row(sample, reason, score, suggested, experts=None, probs=None):
    probs = probs or [0.1, 0.6, 0.1, 0.1, 0.05, 0.05]
    evidence = None
    if reason in ("disagrees", "label-error"):
        evidence = {
            "label": sample.label,
            "p_label": probs[sample.label],
            "suggested": suggested,
            "p_suggested": probs[suggested],
            "experts": experts or {},
            "held_out": "out-of-fold",
        }
    return {
        "sample_id": sample.id,
        "path": sample.path,
        "label": sample.label,
        "pred": int(np.argmax(probs)),
        "confidence": max(probs),
        "probs": json.dumps(probs),
        "reason": reason,
        "score": score,
        "suggested": suggested,
        "evidence": json.dumps(evidence) if evidence else None,
    }


def test_a_held_key_is_one_item_and_an_expert_backing_the_label_ranks_it_lower(store, monkeypatch):
    cap = CaptureSession(store)
    base = noise_image(7, 64)
    # Holding 1: thirteen near-identical frames, one take.
    hold = [cap.capture(np.asarray(near_copy(base, k)), 1, burst="hold-1") for k in range(13)]
    # A 1 captured in another session: another take (one of the same label within a moment
    # of the hold would belong to it).
    other = CaptureSession(store).capture(np.asarray(noise_image(8, 64)), 1)
    third = cap.capture(np.asarray(noise_image(9, 64)), 2)
    assert len({s.id for s in hold}) == 13
    rows = []
    for k, s in enumerate(hold):
        # The model leans to 0; the finger count says 1, the label: the flood the issue saw.
        rows.append(flag_row(s, "disagrees", 0.5 + k / 100, 0, experts={"image": 0, "fingers": 1}))
    rows.append(flag_row(other, "disagrees", 0.2, 0, experts={"image": 0, "pose": 0}))  # none backs 1
    rows.append(flag_row(third, "unsure", 0.3, 2))
    monkeypatch.setattr(store.flags, "open_with_samples", lambda: rows)
    items = queue.items(store, diversity=False)
    ids = [it.sample_id for it in items]
    held = [it for it in items if it.sample_id in {s.id for s in hold}]
    assert len(held) == 1, f"a hold was {len(held)} items: {[(it.sample_id, it.reasons, it.hold) for it in items]}"
    assert sorted([held[0].sample_id, *held[0].hold]) == sorted(s.id for s in hold)
    # The weaker disagreement (strength 0.2) whose experts all side against the label ranks
    # above the stronger one (0.62) that the finger count backs.
    assert ids.index(other.id) < ids.index(held[0].sample_id)
    assert len(items) == 3


def test_reviewing_a_take_answers_every_frame_of_it(store, monkeypatch):
    cap = CaptureSession(store)
    base = noise_image(3, 64)
    hold = [cap.capture(np.asarray(near_copy(base, k)), 1, burst="hold-x") for k in range(4)]
    rows = [flag_row(s, "disagrees", 0.5, 0, experts={"image": 0}) for s in hold]
    monkeypatch.setattr(store.flags, "open_with_samples", lambda: rows)
    [item] = queue.items(store, diversity=False)
    for sid in [item.sample_id, *item.hold]:
        queue.apply_action(store, sid, "relabel", 0)
    assert {store.get(s.id).label for s in hold} == {0}

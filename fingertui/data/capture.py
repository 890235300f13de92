"""Capturing snapshots from the live view into the store (used by the TUI, and tests)."""

from __future__ import annotations

import io
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from fingertui.data import splits
from fingertui.data.sessions import GAP_S as SESSION_GAP_S
from fingertui.data.store import Sample, Store

# Captures of one label within this many seconds are consecutive frames of one pose: they
# share a group, so they always land in the same split.
SAME_POSE_S = 2.0
# Holding a digit key: the terminal repeats the key (typically after 250–660 ms, then
# 25–33 times a second; there is no key-up event). Presses of one key closer together
# than HOLD_GAP_S are one hold; a hold captures at most HOLD_RATE frames a second,
# whatever the repeat rate, so a long hold does not fill the store with near-copies.
HOLD_GAP_S = 0.75
HOLD_RATE = 4.0


def id_span(ids: list[int]) -> str:
    """Sample ids for a message: "41-52" when consecutive, else listed (long lists cut)."""
    ids = sorted(ids)
    if len(ids) > 1 and ids[-1] - ids[0] == len(ids) - 1:
        return f"{ids[0]}-{ids[-1]}"
    shown = ", ".join(map(str, ids[:6]))
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > 6 else "")


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class Take:
    """What one key press stored: a single capture, or every frame of a burst or a hold."""

    key: str | None  # the burst's or hold's id; None for a single capture
    label: int | None
    ids: list[int] = field(default_factory=list)


@dataclass
class HoldPacer:
    """Turns the key events of a held digit key into captures at a steady rate.

    ``press(label, now)`` says whether this event captures; a press of another key, or one
    after a pause longer than ``gap``, starts a new hold (and always captures, so a single
    tap is a single capture)."""

    rate: float = HOLD_RATE
    gap: float = HOLD_GAP_S
    label: int | None = None
    started: float = 0.0
    last_event: float = -1e9
    next_due: float = 0.0
    captured: int = 0
    number: int = 0  # counts holds, for their ids

    @property
    def interval(self) -> float:
        return 1.0 / self.rate

    def active(self, now: float) -> bool:
        return self.label is not None and now - self.last_event <= self.gap

    @property
    def key(self) -> str:
        """The id the captures of this hold share (their take, their split group)."""
        return f"hold{self.number}"

    def press(self, label: int, now: float) -> bool:
        if not self.active(now) or label != self.label:
            self.label, self.started, self.captured = label, now, 0
            self.number += 1
            self.next_due = now
        self.last_event = now
        if now < self.next_due:
            return False
        # Due times advance by the interval, not from the event that happened to arrive,
        # so repeat jitter does not slow the rate down; a stall does not cause a catch-up.
        self.next_due = max(self.next_due + self.interval, now)
        self.captured += 1
        return True

    def end(self) -> None:
        self.label = None


def new_session_id() -> str:
    """A capture sitting's name: when it started, and a few random letters."""
    return time.strftime("capture %Y-%m-%d %H:%M:%S ") + uuid.uuid4().hex[:4]


@dataclass
class CaptureSession:
    store: Store
    id: str = field(default_factory=lambda: new_session_id())
    history: list[Take] = field(default_factory=list)  # newest last
    last_duplicate: bool = False  # the newest capture was a frame already stored (nothing added)
    _last: tuple[int | None, float, str] | None = None  # (label, time, group hint)

    def capture(
        self,
        crop: np.ndarray,
        label: int | None,
        *,
        burst: str | None = None,
        prediction: tuple[int | None, int | None, float | None] | None = None,
    ) -> Sample:
        """Store one square crop (RGB array) atomically with its label, session and the
        model's prediction at capture time (run id, label, confidence)."""
        img = Image.fromarray(crop)
        now = time.monotonic()
        if self._last is not None and now - self._last[1] > SESSION_GAP_S:
            # A long pause is a new sitting (sessions.py): validation treats it as another day.
            self.id = new_session_id()
        if burst is not None:
            hint = f"burst:{self.id}:{burst}"
        elif self._last and self._last[0] == label and now - self._last[1] < SAME_POSE_S:
            hint = self._last[2]
        else:
            hint = f"pose:{self.id}:{uuid.uuid4().hex[:8]}"
        self._last = (label, now, hint)
        ph = splits.phash(img)
        data = encode_png(img)
        existing = [splits.Existing(p, g, s) for _, p, g, s in self.store.group_index()]
        [(group_key, split)] = splits.plan(
            [splits.Item(label, ph, hint, None, hint)], existing, self.store.split_counts()
        )
        res = self.store.add_image(
            data,
            "png",
            width=img.width,
            height=img.height,
            source="capture",
            label=label,
            split=split,
            group_key=group_key,
            phash=ph,
            session=self.id,
            actor="user",
            reason="capture",
            capture=prediction,
        )
        self.last_duplicate = res.duplicate
        if not res.duplicate:
            if burst is not None and self.history and self.history[-1].key == burst:
                self.history[-1].ids.append(res.sample.id)
            else:
                self.history.append(Take(burst, label, [res.sample.id]))
        return res.sample

    def undo_last(self) -> list[Sample]:
        """Take back this session's newest take (one capture, or a whole burst or hold) in
        one atomic step; [] when there is nothing left to take back."""
        while self.history:
            take = self.history.pop()
            removed = self.store.remove_captures(take.ids)
            if removed:
                return removed
            # every frame of it was deleted elsewhere (review, gallery): the one before
        return []

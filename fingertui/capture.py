"""Capturing snapshots from the live view into the store (used by the TUI, and tests)."""

from __future__ import annotations

import io
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from fingertui import splits
from fingertui.errors import UserError
from fingertui.store import Sample, Store

# Captures of one label within this many seconds are consecutive frames of one pose: they
# share a group, so they always land in the same split.
SAME_POSE_S = 2.0


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class CaptureSession:
    store: Store
    id: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6])
    history: list[int] = field(default_factory=list)  # sample ids, newest last
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
        if not res.duplicate:
            self.history.append(res.sample.id)
        return res.sample

    def undo_last(self) -> Sample | None:
        """Remove this session's newest capture exactly; None when there is none."""
        while self.history:
            sid = self.history.pop()
            try:
                return self.store.remove_capture(sid)
            except UserError:  # already deleted elsewhere (review): try the one before
                continue
        return None

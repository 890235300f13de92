"""A procedural hand with N raised fingers, for trying fingertui without a camera.

Every few seconds the scene changes the count (0–5), which fingers are up, pose, size,
skin tone, background clutter and lighting; between frames the hand drifts a little and
sensor noise changes. ``truth`` holds the count drawn — for tests and benchmarks only;
the user labels what they see.
"""

from __future__ import annotations

import math
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

W, H = 320, 240
SKIN = [(241, 194, 167), (224, 172, 105), (198, 134, 66), (141, 85, 36), (255, 219, 172), (172, 112, 80)]


class HandScene:
    def __init__(self, seed: int | None = None, hold_s: float = 3.0) -> None:
        self.rng = np.random.default_rng(seed)
        self.hold_s = hold_s
        self.truth = 0
        self._changed = -1e9
        self._t = 0.0
        self.new_pose()

    def new_pose(self) -> None:
        r = self.rng
        self.truth = int(r.integers(0, 6))
        # Which fingers are up: any `truth` of thumb, index, middle, ring, little.
        self.up = set(r.choice(5, self.truth, replace=False).tolist())
        self.skin = SKIN[int(r.integers(len(SKIN)))]
        self.scale = float(r.uniform(0.8, 1.15))
        self.angle = float(r.uniform(-25, 25))
        self.cx, self.cy = float(r.uniform(0.42, 0.58) * W), float(r.uniform(0.5, 0.62) * H)
        self.light = float(r.uniform(0.7, 1.2))
        self.background = self._background()
        self.phase = float(r.uniform(0, 6.28))
        self._layers = self._hand()  # drawn once per pose; frames only move it

    def _background(self) -> Image.Image:
        r = self.rng
        base = np.linspace(r.integers(30, 200, 3), r.integers(30, 200, 3), H).astype(np.uint8)
        img = Image.fromarray(np.repeat(base[:, None, :], W, axis=1))
        d = ImageDraw.Draw(img)
        for _ in range(int(r.integers(2, 8))):  # clutter: shelves, posters, lamps
            x, y = int(r.integers(0, W)), int(r.integers(0, H))
            w, h = int(r.integers(10, 90)), int(r.integers(10, 70))
            colour = tuple(int(c) for c in r.integers(0, 255, 3))
            (d.rectangle if r.random() < 0.6 else d.ellipse)([x, y, x + w, y + h], fill=colour)
        return img.filter(ImageFilter.GaussianBlur(1.5))

    def _hand(self) -> tuple[Image.Image, Image.Image]:
        s = self.scale
        layer = Image.new("RGB", (W, H))
        mask = Image.new("L", (W, H), 0)
        skin = tuple(int(min(255, c * self.light)) for c in self.skin)
        for canvas, fill in ((ImageDraw.Draw(layer), skin), (ImageDraw.Draw(mask), 255)):
            cx, cy = W / 2, H / 2 + 20 * s
            pw, ph = 62 * s, 70 * s
            canvas.rounded_rectangle(
                [cx - pw / 2, cy - ph / 2, cx + pw / 2, cy + ph / 2], radius=int(18 * s), fill=fill
            )
            canvas.rectangle([cx - 22 * s, cy + ph / 2 - 5, cx + 22 * s, H], fill=fill)  # wrist
            for k in range(4):  # index … little, left to right
                fx = cx - pw / 2 + 9 * s + k * 15 * s
                length = (62 if k in (1, 2) else 52 if k == 0 else 42) * s if (k + 1) in self.up else 14 * s
                canvas.rounded_rectangle(
                    [fx - 6 * s, cy - ph / 2 - length, fx + 6 * s, cy - ph / 2 + 8], radius=int(6 * s), fill=fill
                )
            tx, ty = cx + pw / 2 - 4, cy + 5 * s
            if 0 in self.up:  # thumb out to the side and up
                canvas.polygon(
                    [(tx, ty), (tx + 40 * s, ty - 38 * s), (tx + 50 * s, ty - 28 * s), (tx + 8, ty + 16 * s)], fill=fill
                )
            else:
                canvas.rounded_rectangle([tx - 10, ty - 8 * s, tx + 10 * s, ty + 14 * s], radius=int(6 * s), fill=fill)
        # Soft edges and shading so it reads as a hand, not a stencil.
        shade = Image.new("RGB", (W, H), tuple(int(c * 0.75) for c in skin))
        layer = Image.composite(layer, shade, mask.filter(ImageFilter.GaussianBlur(3)))
        return layer, mask.filter(ImageFilter.GaussianBlur(1))

    def next_frame(self, now: float | None = None) -> np.ndarray:
        now = time.monotonic() if now is None else now
        if now - self._changed > self.hold_s:
            self.new_pose()
            self._changed = now
        self._t += 1
        wob = math.sin(self._t / 6 + self.phase)
        layer, mask = self._layers
        angle = self.angle + 4 * wob
        layer = layer.rotate(angle, resample=Image.Resampling.BILINEAR, center=(W / 2, H / 2 + 20))
        mask = mask.rotate(angle, resample=Image.Resampling.BILINEAR, center=(W / 2, H / 2 + 20)).filter(
            ImageFilter.GaussianBlur(1)
        )
        dx, dy = int(self.cx - W / 2 + 5 * wob), int(self.cy - H / 2 + 3 * math.cos(self._t / 9))
        frame = self.background.copy()
        frame.paste(layer, (dx, dy), mask)
        arr = np.asarray(frame).astype(np.int16)
        arr += self.rng.integers(-8, 9, arr.shape, dtype=np.int16)  # sensor noise
        return arr.clip(0, 255).astype(np.uint8)

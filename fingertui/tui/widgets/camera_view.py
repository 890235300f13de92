"""The live camera picture with the capture square drawn on it.

Drawn with coloured half-block cells (each cell shows two pixels, top and bottom), which
every terminal and tmux display. textual-image was tried first: under tmux its output
arrived as literal escape sequences, and it re-encodes each frame; this renderer is a
few numpy operations per frame and keeps styles cached.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw
from rich.color import Color, ColorType
from rich.color_triplet import ColorTriplet
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

# MediaPipe's hand skeleton: wrist to each finger's base, then along each finger.
BONES = [
    (0, 1),
    (1, 2),
    (2, 3),
    (3, 4),
    (0, 5),
    (5, 6),
    (6, 7),
    (7, 8),
    (5, 9),
    (9, 10),
    (10, 11),
    (11, 12),
    (9, 13),
    (13, 14),
    (14, 15),
    (15, 16),
    (13, 17),
    (0, 17),
    (17, 18),
    (18, 19),
    (19, 20),
]


def overlay(
    view: np.ndarray,
    box: tuple[int, int, int, int],
    colour: tuple[int, int, int],
    skeleton: np.ndarray | None = None,
) -> Image.Image:
    """The frame as the user sees it with the capture square outlined and, when a hand was
    found, its skeleton drawn over it."""
    img = Image.fromarray(np.ascontiguousarray(view))
    draw = ImageDraw.Draw(img)
    width = max(2, img.width // 80)
    if skeleton is not None:
        pts = [tuple(map(float, p)) for p in skeleton]
        for a, b in BONES:
            draw.line([pts[a], pts[b]], fill=(0, 200, 255), width=max(1, width // 2))
    draw.rectangle(box, outline=colour, width=width)
    return img


@lru_cache(maxsize=4096)
def _style(top: int, bottom: int) -> Style:
    # Colours are packed 0xRRGGBB, quantised to 4 bits a channel: neighbouring cells often
    # share a style, which keeps terminal output small. A frame has a few thousand styles;
    # the cache keeps about a frame's, each entry several objects every full garbage
    # collection scans (tui/collector.py).
    return Style.from_color(_colour(top), _colour(bottom))


def _colour(rgb: int) -> Color:
    """Rich's truecolor ``Color`` of a packed 0xRRGGBB, made directly (``Color.from_rgb``
    takes twice as long, and a frame makes thousands)."""
    return Color(f"#{rgb:06x}", ColorType.TRUECOLOR, triplet=ColorTriplet(rgb >> 16, (rgb >> 8) & 255, rgb & 255))


def halfblock_strips(img: Image.Image, width: int, height: int) -> list[Strip]:
    """Fit ``img`` into width × height cells (aspect kept), as one Strip per row: each cell
    an upper half block, its top pixel the foreground, its bottom pixel the background. A
    run of cells with the same two colours is one segment."""
    scale = min(width / img.width, 2 * height / img.height)
    w, h = max(1, int(img.width * scale)), max(2, int(img.height * scale) // 2 * 2)
    arr = np.asarray(img.convert("RGB").resize((w, h), Image.Resampling.BILINEAR)).astype(np.int64) & 0xF0
    packed = (arr[..., 0] << 16) | (arr[..., 1] << 8) | arr[..., 2]
    pairs = (packed[0::2] << 24) | packed[1::2]  # (rows, w): each cell's top and bottom colour
    uniq, index = np.unique(pairs, return_inverse=True)
    styles = [_style(int(p) >> 24, int(p) & 0xFFFFFF) for p in uniq.tolist()]
    index = index.reshape(pairs.shape)
    pad = (width - w) // 2
    strips = []
    for row in index:
        starts = np.flatnonzero(np.diff(row)) + 1
        bounds = np.concatenate(([0], starts, [w])).tolist()
        segs = [Segment(" " * pad)] if pad else []
        segs += [Segment("▀" * (b - a), styles[row[a]]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        strips.append(Strip(segs, pad + w))
    return strips


class CameraView(Widget):
    """Shows the newest frame; keeps the last picture for tests to inspect."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.picture: Image.Image | None = None
        self._strips: list[Strip] = []
        self._for: tuple[int, int] = (0, 0)

    def show(self, img: Image.Image) -> None:
        self.picture = img
        self._strips = []
        self.refresh()

    def render_line(self, y: int) -> Strip:
        size = (self.size.width, self.size.height)
        if self.picture is not None and (not self._strips or self._for != size) and size[0] and size[1]:
            self._strips = halfblock_strips(self.picture, *size)
            self._for = size
        top = (self.size.height - len(self._strips)) // 2
        row = y - top
        return self._strips[row] if 0 <= row < len(self._strips) else Strip.blank(self.size.width)

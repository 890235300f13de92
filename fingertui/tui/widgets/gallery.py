"""A page of thumbnails, drawn with the same half-block cells as the camera view."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from fingertui.tui.widgets.camera_view import halfblock_strips

THUMB_W = 22  # cells (and pixels) wide
THUMB_H = 11  # rows: 22 pixels tall, two a cell
# A tile: a one-cell frame around the thumbnail and its caption row, then a gap.
TILE_W = THUMB_W + 2 + 1
TILE_H = THUMB_H + 3
CACHED = 256  # thumbnails kept (a few pages' worth)

FRAME = Style(bgcolor="yellow")
CAPTION = Style(color="grey70")
CAPTION_SELECTED = Style(color="black", bgcolor="yellow", bold=True)
MISSING = Style(color="red")


@dataclass(frozen=True)
class Tile:
    sample_id: int
    path: Path
    caption: str


class Gallery(Widget):
    """Thumbnails in rows, a page at a time; the selected one is framed. Arrow keys are the
    screen's (it moves the selection); a click selects."""

    DEFAULT_CSS = "Gallery { height: 1fr; width: 100%; }"

    @dataclass
    class Selected(Message):
        index: int

    def __init__(
        self,
        loader: Callable[[Path], Image.Image] | None = None,
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.tiles: list[Tile] = []
        self.index = 0
        self.empty = "nothing here"  # what an empty page says
        self._thumbs: OrderedDict[int, list[Strip] | None] = OrderedDict()
        self._load = loader or load_thumbnail

    # --- layout -----------------------------------------------------------------------

    @property
    def per_row(self) -> int:
        return max(1, (self.size.width + 1) // TILE_W)

    @property
    def per_page(self) -> int:
        return self.per_row * max(1, self.size.height // TILE_H)

    @property
    def first(self) -> int:
        """Index of the first tile on the page that holds the selection."""
        return self.index // self.per_page * self.per_page

    @property
    def current(self) -> Tile | None:
        return self.tiles[self.index] if 0 <= self.index < len(self.tiles) else None

    def set_tiles(self, tiles: list[Tile], index: int = 0) -> None:
        self.tiles = tiles
        self.index = min(max(0, index), max(0, len(tiles) - 1))
        self.refresh()
        self.post_message(self.Selected(self.index))

    def move(self, dx: int, dy: int = 0) -> None:
        """Move the selection; left/right wrap across rows, up/down stay in the column."""
        if not self.tiles:
            return
        step = dx + dy * self.per_row
        if dy and not 0 <= self.index + step < len(self.tiles):
            return
        self.index = (self.index + step) % len(self.tiles)
        self.refresh()
        self.post_message(self.Selected(self.index))

    def page(self, step: int) -> None:
        if self.tiles:
            self.index = min(len(self.tiles) - 1, max(0, self.first + step * self.per_page))
            self.refresh()
            self.post_message(self.Selected(self.index))

    def on_resize(self) -> None:
        self.post_message(self.Selected(self.index))  # the page size changed: so did what is shown

    def on_click(self, event: events.Click) -> None:
        col, row = event.x // TILE_W, event.y // TILE_H
        if col >= self.per_row:
            return
        i = self.first + row * self.per_row + col
        if i < len(self.tiles) and i != self.index:
            self.index = i
            self.refresh()
            self.post_message(self.Selected(self.index))

    # --- drawing ----------------------------------------------------------------------

    def thumbnail(self, tile: Tile) -> list[Strip] | None:
        """THUMB_H strips of THUMB_W cells, or None when the image cannot be read."""
        if tile.sample_id in self._thumbs:
            self._thumbs.move_to_end(tile.sample_id)
            return self._thumbs[tile.sample_id]
        try:
            strips = halfblock_strips(self._load(tile.path), THUMB_W, THUMB_H)
            top = (THUMB_H - len(strips)) // 2
            blank = Strip.blank(THUMB_W)
            strips = [blank] * top + [s.extend_cell_length(THUMB_W) for s in strips]
            strips += [blank] * (THUMB_H - len(strips))
        except OSError:
            strips = None
        self._thumbs[tile.sample_id] = strips
        if len(self._thumbs) > CACHED:
            self._thumbs.popitem(last=False)
        return strips

    def _tile_line(self, i: int, dy: int) -> list[Segment]:
        tile = self.tiles[i]
        chosen = i == self.index
        edge = Segment(" ", FRAME if chosen else None)
        if dy == 0 or dy == TILE_H - 1:
            return [Segment(" " * (THUMB_W + 2), FRAME if chosen else None)]
        if dy <= THUMB_H:
            thumb = self.thumbnail(tile)
            if thumb is None:
                text = "image missing" if dy == THUMB_H // 2 + 1 else ""
                body = [Segment(text.center(THUMB_W), MISSING)]
            else:
                body = list(thumb[dy - 1])
            return [edge, *body, edge]
        caption = tile.caption[:THUMB_W].ljust(THUMB_W)
        return [edge, Segment(caption, CAPTION_SELECTED if chosen else CAPTION), edge]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        row, dy = divmod(y, TILE_H)
        start = self.first + row * self.per_row
        if not self.tiles and y == 1:
            return Strip([Segment(" " + self.empty, Style(italic=True))]).extend_cell_length(width).crop(0, width)
        if row >= self.per_page // self.per_row or start >= len(self.tiles):
            return Strip.blank(width)
        segs: list[Segment] = []
        for i in range(start, min(start + self.per_row, len(self.tiles))):
            segs += self._tile_line(i, dy)
            segs.append(Segment(" "))
        return Strip(segs).extend_cell_length(width).crop(0, width)


def load_thumbnail(path: Path) -> Image.Image:
    """The image, decoded small (a JPEG is decoded at a reduced size straight away)."""
    with Image.open(path) as file:
        file.draft("RGB", (THUMB_W * 2, THUMB_H * 4))
        img = file.convert("RGB")
    img.thumbnail((THUMB_W * 2, THUMB_H * 4))
    return img

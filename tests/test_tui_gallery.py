"""The gallery: one class as thumbnails (own captures first), relabel, delete, undo."""

import numpy as np
import pytest

from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.live.camera import ScriptedSource
from fingertui.tui.app import make_app
from fingertui.tui.screens.gallery import GalleryScreen
from fingertui.tui.widgets.gallery import THUMB_H, THUMB_W, TILE_W, Gallery
from tests.conftest import noise_image, save
from tests.test_tui import stored

pytestmark = pytest.mark.slow

RED, BLUE = (224, 32, 32), (32, 48, 224)


def solid(rgb: tuple[int, int, int]) -> np.ndarray:
    """A camera frame of one colour: every capture square of it is that colour."""
    return np.full((240, 320, 3), rgb, np.uint8)


def seeded(ws, tmp_path, n: int = 2) -> list:  # noqa: ANN001
    """``n`` imported images of class 3."""
    for k in range(n):
        save(noise_image(200 + k), tmp_path / "src" / "3" / f"photo{k}.png")
    store = Store(ws)
    import_paths(store, [tmp_path / "src"])
    out = store.samples()
    store.close()
    return out


def tile_colours(gallery: Gallery, tile: int, y: int = 5) -> set[tuple[int, int, int]]:
    """The colours (top and bottom pixel of each cell) tile ``tile`` of the first row draws
    its thumbnail with on row ``y``."""
    x, out = 0, set()
    lo = tile * TILE_W + 1  # a frame cell, then the thumbnail
    for seg in gallery.render_line(y)._segments:
        for ch in seg.text:  # equal neighbouring cells come as one segment
            if ch == "▀" and lo <= x < lo + THUMB_W:
                out |= {tuple(seg.style.color.triplet), tuple(seg.style.bgcolor.triplet)}
            x += 1
    return out


async def open_gallery(app, pilot) -> GalleryScreen:  # noqa: ANN001
    await pilot.press("g")
    await pilot.pause()
    assert isinstance(app.screen, GalleryScreen)
    return app.screen


async def test_gallery_shows_own_captures_first_as_thumbnails(ws, tmp_path):
    imported = seeded(ws, tmp_path)
    app = make_app(ws, ScriptedSource([solid(RED), solid(BLUE)]))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        now = [1000.0]
        app.capture_screen.clock = lambda: now[0]  # two taps a second apart: not one hold
        await pilot.press("3")
        await stored(app)
        app.source.advance()
        now[0] += 1.0
        await pilot.press("3")
        await stored(app)
        red, blue = app.store.samples()[-2:]
        screen = await open_gallery(app, pilot)  # opens on the class just captured
        assert screen.label == 3
        assert [s.id for s in screen.samples] == [blue.id, red.id, *(s.id for s in imported)]
        gallery = screen.query_one(Gallery)
        assert gallery.current.sample_id == blue.id
        # The thumbnails are the images: the newest capture is blue, the one after it red.
        assert tile_colours(gallery, 0) == {BLUE} and tile_colours(gallery, 1) == {RED}
        assert len(tile_colours(gallery, 2)) > 10  # an imported noise picture: many colours
        captions = gallery.render_line(THUMB_H + 1).text
        assert f"{blue.id} yours" in captions and f"{imported[0].id} photo0.png" in captions
        info = str(screen.query_one("#gallery-info").render())
        assert "class 3" in info and "2 captured by you" in info and "2 imported" in info


async def test_gallery_relabels_deletes_and_undoes(ws, tmp_path):
    imported = seeded(ws, tmp_path, 3)
    app = make_app(ws, ScriptedSource([solid(RED)]))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        screen = await open_gallery(app, pilot)
        await pilot.press("right_square_bracket", "right_square_bracket", "right_square_bracket")
        await pilot.pause()
        assert screen.label == 3 and len(screen.samples) == 3
        first, second, third = imported
        await pilot.press("5")  # relabel the framed one: it leaves class 3
        await pilot.pause()
        assert app.store.get(first.id).label == 5
        assert [s.id for s in screen.samples] == [second.id, third.id]
        assert screen.query_one(Gallery).current.sample_id == second.id
        await pilot.press("right", "d")  # the next one, deleted: no question, u brings it back
        await pilot.pause()
        assert [s.id for s in app.store.samples()] == [first.id, second.id]
        assert (ws.trash_dir / ws.abs(third.path).name).exists()
        await pilot.press("u")
        await pilot.pause()
        assert app.store.get(third.id).label == 3 and ws.abs(third.path).exists()
        assert screen.query_one(Gallery).current.sample_id == third.id  # the restored one, framed
        await pilot.press("u")  # then the relabel is undone too
        await pilot.pause()
        assert app.store.get(first.id).label == 3 and len(screen.samples) == 3
        detail = str(screen.query_one("#gallery-detail").render())
        assert "imported from" in detail and "photo" in detail
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "CaptureScreen"


async def test_gallery_is_a_key_in_help_and_the_palette_and_lists_its_keys(ws):
    app = make_app(ws, ScriptedSource([solid(RED)]))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        titles = {c.title: c for c in app.get_system_commands(app.screen)}
        assert "Gallery" in titles
        await pilot.press("question_mark")
        await pilot.pause()
        assert "gallery" in " ".join(str(w.render()) for w in app.screen.query("Static"))
        await pilot.press("escape")
        await titles["Gallery"].callback()
        await pilot.pause()
        assert isinstance(app.screen, GalleryScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        help_text = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "[ " in help_text and "previous class" in help_text and "[/b]" not in help_text
        await pilot.press("escape")
        await pilot.pause()
        got = {c.title for c in app.get_system_commands(app.screen)}
        for b in GalleryScreen.BINDINGS:
            want = b.description if not b.key.isdigit() else f"{b.description.split()[0]} {b.key}"
            assert want.capitalize() in got, want
        empty = app.screen.query_one(Gallery).render_line(1).text
        assert "no images of 0 yet" in empty

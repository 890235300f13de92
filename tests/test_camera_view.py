"""The live picture in the terminal: each cell a half block showing two pixels."""

import numpy as np
from PIL import Image

from fingertui.tui.widgets.camera_view import halfblock_strips


def cells(strip):
    """(character, top colour, bottom colour) of each cell, padding as (" ", None, None)."""
    out = []
    for seg in strip:
        for ch in seg.text:
            if ch == " ":
                out.append((" ", None, None))
            else:
                fg, bg = seg.style.color.get_truecolor(), seg.style.bgcolor.get_truecolor()
                out.append((ch, tuple(fg), tuple(bg)))
    return out


def test_each_cell_shows_its_two_pixels_in_quantised_colour():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8))
    strips = halfblock_strips(img, 30, 12)  # 12 rows of 20 cells fit; 5 columns of padding each side
    assert len(strips) == 12
    pixels = np.asarray(img.convert("RGB").resize((20, 24), Image.Resampling.BILINEAR)).astype(int) & 0xF0
    for y, strip in enumerate(strips):
        got = cells(strip)
        assert strip.cell_length == 25 and got[:5] == [(" ", None, None)] * 5
        want = [("▀", tuple(pixels[2 * y, x]), tuple(pixels[2 * y + 1, x])) for x in range(20)]
        assert got[5:] == want


def test_a_run_of_one_colour_is_one_segment():
    img = Image.new("RGB", (40, 20), (200, 100, 50))
    strips = halfblock_strips(img, 40, 10)
    assert all(len(list(strip)) == 1 for strip in strips)
    assert cells(strips[0])[0] == ("▀", (192, 96, 48), (192, 96, 48))

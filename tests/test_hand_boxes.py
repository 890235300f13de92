"""Hand boxes (learn/boxes.py): the squares around a hand, and a hand moved into and out of
a box."""

from __future__ import annotations

import numpy as np

from fingertui.learn import hands as H
from fingertui.learn.boxes import (
    BoxSmoother,
    centred_square,
    crop,
    crop_box,
    hand_from_box,
    hand_in_box,
    square_in_image,
)
from tests.test_pose import TWO


def test_crop_box_is_a_square_inside_the_image_around_the_hand() -> None:
    x0, y0, x1, y1 = crop_box(TWO, margin=0.25)
    assert x1 - x0 == y1 - y0
    w, h = TWO.image_size
    assert 0 <= x0 and 0 <= y0 and x1 <= w and y1 <= h
    bx0, by0, bx1, by1 = TWO.bbox
    assert x0 <= bx0 and y0 <= by0 and x1 >= bx1 and y1 >= by1
    # A box larger than a small image becomes the largest square that fits.
    assert square_in_image(50, 50, 500, (120, 90)) == (5, 0, 95, 90)
    # Near the edge the square slides inward instead of shrinking.
    assert square_in_image(5, 5, 40, (200, 200)) == (0, 0, 40, 40)


def test_the_fixed_square_is_centred_and_cut_as_shown() -> None:
    img = np.arange(100 * 80 * 3, dtype=np.uint32).reshape(80, 100, 3).astype(np.uint8)
    box = centred_square(img.shape, 0.5)
    assert box == (30, 20, 70, 60)
    cut = crop(img, box)
    assert cut.shape == (40, 40, 3) and cut.flags.c_contiguous
    assert (cut == img[20:60, 30:70]).all()
    assert centred_square((10, 10, 3), 0.1) == (1, 1, 9, 9)  # never below 8 pixels


def test_box_smoother_glides_holds_and_lets_go() -> None:
    sm = BoxSmoother(alpha=0.5, hold=2)
    size = (640, 480)
    assert sm.update((100, 100, 200, 200), size) == (100, 100, 200, 200)
    moved = sm.update((200, 100, 300, 200), size)
    assert moved is not None and moved[0] == 150  # halfway: smoothed, not jumped
    for _ in range(20):
        last = sm.update((200, 100, 300, 200), size)
    assert last == (200, 100, 300, 200)
    assert sm.update(None, size) == last  # a missed frame keeps the square
    assert sm.update(None, size) == last
    assert sm.update(None, size) is None  # then lets go


def test_a_hand_moved_into_a_box_and_back_lands_on_the_same_pixels() -> None:
    box = crop_box(TWO, margin=0.25)
    inside = hand_in_box(TWO, box)
    assert inside.image_size == (box[2] - box[0], box[3] - box[1])
    np.testing.assert_allclose(inside.pixels + np.array(box[:2]), TWO.pixels, atol=1e-3)
    back = hand_from_box(inside, box, TWO.image_size)
    assert back.image_size == TWO.image_size
    np.testing.assert_allclose(back.landmarks, TWO.landmarks, atol=1e-5)


def test_a_hand_found_in_a_bordered_picture_is_placed_back_in_the_picture() -> None:
    img = np.zeros((60, 100, 3), np.uint8)
    img[:, -1] = 255  # the right edge, replicated outwards
    wide, px, py = H.with_border(img, 0.35)
    assert (px, py) == (35, 21) and wide.shape == (102, 170, 3)
    assert (wide[py:-py, px:-px] == img).all() and (wide[:, -px:] == 255).all()
    # A point at the bordered picture's (px, py) is the picture's corner; its far corner too.
    lm = np.zeros((H.N_LANDMARKS, 3), np.float32)
    lm[1, :2] = (px / wide.shape[1], py / wide.shape[0])
    lm[2, :2] = ((px + 100) / wide.shape[1], (py + 60) / wide.shape[0])
    found = H.Hand(lm, lm.copy(), "Right", 1.0, 1.0, (wide.shape[1], wide.shape[0]))
    back = hand_from_box(found, (-px, -py, 100 + px, 60 + py), (100, 60))
    assert back.image_size == (100, 60)
    np.testing.assert_allclose(back.pixels[1], (0, 0), atol=1e-3)
    np.testing.assert_allclose(back.pixels[2], (100, 60), atol=1e-3)

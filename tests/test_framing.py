"""`folder:` and `video:` sources are framed to the whole image by default (a 60 % square
cut the fingertips off 100 px photos); a camera keeps its centred square."""

import numpy as np
import pytest
from PIL import Image

from fingertui.live.camera import DemoSource, FolderSource, ScriptedSource, VideoSource, crop_square
from fingertui.live.tracking import HandTracker
from fingertui.tui.app import make_app
from tests.helpers import wait_for
from tests.test_tui import frames, stored

cv2 = pytest.importorskip("cv2")


def photo(seed: int) -> np.ndarray:
    """A 100×80 picture (not square, so "whole" and "100 % square" differ)."""
    rng = np.random.default_rng(seed)
    return np.asarray(Image.fromarray(rng.integers(0, 255, (8, 10, 3), dtype=np.uint8)).resize((100, 80)))


def test_which_sources_start_on_the_whole_image(tmp_path):
    Image.fromarray(photo(1)).save(tmp_path / "a.png")
    video = tmp_path / "v.avi"
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (100, 80))
    for k in range(3):
        out.write(photo(k)[:, :, ::-1].copy())
    out.release()
    sources = [FolderSource(str(tmp_path)), VideoSource(str(video)), DemoSource(), ScriptedSource(frames())]
    try:
        assert [s.whole_frame for s in sources] == [True, True, False, False]
    finally:
        for s in sources:
            s.close()


@pytest.mark.slow
async def test_folder_capture_keeps_the_whole_photo_and_resize_goes_back_to_squares(tmp_path, monkeypatch):
    monkeypatch.setenv("FINGERTUI_DEV_HANDS", "1")  # a stand-in hand detector: finds no hand here
    (tmp_path / "photos").mkdir()
    pic = photo(3)
    Image.fromarray(pic).save(tmp_path / "photos" / "a.png")
    app = make_app(tmp_path / "ws", FolderSource(str(tmp_path / "photos")))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.source.latest() is not None)
        await pilot.press("f")  # a fixed framing: what the square falls back to without a hand
        await pilot.press("3")
        await stored(app)
        whole = np.asarray(Image.open(app.workspace.abs(app.store.samples()[-1].path)))
        assert np.array_equal(whole, pic[:, ::-1])  # the whole photo, mirrored as shown
        assert "whole image" in str(app.screen.query_one("#status").render())
        await pilot.press("minus", "4")
        await stored(app)
        smaller = np.asarray(Image.open(app.workspace.abs(app.store.samples()[-1].path)))
        assert np.array_equal(smaller, crop_square(pic, 0.95, mirror=True))
        await pilot.press("plus", "plus")  # 100 % square, then the whole image again
        await pilot.pause()
        assert app.framing.square(pic.shape, None) == (0, 0, 100, 80)
        assert "whole image" in str(app.screen.query_one("#status").render())


class NoHands:
    def detect(self, frame):
        return []


@pytest.mark.slow
async def test_folder_without_a_hand_falls_back_to_the_whole_photo_while_following(tmp_path, monkeypatch):
    monkeypatch.setenv("FINGERTUI_DEV_HANDS", "1")
    (tmp_path / "photos").mkdir()
    pic = photo(5)
    Image.fromarray(pic).save(tmp_path / "photos" / "a.png")
    app = make_app(tmp_path / "ws", FolderSource(str(tmp_path / "photos")))
    tracked = []
    monkeypatch.setattr(app, "_make_tracker", lambda: tracked.append(1) or HandTracker(NoHands()))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: tracked and app.source.latest() is not None)
        assert app.framing.follow and tracked  # the square would follow a hand it found
        await pilot.press("2")
        await stored(app)
        captured = np.asarray(Image.open(app.workspace.abs(app.store.samples()[-1].path)))
        assert np.array_equal(captured, pic[:, ::-1])

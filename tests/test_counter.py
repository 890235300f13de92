"""The Python API as a program would call it: ``from fingertui import Counter``, on real photos."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.realdata import DIGITS, FRAMES, needs_datasets, photos, trained_workspace


def rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def jittered(img: np.ndarray, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` frames of a hand held still: shifted by a pixel or two, a little sensor noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        dx, dy = rng.integers(-2, 3, 2)
        f = np.roll(img, (int(dy), int(dx)), axis=(0, 1)).astype(np.int16) + rng.integers(-3, 4, img.shape)
        out.append(f.clip(0, 255).astype(np.uint8))
    return out


def test_import_fingertui_stays_light_and_counter_needs_no_torch_or_textual():
    code = (
        "import sys, fingertui\n"
        "light = [m for m in ('torch', 'cv2', 'textual', 'mediapipe') if m in sys.modules]\n"
        "from fingertui import Counter, Count\n"
        "after = [m for m in ('torch', 'textual') if m in sys.modules]\n"
        "print(light, after, Counter.__name__, Count.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] [] Counter Count"


def test_a_folder_that_is_no_workspace_is_one_clear_error(tmp_path):
    from fingertui import Counter
    from fingertui.errors import UserError

    with pytest.raises(UserError, match="neither a fingertui workspace nor an export-model folder"):
        Counter.load(tmp_path)


@needs_datasets()
def test_count_gives_what_predict_gives_on_real_photos(capsys):
    from fingertui import Counter
    from fingertui.cli import main

    ws = trained_workspace()
    test = photos(DIGITS, 3, 1) + photos(FRAMES, 2, 1)  # never seen in training
    c = Counter.load(ws)
    got = [c.count(rgb(p)) for p, _ in test]
    assert main(["--home", str(ws), "predict", "--json", *[str(p) for p, _ in test]]) == 0
    want = json.loads(capsys.readouterr().out)["predictions"]
    for r, w in zip(got, want, strict=True):
        assert r.count == w["label"]
        assert np.allclose(r.probs, w["probs"], atol=1e-6)
        assert r.hand == w["hand_found"]
        assert (r.no_hand is None) == (w["hand_found"] is not False)
    digits = [(r, y) for r, (_, y) in zip(got, test, strict=True)][:18]
    assert np.mean([r.count == y for r, y in digits]) >= 0.7  # chance is 1/6
    with_hand = [r for r in got if r.hand]
    assert len(with_hand) >= 0.8 * len(got)
    for r, (p, _) in zip(got, test, strict=True):
        if r.hand:
            h, w = rgb(p).shape[:2]
            x0, y0, x1, y1 = r.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert len(r.fingers) == 5 and all(0 <= u <= 1 for u in r.fingers)


@needs_datasets()
def test_a_frame_without_a_hand_says_so():
    from fingertui import Counter
    from fingertui.counter import IMAGE_ONLY

    c = Counter.load(trained_workspace())
    r = c.count(np.full((240, 320, 3), 128, np.uint8))
    assert r.hand is False and r.no_hand == IMAGE_ONLY and r.box is None and r.fingers is None
    assert r.count is not None and abs(sum(r.probs) - 1) < 1e-6  # the image expert answers alone
    assert json.loads(json.dumps(r.as_json()))["no_hand"] == IMAGE_ONLY


@needs_datasets()
def test_a_still_hand_on_video_settles_on_one_count_and_stays(tmp_path):
    from fingertui import Counter

    c = Counter.load(trained_workspace())
    # a held-out photo the model counts right, enlarged as a webcam frame would show it
    for path, label in photos(DIGITS, 3, 2):
        img = np.asarray(Image.open(path).convert("RGB").resize((240, 240)))
        if c.count(img).count == label:
            break
    out = list(c.stream(jittered(img, 30)))
    assert [r.frame for r in out] == list(range(1, 31))
    shown = [r.steady for r in out]
    assert shown[-1] == label and shown[5:] == [label] * 25
    assert sum(r.changed for r in out) <= 2  # the first frame, then the settle


@needs_datasets()
def test_a_folder_source_counts_each_photo_once_as_its_own_steady_count(tmp_path):
    import shutil

    from fingertui import Counter

    picked = photos(DIGITS, 1, 1)
    for i, (p, _) in enumerate(picked):
        shutil.copy(p, tmp_path / f"{i}.jpg")
    c = Counter.load(trained_workspace())
    out = list(c.stream(f"folder:{tmp_path}"))
    assert len(out) == len(picked)
    for r, (p, _) in zip(out, picked, strict=True):
        assert r.steady == r.count == c.count(rgb(p)).count
    assert out[0].changed
    assert list(c.stream(f"folder:{tmp_path}", max_frames=2))[-1].frame == 2


def write_video(path, frames) -> None:
    import cv2

    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
    for f in frames:
        out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()


@needs_datasets()
def test_a_video_file_is_read_frame_by_frame_to_its_end(tmp_path):
    from fingertui import Counter

    c = Counter.load(trained_workspace())
    for path, label in photos(DIGITS, 3, 2):
        img = np.asarray(Image.open(path).convert("RGB").resize((240, 240)))
        if c.count(img).count == label:
            break
    write_video(tmp_path / "clip.avi", jittered(img, 20, seed=1))
    out = list(c.stream(f"video:{tmp_path / 'clip.avi'}"))
    assert len(out) == 20 and out[-1].steady == label

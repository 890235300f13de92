from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fingertui.learn import hands as H
from fingertui.learn import mediapipe_quirks
from fingertui.learn.boxes import crop_box
from tests.conftest import SHARED
from tests.test_pose import FIST, TWO

# The shared datasets: $FINGERTUI_SHARED/datasets, else ../shared/datasets beside the
# repository (conftest's SHARED is its sign-digits folder; worktrees resolve the same way).
DATASETS = Path(os.environ["FINGERTUI_SHARED"]) / "datasets" if os.environ.get("FINGERTUI_SHARED") else SHARED.parent
needs_photos = pytest.mark.skipif(
    not (DATASETS / "hagrid-rooms").is_dir() or not (DATASETS / "sign-digits").is_dir(),
    reason=f"real photos not found at {DATASETS} (a user checkout has no ../shared; set FINGERTUI_SHARED)",
)
needs_mediapipe = pytest.mark.skipif(not H.available(), reason=f"{H.unavailable_reason()}")


def photo(rel: str) -> np.ndarray:
    folder = DATASETS / rel
    with Image.open(sorted(folder.iterdir())[0]) as img:
        return np.asarray(img.convert("RGB"))


@pytest.fixture(scope="module")
def detector() -> H.HandDetector:
    if not H.available():
        pytest.skip(H.unavailable_reason() or "")
    det = H.HandDetector("still")
    yield det
    det.close()


def test_serialisation_round_trips() -> None:
    tracked = replace(FIST, score=float("nan"), handedness="Left")  # no detector score
    for hands in ([TWO], [TWO, tracked], []):
        blob = H.hands_to_bytes(hands)
        assert len(blob) == len(hands) * H.HAND_FLOATS * 4
        back = H.hands_from_bytes(blob)
        assert len(back) == len(hands)
        for a, b in zip(hands, back, strict=True):
            np.testing.assert_allclose(b.landmarks, a.landmarks)
            np.testing.assert_allclose(b.world, a.world)
            assert (b.handedness, b.image_size) == (a.handedness, a.image_size)
            assert b.handedness_score == pytest.approx(a.handedness_score)
            assert b.score == pytest.approx(a.score, nan_ok=True)
    with pytest.raises(ValueError):
        H.hands_from_bytes(b"\0" * 12)


def test_detector_id_names_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    assert H.DETECTOR_ID.startswith("mediapipe-hands@") and "pad-" in H.DETECTOR_ID
    assert H.detector_id(pad=False) != H.DETECTOR_ID
    assert H.detector_id(complexity=1 - H.COMPLEXITY) != H.DETECTOR_ID
    monkeypatch.setitem(H.PAD, "frac", 0.9)
    assert H.detector_id() != H.DETECTOR_ID


def test_missing_mediapipe_gives_one_line_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in [m for m in sys.modules if m == "mediapipe" or m.startswith("mediapipe.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe…` fail
    reason = H.unavailable_reason()
    assert reason is not None and "\n" not in reason and "mediapipe" in reason
    assert not H.available()
    with pytest.raises(RuntimeError, match="mediapipe"):
        H.HandDetector()


@pytest.mark.slow
def test_core_import_loads_neither_mediapipe_nor_textual() -> None:
    code = "import sys, fingertui.learn.hands, fingertui.learn.pose; print(any(m in sys.modules for m in ('mediapipe', 'textual')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
@needs_mediapipe
def test_blank_and_noise_give_no_hand(detector: H.HandDetector) -> None:
    rng = np.random.default_rng(0)
    for img in (
        np.zeros((120, 120, 3), np.uint8),
        np.full((480, 640, 3), 255, np.uint8),
        rng.integers(0, 256, (150, 150, 3), dtype=np.uint8),
        rng.integers(0, 256, (360, 480, 3), dtype=np.uint8),
        np.zeros((1, 1, 3), np.uint8),
    ):
        assert detector.detect(img) == []
    assert detector.detect(np.zeros((50, 50), np.uint8)) == []  # grey
    assert detector.detect(np.zeros((50, 50, 4), np.uint8)) == []  # RGBA
    with pytest.raises(ValueError):
        detector.detect(np.zeros((50, 50, 3), np.float32))


@pytest.mark.slow
@needs_mediapipe
@needs_photos
def test_finds_a_hand_in_real_photos(detector: H.HandDetector) -> None:
    for rel in ("sign-digits/3", "hagrid-rooms/hands/2", "hagrid-rooms/frames/5"):
        img = photo(rel)
        found = detector.detect(img)
        assert found, f"no hand found in the first photo of {rel}"
        hand = found[0]
        h, w = img.shape[:2]
        assert hand.image_size == (w, h)
        assert hand.landmarks.shape == (21, 3) and hand.world.shape == (21, 3)
        assert hand.handedness in ("Left", "Right") and 0.5 <= hand.handedness_score <= 1
        assert 0.5 <= hand.score <= 1
        x0, y0, x1, y1 = hand.bbox
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        # World landmarks are metres: a hand is 10–30 cm across, not pixels or 0–1 units.
        assert 0.05 < np.ptp(hand.world, axis=0).max() < 0.3


@pytest.mark.slow
@needs_mediapipe
@needs_photos
def test_padding_maps_landmarks_back_to_the_original(detector: H.HandDetector) -> None:
    # Find the hand in a whole frame (not padded: too large), cut a tight square around it
    # (padded: small), and the two sets of landmarks must land on the same pixels.
    frame = photo("hagrid-rooms/frames/5")
    hand = detector.detect(frame)[0]
    x0, y0, x1, y1 = crop_box(hand, margin=0.05)
    assert x1 - x0 <= H.PAD["max_side"]
    tight = np.ascontiguousarray(frame[y0:y1, x0:x1])
    found = detector.detect(tight)
    assert found
    err = np.abs(found[0].pixels + np.array([x0, y0]) - hand.pixels).max()
    assert err < 0.08 * (x1 - x0), f"landmarks {err:.1f} px apart"


@pytest.mark.slow
@needs_mediapipe
@needs_photos
def test_tracking_mode_follows_a_still_hand() -> None:
    img = photo("hagrid-rooms/frames/5")
    with H.HandDetector("track", max_hands=1) as det:
        first = det.detect(img)
        second = det.detect(img)
    assert first and second
    assert np.isnan(second[0].score) or 0 <= second[0].score <= 1


@pytest.mark.slow
@needs_mediapipe
@needs_photos
def test_detection_keeps_stderr_clean() -> None:
    # MediaPipe's C++ warnings would scribble over the terminal UI.
    code = (
        "import numpy as np, sys; from PIL import Image; from fingertui.learn import hands as H; "
        "d = H.HandDetector(); "
        "[d.detect(np.asarray(Image.open(p).convert('RGB'))) for p in sys.argv[1:]]"
    )
    photos = [sorted((DATASETS / rel).iterdir())[0] for rel in ("hagrid-rooms/frames/2", "sign-digits/4")]
    out = subprocess.run([sys.executable, "-c", code, *map(str, photos)], capture_output=True, text=True, check=True)
    assert out.stderr == ""


@pytest.mark.slow
@needs_mediapipe
def test_mediapipe_loads_without_pyplot_until_something_uses_it() -> None:
    # MediaPipe's drawing utilities import pyplot (0.9 s) that fingertui never uses.
    code = (
        "import sys; from fingertui.learn import hands as H; assert H.unavailable_reason() is None; "
        "print('matplotlib.pyplot' in sys.modules); "
        "from mediapipe.python.solutions import drawing_utils as du; print(callable(du.plt.figure)); "
        "import matplotlib.pyplot as plt; print(plt.figure is du.plt.figure)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True"]


def test_a_batch_mute_lets_detectors_go_on_and_waits_for_late_chatter_once() -> None:
    # A model opened inside a batch search logs late: stderr stays muted for that, but the
    # detector that opened it goes on at once; the wait comes once, when the batch ends.
    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            with H.quiet():
                t0 = time.monotonic()
                with mediapipe_quirks.quiet_stderr(linger=0.3):
                    pass
                inner_done = time.monotonic()
                os.write(2, b"chatter from the graph's thread\n")
            outer_done = time.monotonic()
            os.write(2, b"after\n")
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        written = f.read()
    assert inner_done - t0 < 0.2
    assert outer_done - t0 >= 0.3
    assert written == b"after\n"


@pytest.mark.slow
@needs_mediapipe
@needs_photos
def test_stored_images_are_searched_in_parallel_with_the_same_hands_as_one_by_one(store, tmp_path) -> None:
    # A first train searches every stored image with one still detector per core; the
    # landmarks it caches must be exactly what one detector finds image by image.
    import shutil

    from fingertui.data.importer import import_paths
    from fingertui.learn import streams

    src = tmp_path / "photos"
    for label in ("1", "3"):
        (src / label).mkdir(parents=True)
        for p in sorted((DATASETS / "sign-digits" / label).iterdir())[:5]:
            shutil.copy(p, src / label / p.name)
    (src / "5").mkdir()
    for p in sorted((DATASETS / "hagrid-rooms" / "frames" / "5").iterdir())[:3]:
        shutil.copy(p, src / "5" / p.name)
    import_paths(store, [src])
    samples = store.samples()
    pose = streams.PoseStream()
    assert pose.workers(len(samples)) == min(os.cpu_count() or 1, streams.MAX_DETECTORS, len(samples))
    seen: list[tuple[str, int, int]] = []
    parallel = streams.stored_hands(store, pose, samples, lambda *a: seen.append(a))
    assert seen[-1] == ("finding hands", len(samples), len(samples))
    assert sum(h is not None for h in parallel) >= len(samples) - 2  # real photos: hands are there
    one = H.HandDetector("still")
    try:
        for s, got in zip(samples, parallel, strict=True):
            alone = pose.search(read_stored(store, s), one)
            assert (got is None) == (alone is None), s.path
            if got is not None:
                np.testing.assert_array_equal(got.landmarks, alone.landmarks)
    finally:
        one.close()


def read_stored(store, sample) -> np.ndarray:
    from fingertui.learn.embeddings import read_rgb

    return read_rgb(store.ws.abs(sample.path))


@pytest.mark.slow
@needs_mediapipe
@needs_photos
def test_a_hand_filling_the_frame_is_found_whole_by_zooming_out() -> None:
    # A close-up: the hand runs off the frame and the detector misses it; zoomed out it is
    # found whole (the tiles used to find two of its fingers, and the count was wrong).
    from fingertui.learn import streams
    from fingertui.learn.embeddings import read_rgb

    img = read_rgb(DATASETS / "hagrid-rooms" / "frames" / "3" / "three_00000.jpg")
    pose = streams.PoseStream()
    assert not pose.detector().detect(img), "the whole frame should miss this hand"
    det = Counting(pose.detector())
    hand = pose.search(img, det)
    assert hand is not None
    assert det.calls == 2  # the picture, then zoomed out: the tiles never ran
    h, w = img.shape[:2]
    assert hand.image_size == (w, h)
    x0, y0, x1, y1 = hand.bbox
    assert max(x1 - x0, y1 - y0) > 0.8 * min(w, h)  # the whole hand, not a part of it
    wrist, middle_tip = hand.pixels[0], hand.pixels[12]
    assert wrist[1] > middle_tip[1] + 0.4 * h  # placed back upright in the frame, fingers up


class Counting:
    """A detector that counts the tries made with it."""

    def __init__(self, det: H.HandDetector) -> None:
        self.det, self.calls = det, 0

    def detect(self, img: np.ndarray) -> list[H.Hand]:
        self.calls += 1
        return self.det.detect(img)


@pytest.mark.slow
@needs_mediapipe
@needs_photos
def test_a_close_up_found_at_once_costs_one_try() -> None:
    # The first training searches every stored photo: sign-digits close-ups must not pay
    # for the zoomed-out look or the tiles.
    from fingertui.learn import streams

    pose = streams.PoseStream()
    det = Counting(pose.detector())
    for label in ("0", "2", "5"):
        assert pose.search(photo(f"sign-digits/{label}"), det) is not None
    assert det.calls == 3


@pytest.mark.slow
@needs_mediapipe
@needs_photos
def test_a_small_hand_far_away_is_found_by_the_tiles() -> None:
    # A frame shrunk into a larger dim picture (a person across the room): neither the whole
    # picture nor the zoomed-out one finds the hand; the tiles do, at its place.
    import cv2

    from fingertui.learn import streams
    from fingertui.learn.embeddings import read_rgb

    frame = read_rgb(DATASETS / "hagrid-rooms" / "frames" / "1" / "one_00000.jpg")
    side, at = 900, 900 // 2 - frame.shape[0] // 2
    img = cv2.GaussianBlur(cv2.resize(frame, (side, side)) // 3, (31, 31), 0)
    img[at : at + frame.shape[0], at : at + frame.shape[1]] = frame
    pose = streams.PoseStream()
    det = pose.detector()
    assert not det.detect(img) and not det.detect(H.with_border(img, streams.ZOOM_OUT)[0])
    hand = pose.search(img)
    assert hand is not None and hand.image_size == (side, side)
    x0, y0, x1, y1 = hand.bbox
    assert at <= x0 < x1 <= at + frame.shape[1] and at <= y0 < y1 <= at + frame.shape[0]


@needs_mediapipe
def test_a_model_trained_with_another_tile_recipe_still_loads_but_other_features_do_not() -> None:
    from fingertui.errors import UserError
    from fingertui.learn import streams

    now = streams.PoseStream()
    for recipe in ("tiles-2x2-0.6", "tiles-2x2-0.6+3x3-0.5"):  # the searches before this one
        older = now.id.replace(streams.TILES_ID, recipe)
        assert older != now.id  # its cached landmarks are not reused (another cache key)...
        assert streams.PoseStream.for_checkpoint({"stream": older}) is not None  # ...its models load
    with pytest.raises(UserError, match="retrain"):
        streams.PoseStream.for_checkpoint({"stream": now.id.replace("pose-", "pose-world-")})

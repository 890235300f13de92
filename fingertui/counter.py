"""Count fingers from your own program: ``Counter``.

    from fingertui import Counter

    c = Counter.load("~/my-hands")        # a workspace (its active run) or an export-model folder
    r = c.count(frame_rgb)                # one (H, W, 3) uint8 RGB frame
    print(r.count, r.probs, r.fingers, r.box, r.no_hand)
    for r in c.stream("webcam:0"):        # or "video:clip.mp4", "folder:photos", frames
        if r.changed:
            print("now", r.steady)

``count`` treats a frame as a photo (the hand searched for as ``fingertui predict`` does).
``stream`` treats frames as video, as the app's live view does: the hand tracked, the
square around it predicted, and the steady count (steady.py) smoothing the answer. A
folder is a set of photos: each one is counted as ``count`` does and is its own steady
count.

Core only (no Textual); torch is never imported by a linear run on ONNX Runtime.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fingertui.errors import UserError
from fingertui.learn.boxes import Box
from fingertui.live.steady import SteadyCount

MANIFEST = "manifest.json"  # what marks an export-model folder (export/build.py)
NO_HAND = "no hand found"
IMAGE_ONLY = "no hand found: counted from the image alone"


@dataclass(frozen=True)
class Count:
    """What the model says about one frame (and, from ``stream``, the steady count)."""

    count: int | None  # this frame's count; None: no hand, and nothing to count from
    probs: list[float]  # calibrated probabilities of 0…5
    confidence: float
    unsure: bool  # below the run's unsure threshold
    hand: bool | None  # a hand was found (None: the model has no hand detector)
    box: Box | None = None  # the hand's box in frame pixels (x0, y0, x1, y1)
    fingers: list[float] | None = None  # P(up) of thumb, index, middle, ring, little
    no_hand: str | None = None  # why there is no hand-based count, else None
    steady: int | None = None  # stream only: the count to show (steady.py); None: no hand
    changed: bool = False  # stream only: ``steady`` differs from the previous frame's
    frame: int = 0  # stream only: the frame's number in the source

    def as_json(self) -> dict:
        return {
            "frame": self.frame,
            "count": self.count,
            "steady": self.steady,
            "changed": self.changed,
            "hand": self.hand,
            "no_hand": self.no_hand,
            "confidence": self.confidence,
            "unsure": self.unsure,
            "probs": self.probs,
            "fingers": self.fingers,
            "box": list(self.box) if self.box is not None else None,
        }


class _Backend(Protocol):
    """What a Counter needs of a model: find a hand, predict a frame given its hand."""

    uses_pose: bool
    threshold: float

    def search(self, img: np.ndarray) -> Any: ...

    def tracking_detector(self) -> Any:
        """A hand detector in tracking mode (``detect(frame)`` → hands, ``reset()``)."""

    def predict(self, img: np.ndarray, hand: Any) -> dict: ...


class _ModelBackend(_Backend):
    """A workspace's model (fingertui.learn.model.Model)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.uses_pose = bool(model.uses_pose)
        self.threshold = float(model.threshold)
        self._tracker = None

    def search(self, img: np.ndarray) -> Any:
        return self.model.pose.search(img) if self.uses_pose else None

    def tracking_detector(self) -> Any:
        return self.model.pose.detector(tracking=True)

    def predict(self, img: np.ndarray, hand: Any) -> dict:
        p = self.model.predict_image(img, hand=hand, hand_known=True)
        return {
            "label": p.label,
            "confidence": p.confidence,
            "probs": p.probs,
            "unsure": p.unsure,
            "hand_found": p.hand_found,
            "fingers": p.fingers,
        }


class _ExportBackend(_Backend):
    """An export-model folder, run by its own runner (run.py in the folder)."""

    def __init__(self, folder: Path) -> None:
        import importlib.util

        spec = importlib.util.spec_from_file_location(f"fingertui_export_run_{abs(hash(folder))}", folder / "run.py")
        if spec is None or spec.loader is None:
            raise UserError(f"{folder}: no run.py in this export folder; export it again with `fingertui export-model`")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        try:
            self.model = mod.ExportedModel(folder)
        except (ValueError, KeyError, OSError) as e:
            raise UserError(f"{folder}: this export cannot be loaded ({e}); export it again") from e
        self.uses_pose = self.model.uses_pose
        self.threshold = self.model.threshold

    def search(self, img: np.ndarray) -> Any:
        return self.model.search(img)

    def tracking_detector(self) -> Any:
        return self.model.tracking_detector()

    def predict(self, img: np.ndarray, hand: Any) -> dict:
        return self.model.predict_image(img, hand=hand, hand_known=True)


def _as_rgb(frame: Any) -> np.ndarray:
    a = np.asarray(frame)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (3, 4) or min(a.shape[:2]) < 2:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) frame, got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a[:, :, :3])


class Counter:
    """A trained fingertui model, ready to count: ``Counter.load(path)``."""

    def __init__(self, backend: _Backend, source: str) -> None:
        self._b = backend
        self.source = source  # what was loaded, in words
        self.threshold = backend.threshold

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, *, run: int | str | None = None, weights: str | None = None
    ) -> Counter:
        """A workspace folder (its active run, or ``run``; the shipped starter before any
        training), or a folder written by ``fingertui export-model``. None: the workspace
        ``fingertui`` would use ($FINGERTUI_HOME, else the current folder)."""
        if path is not None and (Path(path).expanduser() / MANIFEST).is_file():
            folder = Path(path).expanduser().resolve()
            return cls(_ExportBackend(folder), f"export {folder}")
        from fingertui.data.store import Store
        from fingertui.data.workspace import Workspace
        from fingertui.learn.model import Model
        from fingertui.runs.records import active_run, resolve_run

        ws = Workspace.resolve(path)
        if not ws.db_path.is_file():
            raise UserError(f"{ws.root} is neither a fingertui workspace nor an export-model folder")
        store = Store(ws)
        try:
            if run is None and active_run(store) is None:
                model = Model.starter()
                if model is None:
                    raise UserError("no trained model yet and no hand-pose detector for the starter model")
                what = "starter"
            else:
                rec = resolve_run(store, run)
                model = Model.for_run(store, rec, weights_file=weights)
                what = f"run {rec.id}"
        finally:
            store.close()
        return cls(_ModelBackend(model), f"{ws.root} ({what})")

    @property
    def uses_pose(self) -> bool:
        """Whether the model finds the hand (hand pose) or answers from the image alone."""
        return self._b.uses_pose

    # --- one frame ------------------------------------------------------------------------

    def count(self, frame: Any) -> Count:
        """The count of one RGB frame (H, W, 3 uint8), treated as a photo."""
        img = _as_rgb(frame)
        return self._count(img, self._b.search(img))

    def _count(self, img: np.ndarray, hand: Any, offset: tuple[int, int] = (0, 0)) -> Count:
        p = self._b.predict(img, hand)
        box = None
        if hand is not None:
            x0, y0, x1, y1 = hand.bbox
            dx, dy = offset
            box = (int(x0) + dx, int(y0) + dy, int(round(x1)) + dx, int(round(y1)) + dy)
        no_hand = None
        if p["hand_found"] is False:
            no_hand = NO_HAND if p["label"] is None else IMAGE_ONLY
        return Count(
            count=p["label"],
            probs=[float(x) for x in p["probs"]],
            confidence=float(p["confidence"]),
            unsure=bool(p["unsure"]),
            hand=p["hand_found"],
            box=box,
            fingers=p["fingers"],
            no_hand=no_hand,
        )

    # --- a stream of frames -------------------------------------------------------------

    def stream(
        self,
        source: str | Iterable[Any] = "webcam",
        *,
        mirror: bool = False,
        steady: SteadyCount | None = None,
        max_frames: int | None = None,
    ) -> Iterator[Count]:
        """Counts of a camera (``webcam[:N]``), a video file (``video:PATH``), a folder of
        photos (``folder:PATH``), ``demo``, or any iterable of RGB frames (as video), each
        with its steady count. A camera never ends: stop by leaving the loop."""
        frames, stills = _open(source)
        steady = steady or SteadyCount()
        tracker = None
        if not stills and self._b.uses_pose:
            from fingertui.live.tracking import HandTracker

            tracker = HandTracker(self._b.tracking_detector())
            tracker.reset()
        previous: object = _START
        try:
            for n, (number, frame) in enumerate(frames):
                if max_frames is not None and n >= max_frames:
                    return
                img = _as_rgb(frame)
                if mirror:
                    img = np.ascontiguousarray(img[:, ::-1])
                if stills:
                    r = self.count(img)
                    steady.reset()  # a photo is its own scene: its count is shown at once
                    s = steady.update(r.probs if r.count is not None else None, r.hand)
                    for _ in range(steady.frames - 1):  # frames >= 1
                        s = steady.update(r.probs if r.count is not None else None, r.hand)
                else:
                    r = self._live(img, tracker)
                    s = steady.update(r.probs if r.count is not None else None, r.hand)
                yield replace(r, steady=s.count, changed=s.count != previous, frame=number)
                previous = s.count
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()

    def _live(self, view: np.ndarray, tracker: Any) -> Count:
        """The live view's step (live/loop.py): the tracked hand, the square around it
        (the whole frame when none), the model on that square, the hand given."""
        if tracker is None:
            return self.count(view)
        from fingertui.live.loop import Framing, place_square

        framed = place_square(view, Framing(mirror=False, whole=True), tracker)
        return self._count(framed.crop, framed.hand, offset=framed.box[:2])


_START = object()  # before the first frame: whatever it shows is a change


def _open(source: str | Iterable[Any]) -> tuple[Iterator[tuple[int, np.ndarray]], bool]:
    """(numbered frames, whether they are unrelated photos) of a source."""
    if not isinstance(source, str):
        return ((n, f) for n, f in enumerate(source, 1)), False
    kind, _, arg = source.partition(":")
    if kind == "folder":
        return _folder(arg), True
    if kind == "video":
        return _video(arg), False
    if kind in ("webcam", "demo"):
        from fingertui.live.camera import DemoSource, WebcamSource

        try:
            src = WebcamSource(int(arg or 0)) if kind == "webcam" else DemoSource(int(arg) if arg else None)
        except ValueError:
            raise UserError(f"bad source {source!r}: use webcam[:N], video:PATH, folder:PATH or demo") from None
        except ImportError as e:
            raise UserError(f"no camera support here ({e}); use video:PATH or folder:PATH") from e
        return _latest(src), False
    raise UserError(f"unknown source {source!r}: use webcam[:N], video:PATH, folder:PATH or demo")


def _folder(path: str) -> Iterator[tuple[int, np.ndarray]]:
    from fingertui.data.images import IMAGE_EXTS, open_rgb

    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"folder {path} not found")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise UserError(f"no images in folder {path}")
    for n, f in enumerate(files, 1):
        yield n, open_rgb(f)


def _video(path: str) -> Iterator[tuple[int, np.ndarray]]:
    """Every frame of a video file, in order, once (a file is read as fast as counted)."""
    import cv2

    if not Path(path).is_file():
        raise UserError(f"video {path} not found")
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise UserError(f"cannot read video {path}; use a format OpenCV reads (mp4, avi…)")
    try:
        n = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            n += 1
            yield n, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def _latest(src: Any) -> Iterator[tuple[int, np.ndarray]]:
    """A live source's newest frames: one never seen before each time, stale ones dropped."""
    last = -1
    try:
        while True:
            got = src.latest()
            if got is None or got[0] == last:
                time.sleep(0.005)
                continue
            last = got[0]
            yield got
    finally:
        src.close()

"""Frame sources: webcam, video file, image folder, the procedural demo hand, scripted.

Every source hands out only its latest frame (RGB, H×W×3 uint8); a reader that is busy
simply gets a newer frame next time — frames are dropped, never queued.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fingertui.errors import UserError
from fingertui.learn.boxes import centred_square, crop


class FrameSource:
    """Base: ``latest()`` returns (frame number, RGB frame) or None before the first."""

    name = "source"
    notice: str | None = None  # something the user should see (camera lost, fell back…)
    # Photos and videos are framed already: by default the capture takes the whole image.
    # A camera's picture is the room, so it starts with a centred square around the hand.
    whole_frame = False
    # Unrelated photos (a slideshow): each is shown as it is predicted, with no steady
    # count carried from one to the next (live/loop.py).
    stills = False

    def latest(self) -> tuple[int, np.ndarray] | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ScriptedSource(FrameSource):
    """Frames given in advance, cycled one per ``latest()`` call (tests, replays)."""

    name = "scripted"
    stills = True  # tests and replays see the model's own answer for each frame

    def __init__(self, frames: Sequence[np.ndarray], hold: bool = True) -> None:
        self.frames = [np.ascontiguousarray(f) for f in frames]
        self.hold = hold  # True: stay on the current frame until advance()
        self.index = 0

    def advance(self) -> None:
        self.index = (self.index + 1) % len(self.frames)

    def latest(self) -> tuple[int, np.ndarray]:
        n = self.index
        if not self.hold:
            self.advance()
        return n, self.frames[n]


class _ThreadedSource(FrameSource):
    """Reads frames in a background thread and keeps only the newest."""

    fps = 30.0

    def __init__(self) -> None:
        self._frame: tuple[int, np.ndarray] | None = None
        self._count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"fingertui-{self.name}")
        self._thread.start()

    def _grab(self) -> np.ndarray | None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            frame = self._grab()
            if frame is not None:
                self._count += 1
                self._frame = (self._count, frame)
            self._stop.wait(max(0.0, 1.0 / self.fps - (time.monotonic() - t0)))

    def latest(self) -> tuple[int, np.ndarray] | None:
        return self._frame

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


class WebcamSource(_ThreadedSource):
    """OpenCV camera; if it is unplugged or busy mid-session, says so and retries."""

    def __init__(self, index: int = 0) -> None:
        import cv2

        self.cv2 = cv2
        self.index = index
        self.name = f"webcam:{index}"
        self.cap = cv2.VideoCapture(index)
        if not self.cap.isOpened():
            self.cap.release()
            raise UserError(f"no camera at index {index}")
        self._failures = 0
        super().__init__()

    def _grab(self) -> np.ndarray | None:
        ok, frame = self.cap.read()
        if ok:
            self._failures = 0
            self.notice = None
            return self.cv2.cvtColor(frame, self.cv2.COLOR_BGR2RGB)
        self._failures += 1
        if self._failures in (5, 30) or self._failures % 60 == 0:
            self.notice = f"camera {self.index} stopped sending frames; retrying…"
            self.cap.release()
            self.cap = self.cv2.VideoCapture(self.index)
        time.sleep(0.05)
        return None

    def close(self) -> None:
        super().close()
        self.cap.release()


class VideoSource(_ThreadedSource):
    """A video file, looped."""

    whole_frame = True

    def __init__(self, path: str) -> None:
        import cv2

        if not Path(path).is_file():
            raise UserError(f"video {path} not found")
        self.cv2 = cv2
        self.path = path
        self.name = f"video:{Path(path).name}"
        self.cap = cv2.VideoCapture(path)
        if not self.cap.isOpened():
            raise UserError(f"cannot read video {path}; use a format OpenCV reads (mp4, avi…)")
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 25.0
        super().__init__()

    def _grab(self) -> np.ndarray | None:
        ok, frame = self.cap.read()
        if not ok:
            self.cap.set(self.cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.cap.read()
            if not ok:
                return None
        return self.cv2.cvtColor(frame, self.cv2.COLOR_BGR2RGB)


class FolderSource(_ThreadedSource):
    """A slideshow of the images in a folder, ``rate`` images per second."""

    whole_frame = True
    stills = True

    def __init__(self, path: str, rate: float = 1.0) -> None:
        from fingertui.data.images import IMAGE_EXTS

        self.files = sorted(p for p in Path(path).rglob("*") if p.suffix.lower() in IMAGE_EXTS)
        if not self.files:
            raise UserError(f"no images in folder {path}")
        self.name = f"folder:{Path(path).name}"
        self.fps = rate
        self._i = 0
        super().__init__()

    def _grab(self) -> np.ndarray | None:
        from PIL import Image

        f = self.files[self._i % len(self.files)]
        self._i += 1
        try:
            with Image.open(f) as img:
                return np.asarray(img.convert("RGB"))
        except OSError:
            return None


class DemoSource(_ThreadedSource):
    """The procedural hand generator, so the whole loop works without a camera."""

    name = "demo"
    fps = 20.0

    def __init__(self, seed: int | None = None) -> None:
        from fingertui.live.demo import HandScene

        self.scene = HandScene(seed)
        super().__init__()

    def _grab(self) -> np.ndarray:
        return self.scene.next_frame()


def open_source(spec: str = "webcam", *, rate: float = 1.0) -> FrameSource:
    """``webcam[:N]`` (falls back to ``demo`` with a notice), ``video:PATH``,
    ``folder:PATH`` (a slideshow of ``rate`` photos a second), or ``demo``."""
    kind, _, arg = spec.partition(":")
    if kind == "webcam":
        try:
            return WebcamSource(int(arg or 0))
        except (UserError, ValueError, ImportError) as e:
            src = DemoSource()
            src.notice = f"{e}: showing the demo hand instead (use --source webcam:N, video:PATH or folder:PATH)"
            return src
    if kind == "video":
        return VideoSource(arg)
    if kind == "folder":
        return FolderSource(arg, rate=rate)
    if kind == "demo":
        return DemoSource(int(arg) if arg else None)
    raise UserError(f"unknown source {spec!r}: use webcam[:N], video:PATH, folder:PATH or demo")


def crop_square(frame: np.ndarray, size: float, mirror: bool) -> np.ndarray:
    """The capture square: centred, ``size`` × the frame's shorter side, mirrored if asked
    (what the user sees is what is saved)."""
    if mirror:
        frame = frame[:, ::-1]
    return crop(frame, centred_square(frame.shape, size))

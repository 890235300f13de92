"""Count raised fingers (0-5) with a model exported by `fingertui export-model`: ONNX Runtime,
MediaPipe and NumPy, no fingertui and no torch.

    python run.py photo.jpg [more.jpg ...]    # one JSON line a photo
    python run.py --video clip.mp4            # one JSON line a change of the steady count
    python run.py --camera 0                  # the same, live (Ctrl-C ends it)

or from Python (with this folder on sys.path, or run.py imported by path):

    from run import ExportedModel
    model = ExportedModel("path/to/this/folder")
    print(model.predict_image(rgb_uint8_array))

The folder's ``fingertui_runtime/`` is fingertui's own code, copied at export time (the
experts' pooling, the hand search, the pose and finger features, the image preprocessing,
the steady count); this file only puts the parts together as ``fingertui.learn.model.Model``
does. (In fingertui this file is ``fingertui/export/runner.py``, copied as run.py; it is
never imported there.)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fingertui_runtime import engine, pooling, streams  # noqa: E402
from fingertui_runtime.errors import UserError  # noqa: E402
from fingertui_runtime.fingers import FingerHead, finger_matrix  # noqa: E402
from fingertui_runtime.hands import Hand  # noqa: E402
from fingertui_runtime.linear import LinearHead  # noqa: E402

FORMAT = "fingertui.export/1"
ARRAY_REF = "$array"
N = pooling.N_CLASSES


def _unpack(v: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The manifest's model: {"$array": name} stands for the array of that name in arrays.npz."""
    if isinstance(v, dict):
        if set(v) == {ARRAY_REF}:
            return arrays[v[ARRAY_REF]]
        return {k: _unpack(x, arrays) for k, x in v.items()}
    return [_unpack(x, arrays) for x in v] if isinstance(v, list) else v


class MlpHead:
    """fingertui's MLP head (mlp.MLPHead, kind "mlp") in NumPy: standardise, linear, GELU, linear."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        self.mean, self.std = state["mean"], state["std"]
        self.w1, self.b1 = state["net.0.weight"], state["net.0.bias"]
        self.w2, self.b2 = state["net.3.weight"], state["net.3.bias"]

    def logits(self, X: np.ndarray) -> np.ndarray:
        h = ((np.asarray(X, dtype=np.float32) - self.mean) / self.std) @ self.w1.T + self.b1
        h = h * 0.5 * (1.0 + np.vectorize(math.erf)(h / math.sqrt(2.0)))  # torch's exact GELU
        return (h @ self.w2.T + self.b2).astype(np.float32)


def _head(expert: dict) -> LinearHead | MlpHead:
    spec, state = expert["head"], expert["head_state"]
    if spec["kind"] == "linear":
        return LinearHead.from_state(state, spec["dim"], N)
    return MlpHead(state)


class ExportedModel:
    """The exported model: ``predict_image(rgb)`` as fingertui's ``Model.predict_image``."""

    def __init__(self, folder: str | Path = HERE) -> None:
        folder = Path(folder)
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{folder} holds {manifest.get('format')!r}, this runner reads {FORMAT!r}")
        with np.load(folder / manifest["files"]["arrays"], allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        ckpt = _unpack(manifest["model"], arrays)
        self.manifest, self.meta = manifest, ckpt
        experts = ckpt["experts"]
        self.heads = {name: _head(e) for name, e in experts.items() if name != "fingers"}
        self.fingers = FingerHead.from_json(experts["fingers"]["head_json"]) if "fingers" in experts else None
        patterns = experts.get("fingers", {}).get("patterns")  # finger patterns training showed
        self.patterns = {str(k): int(v) for k, v in patterns.items()} if isinstance(patterns, dict) else None
        self.weights = {k: float(v) for k, v in ckpt["weights"].items()}
        self.temperature = float(ckpt["temperature"])
        self.image_temperature = float(ckpt.get("image_temperature", 1.0))
        self.threshold = float(ckpt["unsure_threshold"])
        self.is_starter = bool(ckpt.get("starter"))
        self.trunk = self.image = None
        self.framing = None
        if "image" in self.heads:
            self.image = manifest["image"]
            self.trunk = engine.OrtTrunk(folder / self.image["trunk"])
            self.framing = experts["image"].get("framing")
        self.pose = None
        if "pose" in experts or "fingers" in experts:
            reason = streams.pose_unavailable_reason()
            if reason is not None:
                raise RuntimeError(reason)
            self.pose = streams.PoseStream.for_checkpoint(experts.get("pose") or {})
        self.uses_pose = self.pose is not None and ("pose" in self.heads or self.fingers is not None)

    # --- the hand ------------------------------------------------------------------------

    def search(self, img: np.ndarray) -> Hand | None:
        """A photo's hand (the whole picture, zoomed out, then tiles), or None."""
        return self.pose.search(img) if self.pose is not None and self.uses_pose else None

    def tracking_detector(self) -> Any:
        """The hand detector in tracking mode, for consecutive video frames (MediaPipe's own type)."""
        if self.pose is None:
            raise RuntimeError("this model does not look at the hand's pose")
        return self.pose.detector(tracking=True)

    # --- the experts ---------------------------------------------------------------------

    def embed(self, img: np.ndarray) -> np.ndarray:
        spec, trunk = self.image, self.trunk
        if spec is None or trunk is None:
            raise RuntimeError("this model has no image expert")
        x = engine.prepare(img, spec["size"], spec["mean"], spec["std"])
        # float16 round trip: fingertui caches its vectors so, and predicts from the same
        return engine.pooled(trunk(x), spec["grid"]).astype(np.float16).astype(np.float32)

    def probs(self, framed: np.ndarray, hand: Hand | None) -> np.ndarray:
        """Calibrated (6,) probabilities of a framed image and its hand (or None)."""
        zi = self.heads["image"].logits(self.embed(framed)) if "image" in self.heads else None
        zp = zf = novel = None
        pose, fingers = (self.pose, self.fingers) if self.uses_pose else (None, None)
        if pose is not None and "pose" in self.heads:
            zp = self.heads["pose"].logits(pose.features([hand]))
        if fingers is not None:
            zf = fingers.log_probs(finger_matrix([hand])[0])
            if self.patterns is not None:
                novel = pooling.novel_rows(fingers.up(finger_matrix([hand])[0]), self.patterns, 1)
        has = np.array([hand is not None and (zp is not None or zf is not None)])
        p = pooling.pool_logits(zi, zp, has, self.weights, self.image_temperature, self.temperature, zf, novel=novel)
        if zi is None:  # no image expert: nothing to say without a hand
            p[~has] = 1.0 / N
        return p[0]

    def predict_image(self, img: np.ndarray, *, hand: Hand | None = None, hand_known: bool = False) -> dict:
        """One RGB uint8 (H, W, 3) picture: its count and what the model saw. With
        ``hand_known`` the hand (or None) is taken as given instead of searched for."""
        img = np.ascontiguousarray(np.asarray(img)[:, :, :3])
        if not hand_known:
            hand = self.search(img)
        obs = streams.observe([img], self.pose if self.uses_pose else None, framing=self.framing, hands=[hand])[0]
        p = self.probs(obs.framed, obs.hand)
        found = obs.hand is not None if self.uses_pose else None
        fingers = None
        if self.uses_pose and self.fingers is not None and obs.hand is not None:
            fingers = [float(u) for u in self.fingers.up(finger_matrix([obs.hand])[0])[0]]
        out = {"probs": [float(x) for x in p], "hand_found": found, "fingers": fingers, "box": None, "note": ""}
        if obs.hand is not None:
            x0, y0, x1, y1 = obs.hand.bbox
            out["box"] = [int(x0), int(y0), int(round(x1)), int(round(y1))]
        if self.uses_pose and obs.hand is None and "image" not in self.heads:
            return {**out, "label": None, "confidence": 0.0, "unsure": True, "note": "no hand found"}
        k = int(p.argmax())
        note = "no hand found: image only" if found is False else ""
        return {**out, "label": k, "confidence": float(p[k]), "unsure": bool(p[k] < self.threshold), "note": note}


def _video(model: ExportedModel, frames: Iterable[np.ndarray]) -> None:
    """The live view's steps on each frame (track, square, predict), the steady count on top:
    one JSON line each time it changes."""
    from fingertui_runtime.boxes import hand_in_box
    from fingertui_runtime.steady import SteadyCount
    from fingertui_runtime.tracking import HandTracker

    tracker = HandTracker(model.tracking_detector()) if model.uses_pose else None
    steady = SteadyCount()
    for n, frame in enumerate(frames, 1):
        h, w = frame.shape[:2]
        track = tracker.update(frame) if tracker is not None else None
        box = (track.box if track is not None else None) or (0, 0, w, h)
        x0, y0, x1, y1 = box
        crop = np.ascontiguousarray(frame[y0:y1, x0:x1])
        hand = hand_in_box(track.hand, box) if track is not None and track.hand is not None else None
        r = model.predict_image(crop, hand=hand, hand_known=True)
        s = steady.update(r["probs"] if r["label"] is not None else None, r["hand_found"])
        if s.changed or n == 1:
            print(json.dumps({"frame": n, "count": s.count, "hand": r["hand_found"], "probs": r["probs"]}), flush=True)


def _frames(cap: Any) -> Iterator[np.ndarray]:
    """RGB frames of an OpenCV capture (cv2.VideoCapture) until it ends."""
    import cv2

    while True:
        ok, frame = cap.read()
        if not ok:
            return
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Count raised fingers with an exported fingertui model.")
    ap.add_argument("images", nargs="*", metavar="IMAGE")
    ap.add_argument("--video", metavar="PATH")
    ap.add_argument("--camera", type=int, metavar="N")
    args = ap.parse_args(argv)
    model = ExportedModel(HERE)
    try:
        if args.video is not None or args.camera is not None:
            import cv2

            cap = cv2.VideoCapture(args.video if args.video is not None else args.camera)
            if not cap.isOpened():
                print(f"run.py: cannot open {args.video or f'camera {args.camera}'}", file=sys.stderr)
                return 2
            _video(model, _frames(cap))
            return 0
        from fingertui_runtime.images import open_rgb

        for path in args.images:
            r = model.predict_image(open_rgb(path))
            print(json.dumps({"path": path, **r}), flush=True)
    except UserError as e:  # a missing or unreadable image: one line
        print(f"run.py: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, BrokenPipeError):
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

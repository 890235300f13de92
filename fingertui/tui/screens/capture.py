"""The capture screen: live camera, the capture square, the live prediction, counts."""

from __future__ import annotations

import time

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from fingertui.camera import square_box
from fingertui.labels import CLASSES
from fingertui.tui.widgets.camera_view import CameraView, overlay
from fingertui.tui.widgets.panels import CountsPanel, PredictionPanel, TrainingBar

SIZE_STEP, SIZE_MIN, SIZE_MAX = 0.05, 0.3, 1.0
BURST_FRAMES, BURST_SECONDS = 8, 2.0


class CaptureScreen(Screen):
    BINDINGS = [
        *[
            Binding(
                str(c),
                f"capture({c})",
                "capture" if c == 0 else f"capture {c}",
                key_display="0-5" if c == 0 else None,
                show=c == 0,
            )
            for c in CLASSES
        ],
        Binding("space", "capture_unlabelled", "unlabelled"),
        Binding("b", "burst", "burst"),
        Binding("u", "undo", "undo"),
        Binding("m", "mirror", "mirror"),
        Binding("f", "follow", "follow hand / fixed"),
        Binding("plus,equals_sign", "resize(1)", "square +", key_display="+"),
        Binding("minus", "resize(-1)", "square -", key_display="-"),
        Binding("escape", "cancel_training", "cancel training", show=False),
        Binding("question_mark", "help", "help", key_display="?"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.size_frac = 0.6
        self.whole = False  # frame the whole image (folder and video sources start so)
        self.mirror = True
        self.follow = True  # the square follows the hand (f toggles a fixed square)
        self.burst_armed = False
        self.last_frame_no = -1
        self.frames_shown = 0
        self.fps = 0.0
        self._fps_t0 = time.monotonic()
        self._fps_n = 0

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal():
            with Vertical(id="left"):
                yield CameraView(id="camera")
                yield Static(id="status")
            with Vertical(id="right"):
                yield Static(id="model", classes="box")
                yield PredictionPanel(id="prediction", classes="box")
                yield CountsPanel(id="counts", classes="box")
        yield TrainingBar()
        yield Footer()

    def on_mount(self) -> None:
        # A 60 % square cut the fingertips off 100 px photos (bench/framing.py).
        self.whole = self.app.source.whole_frame
        self.title = "fingertui"
        self.sub_title = f"workspace {self.app.workspace.root}"
        self.refresh_counts()
        self.show_model()
        self.set_interval(1 / 15, self.refresh_frame)

    # --- live view --------------------------------------------------------------------

    def refresh_frame(self) -> None:
        got = self.app.source.latest()
        if got is None or got[0] == self.last_frame_no:
            return
        self.last_frame_no, frame = got
        track = self.app.track if self.follow else None
        lost = self.follow and self.app.pose_note is None and (track is None or track.box is None)
        colour = (255, 200, 0) if self.burst_armed else (150, 150, 150) if lost else (0, 220, 0)
        view = frame[:, ::-1] if self.mirror else frame
        box = self.square(view.shape, track)
        skeleton = track.skeleton if track is not None and track.hand is not None else None
        self.query_one(CameraView).show(overlay(view, box, colour, skeleton))
        self.frames_shown += 1
        if self.app.first_frame_s is None:
            self.app.first_frame_s = time.monotonic() - self.app.started
        self._fps_n += 1
        now = time.monotonic()
        if now - self._fps_t0 >= 1.0:
            self.fps = self._fps_n / (now - self._fps_t0)
            self._fps_t0, self._fps_n = now, 0
            self.update_status()

    def update_status(self) -> None:
        app = self.app
        notice = app.source.notice
        parts = [
            app.source.name,
            f"{self.fps:.1f} fps",
            f"{app.predictions_per_s:.1f} predictions/s" if app.predictor else "",
            "[yellow]predicting slower while training[/]" if app.predictor and app.training else "",
            self.square_words(),
            f"mirror {'on' if self.mirror else 'off'}",
            "[b yellow]burst: press 0–5[/]" if self.burst_armed else "",
        ]
        text = " · ".join(p for p in parts if p)
        if notice:
            text += f"\n[yellow]{notice}[/]"
        if app.pose_note:
            text += f"\n[dim]{app.pose_note}[/]"
        self.query_one("#status", Static).update(text)

    def square_words(self) -> str:
        if not self.follow or self.app.pose_note:
            return "whole image" if self.whole else f"fixed square {100 * self.size_frac:.0f}%"
        track = self.app.track
        if track is None or track.box is None:
            waits = "the whole image meanwhile" if self.whole else "square waits in the middle"
            return f"[yellow]no hand in view[/] ({waits})"
        return "square follows the hand"

    def square(self, shape: tuple[int, ...], track: object | None) -> tuple[int, int, int, int]:
        """The capture square in the (mirrored) view: around the hand when it follows
        the hand and one is in view, else the whole image or the fixed centred square."""
        if self.follow and track is not None and track.box is not None:
            return track.box
        if self.whole:
            return (0, 0, shape[1], shape[0])
        return square_box(shape, self.size_frac)

    def current_crop(self) -> np.ndarray | None:
        """What a capture stores: the square as the user sees it (mirrored if on)."""
        got = self.app.source.latest()
        if got is None:
            return None
        frame = got[1]
        view = frame[:, ::-1] if self.mirror else frame
        x0, y0, x1, y1 = self.square(view.shape, self.app.track if self.follow else None)
        return np.ascontiguousarray(view[y0:y1, x0:x1])

    def refresh_counts(self) -> None:
        store = self.app.store
        counts = store.split_counts()
        unlabeled = store.unlabelled_count()
        needy, why = None, ""
        run = self.app.active
        if run is not None and run.metrics["test"].get("weakest_class") is not None:
            weakest = run.metrics["test"]["weakest_class"]
            recall = run.metrics["test"]["per_class"][weakest]["recall"]
            if recall < 1.0:
                needy, why = int(weakest), f"lowest recall in run {run.id} ({100 * recall:.0f}%)"
        if needy is None:
            totals = {c: counts[c]["train"] + counts[c]["test"] for c in CLASSES}
            needy = min(totals, key=lambda c: (totals[c], c))
            why = "fewest images"
        self.query_one(CountsPanel).show(counts, unlabeled, needy, why, store.flags.open_sample_count())

    # --- actions ----------------------------------------------------------------------

    def action_capture(self, label: int) -> None:
        if self.burst_armed:
            self.burst_armed = False
            self.start_burst(label)
            return
        self.capture_now(label)

    def action_capture_unlabelled(self) -> None:
        self.burst_armed = False
        self.capture_now(None)

    def capture_now(self, label: int | None, burst: str | None = None, quiet: bool = False) -> None:
        crop = self.current_crop()
        if crop is None:
            self.notify("no camera frame yet", severity="warning")
            return
        sample = self.app.capture.capture(crop, label, burst=burst, prediction=self.app.last_prediction_tuple())
        self.refresh_counts()
        if label is not None:
            self.app.labels_changed()
        if not quiet:
            if label is None:
                self.notify(f"captured unlabelled snapshot {sample.id} — it waits in the review queue")
            else:
                n = sum(self.app.store.split_counts()[label].values())
                self.notify(f"captured {label} → class {label} now has {n} images ({sample.split})")

    def action_burst(self) -> None:
        self.burst_armed = not self.burst_armed
        self.notify("burst: press 0–5 to capture a few frames with that label" if self.burst_armed else "burst off")
        self.update_status()

    def start_burst(self, label: int) -> None:
        burst_id = f"{time.time():.3f}"
        taken = [0]

        def tick() -> None:
            self.capture_now(label, burst=burst_id, quiet=True)
            taken[0] += 1
            if taken[0] >= BURST_FRAMES:
                timer.stop()
                n = sum(self.app.store.split_counts()[label].values())
                self.notify(f"burst: {BURST_FRAMES} frames captured as {label} → class {label} now has {n}")

        timer = self.set_interval(BURST_SECONDS / BURST_FRAMES, tick)

    def action_undo(self) -> None:
        sample = self.app.capture.undo_last()
        if sample is None:
            self.notify("nothing captured in this session to undo", severity="warning")
            return
        self.refresh_counts()
        what = "unlabelled snapshot" if sample.label is None else f"{sample.label}"
        self.notify(f"removed the last capture ({what}, sample {sample.id})")

    def action_mirror(self) -> None:
        self.mirror = not self.mirror
        self.update_status()

    def action_follow(self) -> None:
        if self.app.pose_note and not self.follow:
            self.notify(f"the square cannot follow the hand: {self.app.pose_note}", severity="warning")
            return
        self.follow = not self.follow
        fixed = "fixed: the whole image (- for a square)" if self.whole else "fixed square (+/- resize it)"
        self.notify("the square follows the hand" if self.follow else fixed)
        self.update_status()

    def action_resize(self, step: int) -> None:
        # + past the largest square frames the whole image; - from there, squares again.
        if self.whole:
            if step < 0:
                self.whole, self.size_frac = False, round(SIZE_MAX - SIZE_STEP, 2)
        elif step > 0 and self.size_frac >= SIZE_MAX:
            self.whole = True
        else:
            self.size_frac = min(SIZE_MAX, max(SIZE_MIN, round(self.size_frac + step * SIZE_STEP, 2)))
        self.update_status()

    def action_cancel_training(self) -> None:
        self.app.cancel_training()

    def action_help(self) -> None:
        from fingertui.tui.screens.help import HelpScreen

        rows = [(b.key_display or b.key, b.description) for b in self.BINDINGS if b.show]
        rows[0] = ("0-5", "capture the square with that label")
        rows += [("t", "train (esc cancels)"), ("r", "review queue"), ("c", "results"), ("h", "runs"), ("q", "quit")]
        self.app.push_screen(HelpScreen(rows))

    # --- model ------------------------------------------------------------------------

    def show_model(self) -> None:
        app = self.app
        box = self.query_one("#model", Static)
        pred = self.query_one(PredictionPanel)
        if app.model_error:
            box.update(f"[red]{app.model_error}[/]")
            pred.show_waiting("no prediction")
        elif app.active is None and app.predictor is not None:
            box.update(
                "[b]starter model[/b] — counts raised fingers from the hand's pose out of the box\n"
                "capture a few of each, then press t to make it yours"
            )
        elif app.active is None:
            box.update("[b]no model yet[/b] — capture a few of each, then press t")
            pred.show_waiting("no prediction until a model is trained")
        elif app.predictor is None:
            box.update(f"run {app.active.id}: loading the model…")
            pred.show_waiting("loading…")
        else:
            test = app.active.metrics["test"]
            box.update(
                f"[b]run {app.active.id}[/b] · {app.active.backbone.split(':')[0]}\n"
                f"test accuracy {100 * test['accuracy']:.1f}% on {test['n']} images"
            )

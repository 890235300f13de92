"""The capture screen: live camera, the capture square, the live prediction, counts."""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Header, Static

from fingertui.data.capture import HoldPacer, id_span
from fingertui.data.store import Sample
from fingertui.labels import CLASSES
from fingertui.learn.boxes import crop
from fingertui.tui.screens.base import AppScreen
from fingertui.tui.textual_quirks import forget_closed_widgets
from fingertui.tui.widgets.camera_view import CameraView, overlay
from fingertui.tui.widgets.footer import KeysFooter
from fingertui.tui.widgets.panels import COMPACT_BELOW_ROWS, CountsPanel, PredictionPanel, SidePanels, TrainingBar
from fingertui.words import plural

if TYPE_CHECKING:
    from fingertui.live.loop import Framing, Step
    from fingertui.live.tracking import Track

SIZE_STEP, SIZE_MIN, SIZE_MAX = 0.05, 0.3, 1.0
BURST_FRAMES, BURST_SECONDS = 8, 2.0
# A terminal shorter than this gets the compact side panels (the full ones need ~34 rows).


def update_lines(static: Static, text: str) -> None:
    """Show ``text`` on a line or two of the screen, laying the screen out again only when
    it takes another number of rows: the status line changes every second and on keys such
    as m, and each layout pass re-arranges every widget of the screen."""
    width = static.content_region.width

    def rows() -> int:
        static.clear_cached_dimensions()
        return static.get_content_height(static.size, static.size, width)

    before = rows() if width else -1
    static.update(text, layout=False)
    if not width or rows() != before:
        static.refresh(layout=True)


class CaptureScreen(AppScreen[None]):
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
        # The footer shows keys in this order and an 80-column terminal shows the first
        # seven or so: the loop's keys (capture, train, review, undo, help, quit) first.
        Binding("t", "app.train", "train"),
        Binding("r", "app.review", "review"),
        Binding("u", "undo", "undo"),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("q", "app.quit", "quit"),
        Binding("space", "capture_unlabelled", "unlabelled"),
        Binding("b", "burst", "burst"),
        Binding("g", "app.gallery", "gallery"),
        Binding("c", "app.results", "results"),
        Binding("h", "app.runs", "runs"),
        Binding("m", "mirror", "mirror"),
        Binding("f", "follow", "follow hand"),
        Binding("plus,equals_sign", "resize(1)", "square +", key_display="+"),
        Binding("minus", "resize(-1)", "square -", key_display="-"),
        Binding("escape", "cancel_training", "cancel training", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.burst_armed = False
        self.last_frame_no = -1
        self._drawn_track: Track | None = None  # what the picture on show was drawn with
        self.frames_shown = 0
        self.fps = 0.0
        self._fps_t0 = time.monotonic()
        self._fps_n = 0
        self.clock = time.monotonic  # replaced by tests that play key repeat at a set pace
        # How late the newest key event is handled (a busy app falls behind the keyboard):
        # a hold is paced by when keys were read, so a lagging app neither splits one hold
        # in two nor ends it early.
        self.key_lag = 0.0
        self.pacer = HoldPacer()
        self._burst_timer: Timer | None = None
        self.burst_progress: tuple[int, int] | None = None  # (label, frames taken) while a burst runs
        self._burst_id: str | None = None
        self._burst_ticks = 0
        self._burst_waiting = False  # a burst frame is being stored

    @property
    def framing(self) -> Framing:
        """Where the capture square goes (the app's, shared with its live loop)."""
        return self.app.framing

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal():
            with Vertical(id="left"):
                yield CameraView(id="camera")
                yield Static(id="hold")
                yield Static(id="status")
            with SidePanels(id="right"):
                yield Static(id="model", classes="box")
                yield PredictionPanel(id="prediction", classes="box")
                yield CountsPanel(id="counts", classes="box")
        yield TrainingBar()
        yield KeysFooter()

    def on_mount(self) -> None:
        # A 60 % square cut the fingertips off 100 px photos: 37 of 42 counted right fixed,
        # 42 of 42 whole (bench/results/framing.json).
        self.framing.whole = self.app.source.whole_frame
        self.title = "fingertui"
        self.sub_title = f"workspace {self.app.workspace.root}"
        self.fit_to(self.app.size.width, self.app.size.height)
        app = self.app
        app.model_changed.subscribe(self, lambda _: self.show_model())
        app.counts_changed.subscribe(self, lambda _: self.refresh_counts())
        app.predicted.subscribe(self, self.show_prediction)
        self.refresh_counts()
        self.show_model()  # also when the model came before the subscription
        self.set_interval(1 / 15, self.refresh_frame)
        self.set_interval(0.1, self.check_hold)

    def on_resize(self, event: events.Resize) -> None:
        self.fit_to(event.size.width, event.size.height)

    def fit_to(self, width: int, height: int) -> None:
        """Below 40 rows (80×24 among them) the side panels go compact, so that the model,
        the prediction and the counts fit one above the other without scrolling."""
        compact = height < COMPACT_BELOW_ROWS
        self.set_class(compact, "compact")
        for prediction in self.query(PredictionPanel):
            prediction.set_compact(compact)
        for counts in self.query(CountsPanel):
            counts.set_compact(compact)
        if self.is_mounted:
            self.show_model()

    def on_screen_resume(self) -> None:
        """Back from review, the gallery or results: counts as they are now, and what the
        closed screen drew let go of."""
        forget_closed_widgets()
        if self.is_mounted and self.query("#counts"):
            self.refresh_counts()
            self.show_model()

    # --- live view --------------------------------------------------------------------

    def refresh_frame(self) -> None:
        """Draw the newest frame, with the square and the hand where they are now: again
        when either is new (a still picture's hand is found after it is first drawn)."""
        got = self.app.source.latest()
        framing = self.framing
        track = self.app.track if framing.follow else None
        if got is None or (got[0] == self.last_frame_no and track is self._drawn_track):
            return
        new_frame = got[0] != self.last_frame_no
        (self.last_frame_no, frame), self._drawn_track = got, track
        lost = framing.follow and self.app.pose_note is None and (track is None or track.box is None)
        colour = (255, 200, 0) if self.burst_armed else (150, 150, 150) if lost else (0, 220, 0)
        view = framing.view(frame)
        box = framing.square(view.shape, track)
        skeleton = track.skeleton if track is not None and track.hand is not None else None
        self.query_one(CameraView).show(overlay(view, box, colour, skeleton))
        if not new_frame:
            return  # the same frame drawn again: fps counts the camera's frames
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
            f"{app.live.predictions_per_s:.1f} predictions/s" if app.model else "",
            "[yellow]predicting slower while training[/]" if app.model and app.training else "",
            self.square_words(),
            f"mirror {'on' if self.framing.mirror else 'off'}",
            "[b yellow]burst: press 0–5[/]" if self.burst_armed else "",
        ]
        text = " · ".join(p for p in parts if p)
        if notice:
            text += f"\n[yellow]{notice}[/]"
        if app.pose_note:
            text += f"\n[dim]{app.pose_note}[/]"
        update_lines(self.query_one("#status", Static), text)

    def square_words(self) -> str:
        framing = self.framing
        if not framing.follow or self.app.pose_note:
            return "whole image" if framing.whole else f"fixed square {100 * framing.size:.0f}%"
        track = self.app.track
        if track is None or track.box is None:
            waits = "the whole image meanwhile" if framing.whole else "square waits in the middle"
            return f"[yellow]no hand in view[/] ({waits})"
        return "square follows the hand"

    def current_crop(self) -> np.ndarray | None:
        """What a capture stores: the square as the user sees it (mirrored if on)."""
        got = self.app.source.latest()
        if got is None:
            return None
        view = self.framing.view(got[1])
        return crop(view, self.framing.square(view.shape, self.app.track))

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
        self.query_one(CountsPanel).show(
            counts, unlabeled, needy, why, store.flags.open_sample_count(), store.session_count()
        )

    # --- actions ----------------------------------------------------------------------

    def on_key(self, event: events.Key) -> None:
        # Runs before the key's binding (bindings are checked once the event has bubbled
        # up to the app). Key events are stamped when the terminal's input is read.
        # Event times are on the real clock; a test's own clock has no lag to make up.
        self.key_lag = max(0.0, time.monotonic() - event.time) if self.clock is time.monotonic else 0.0

    def action_capture(self, label: int) -> None:
        if self.burst_armed:
            self.burst_armed = False
            self.start_burst(label)
            return
        if self._burst_timer is not None:
            return  # a burst is running: its key's repeats must not start a hold over it
        now = self.clock() - self.key_lag
        if self.pacer.label is not None and (self.pacer.label != label or not self.pacer.active(now)):
            self.finish_hold()
        first = self.pacer.label is None
        if self.pacer.press(label, now):
            # Every frame of a hold shares its key: one take (u takes it all back) and one
            # split group (consecutive frames of one pose never straddle train and test).
            self.capture_now(label, burst=self.pacer.key, quiet=not first)
        self.show_hold()

    def show_hold(self) -> None:
        """The live counter under the camera: a hold or a burst in progress."""
        line = ""
        if self.burst_progress is not None:
            label, n = self.burst_progress
            line = f"[b yellow]burst {label}: {n}/{BURST_FRAMES} captured[/]"
        elif self.pacer.label is not None and self.pacer.captured > 1:
            take = self.app.capture.history[-1] if self.app.capture.history else None
            stored = len(take.ids) if take is not None and take.key == self.pacer.key else 0
            same = self.pacer.captured - stored
            line = (
                f"[b yellow]holding {self.pacer.label}: {stored} captured[/] "
                + (f"[yellow]({same} unchanged frames skipped)[/] " if same else "")
                + f"[dim](at most {self.pacer.rate:.0f} a second; let go to stop)[/]"
            )
        update_lines(self.query_one("#hold", Static), line)

    def check_hold(self) -> None:
        if self.pacer.label is not None and not self.pacer.active(self.clock() - self.key_lag):
            self.finish_hold()

    def finish_hold(self) -> None:
        """The key was let go (no repeat for a moment): say what the hold stored, once its
        captures are stored."""
        label, n, key = self.pacer.label, self.pacer.captured, self.pacer.key
        self.pacer.end()
        self.show_hold()
        if label is None or n < 2:
            return  # a single press: its own toast said it all
        history, store = self.app.capture.history, self.app.store

        def stored() -> tuple[list[int], int] | None:
            take = history[-1] if history else None
            if take is None or take.key != key:
                return None
            return list(take.ids), sum(store.split_counts()[label].values())

        self.app.write_store(stored, partial(self._say_held, label, n), "summing up the hold")

    def _say_held(self, label: int, n: int, stored: tuple[list[int], int] | None) -> None:
        if stored is None:
            return
        ids, total = stored
        same = f" ({n - len(ids)} unchanged frames skipped)" if n > len(ids) else ""
        self.notify(
            f"held {label}: {len(ids)} captured{same} (samples {id_span(ids)}) - class {label} now has "
            f"{plural(total, 'image')}; u takes back the whole hold"
        )

    def action_capture_unlabelled(self) -> None:
        self.burst_armed = False
        self.finish_hold()
        self.capture_now(None)

    def capture_now(self, label: int | None, burst: str | None = None, quiet: bool = False) -> None:
        """Store the square as it is now; the counts and a toast follow once it is stored
        (off the UI thread: encoding, hashing and the write take tens of ms)."""
        square = self.current_crop()
        if square is None:
            self.notify("no camera frame yet", severity="warning")
            if burst is not None and burst == self._burst_id:
                self._burst_frame_stored(duplicate=True)  # nothing stored: the burst may end
            return
        session, store = self.app.capture, self.app.store
        prediction = self.app.last_prediction_tuple()

        def capture() -> tuple[Sample, bool, int]:
            sample = session.capture(square, label, burst=burst, prediction=prediction)
            n = sum(store.split_counts()[label].values()) if label is not None and not quiet else 0
            return sample, session.last_duplicate, n

        self.app.write_store(capture, partial(self._captured, label, burst, quiet), "capture")

    def _captured(self, label: int | None, burst: str | None, quiet: bool, result: tuple[Sample, bool, int]) -> None:
        sample, duplicate, n = result
        self.refresh_counts()
        if label is not None:
            self.app.labels_changed()
        if burst is not None and burst == self._burst_id:
            self._burst_frame_stored(duplicate)
        self.show_hold()
        if quiet:
            return
        if duplicate:  # a still picture (a slideshow, a paused camera)
            self.notify(f"this frame is already stored as sample {sample.id}: nothing added", severity="warning")
        elif label is None:
            self.notify(f"captured sample {sample.id}, unlabelled - label it in review (r) or the gallery (g)")
        else:
            self.notify(
                f"captured sample {sample.id} as {label} ({sample.split}) - class {label} now has {plural(n, 'image')}"
            )

    def action_burst(self) -> None:
        self.burst_armed = not self.burst_armed
        self.notify("burst: press 0–5 to capture a few frames with that label" if self.burst_armed else "burst off")
        self.update_status()

    def start_burst(self, label: int) -> None:
        self.finish_hold()
        self._burst_id = f"burst{time.time():.3f}"
        self.burst_progress = (label, 0)
        self._burst_ticks = 0
        self._burst_waiting = False
        self.show_hold()
        self._burst_timer = self.set_interval(BURST_SECONDS / BURST_FRAMES, self._burst_tick)

    def _burst_tick(self) -> None:
        # One frame at a time: a tick while the last frame is still being stored takes
        # none (a burst never stores more than BURST_FRAMES), but counts towards its end.
        self._burst_ticks += 1
        if self.burst_progress is None:
            return
        if not self._burst_waiting:
            self._burst_waiting = True
            self.capture_now(self.burst_progress[0], burst=self._burst_id, quiet=True)

    def _burst_frame_stored(self, duplicate: bool) -> None:
        # A frame the camera has not replaced yet (a busy machine, a slow camera) is
        # already stored: it does not count, the next tick tries again; a still picture
        # ends the burst after three times its ticks.
        self._burst_waiting = False
        if self.burst_progress is None:
            return
        label, taken = self.burst_progress
        taken += 0 if duplicate else 1
        self.burst_progress = (label, taken)
        if taken >= BURST_FRAMES or self._burst_ticks >= 3 * BURST_FRAMES:
            burst_id = self._burst_id
            self.stop_burst()
            take = self.app.capture.history[-1] if self.app.capture.history else None
            n = sum(self.app.store.split_counts()[label].values())
            got = len(take.ids) if take is not None and take.key == burst_id else 0
            self.notify(
                f"burst: {got} frames captured as {label}"
                + (f" (samples {id_span(take.ids)})" if take is not None and got else "")
                + f" - class {label} now has {n}; u takes back the whole burst"
            )

    def stop_burst(self) -> None:
        if self._burst_timer is not None:
            self._burst_timer.stop()
            self._burst_timer = None
        self.burst_progress = None
        self._burst_id = None
        self.show_hold()

    def action_undo(self) -> None:
        self.stop_burst()  # u during a burst takes back what it stored so far, and stops it
        self.pacer.end()
        self.show_hold()
        # After every capture asked for before it (write_store keeps the order).
        self.app.write_store(self.app.capture.undo_last, self._undone, "undo")

    def _undone(self, removed: list[Sample]) -> None:
        if not removed:
            self.notify("nothing captured in this session to undo", severity="warning")
            return
        self.refresh_counts()
        what = "/".join(str(x) for x in sorted({s.label for s in removed if s.label is not None})) or "unlabelled"
        if len(removed) == 1:
            self.notify(f"took back the last capture: sample {removed[0].id} ({what})")
        else:
            self.notify(
                f"took back the last {len(removed)} captures ({what}): samples {id_span([s.id for s in removed])}"
            )

    def action_mirror(self) -> None:
        self.framing.mirror = not self.framing.mirror
        self.update_status()

    def action_follow(self) -> None:
        framing = self.framing
        if self.app.pose_note and not framing.follow:
            self.notify(f"the square cannot follow the hand: {self.app.pose_note}", severity="warning")
            return
        framing.follow = not framing.follow
        fixed = "fixed: the whole image (- for a square)" if framing.whole else "fixed square (+/- resize it)"
        self.notify("the square follows the hand" if framing.follow else fixed)
        self.update_status()

    def action_resize(self, step: int) -> None:
        # + past the largest square frames the whole image; - from there, squares again.
        framing = self.framing
        if framing.whole:
            if step < 0:
                framing.whole, framing.size = False, round(SIZE_MAX - SIZE_STEP, 2)
        elif step > 0 and framing.size >= SIZE_MAX:
            framing.whole = True
        else:
            framing.size = min(SIZE_MAX, max(SIZE_MIN, round(framing.size + step * SIZE_STEP, 2)))
        self.update_status()

    def action_cancel_training(self) -> None:
        self.app.cancel_training()

    def action_help(self) -> None:
        from fingertui.tui.screens.help import HelpScreen

        longer = {
            "0-5": "capture the square with that label; hold the key to keep capturing",
            "t": "train (esc cancels)",
            "r": "review queue",
            "g": "gallery: every image of a class",
            "f": "the square follows the hand / stays fixed",
            "+": "square larger (past the largest: the whole image)",
            "-": "square smaller",
        }
        rows = []
        for b in self.BINDINGS:
            if isinstance(b, Binding) and b.show:
                key = b.key_display or b.key
                rows.append((key, longer.get(key, b.description)))
        rows.append(("f1", "this help, on every screen"))
        self.app.push_screen(HelpScreen(rows))

    # --- model ------------------------------------------------------------------------

    def show_prediction(self, step: Step) -> None:
        """The newest live prediction, in the prediction panel."""
        p, model = step.prediction, step.model
        if p is None or model is None:
            return
        panel = self.query_one(PredictionPanel)
        if p.label is None:
            panel.show_waiting(f"{p.note or 'no prediction'} — show a hand in the square")
            return
        panel.show(
            p.label,
            p.confidence,
            p.probs,
            p.unsure,
            model.threshold,
            p.note,
            p.fingers,
            checked=model.confidence_checked,
        )

    def show_model(self) -> None:
        """What predicts, in one story: the box says which model, the panel under it agrees."""
        app = self.app
        box = self.query_one("#model", Static)
        pred = self.query_one(PredictionPanel)
        compact = self.has_class("compact")
        if app.model_error:
            box.update(f"[red]{app.model_error}[/]")
            pred.show_waiting("no prediction")
        elif app.active is None and app.source.name == "demo":
            # The starter reads a real hand's pose; the demo's hand is drawn. Saying "starter
            # model" over a count it cannot make (it counted the drawn 5 as 3) told two stories.
            box.update(
                "[b]demo[/b]: a drawn hand; the starter model reads real hands only\ncapture 0-5, then t trains on these"
                if compact
                else "[b]demo[/b]: a drawn hand, which the starter model (it reads a real hand's pose) cannot count\n"
                "capture a few of each (0-5), then t trains a model on the drawings"
            )
            pred.show_waiting("no prediction until you train one (t)")
        elif app.active is None and app.model is not None:
            box.update(
                "[b]starter model[/b]: counts fingers from the hand's pose\ncapture a few of each, then t"
                if compact
                else "[b]starter model[/b] — counts raised fingers from the hand's pose out of the box\n"
                "capture a few of each, then press t to make it yours"
            )
        elif app.active is None and app.model_loading:
            box.update("loading the starter model…")
            pred.show_waiting("loading…")
        elif app.active is None:
            box.update("[b]no model yet[/b] — capture a few of each, then press t")
            pred.show_waiting("no prediction until a model is trained")
        elif app.model is None:
            box.update(f"run {app.active.id}: loading the model…")
            pred.show_waiting("loading…")
        else:
            from fingertui.runs.records import short_backbone

            test = app.active.metrics["test"]
            features = app.active.features
            what = short_backbone(app.active) + (" + hand pose" if features == "both" else "")
            if compact:  # one line: the run and how it scored (c shows the rest)
                box.update(f"[b]run {app.active.id}[/b] · test {100 * test['accuracy']:.1f}% of {test['n']}")
                return
            box.update(
                f"[b]run {app.active.id}[/b] · {'hand pose' if features == 'pose' else what}\n"
                f"test accuracy {100 * test['accuracy']:.1f}% on {plural(test['n'], 'image')}"
            )

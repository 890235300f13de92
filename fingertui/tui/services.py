"""What the app does for its screens, without knowing them: the store and its writes, the
live loop and the model it predicts with, training in the background.

Screens see the app as :class:`AppServices` (``screens/base.py``) and hear what changed
through its signals; the app on top (``app.py``) adds the screens, the keys that open
them and where a finished run goes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from textual import events, on, work
from textual.actions import ActionParseResult
from textual.app import App
from textual.dom import DOMNode
from textual.driver import Driver
from textual.message import Message
from textual.signal import Signal
from textual.timer import Timer
from textual.worker import Worker, WorkerState, get_current_worker

from fingertui.data.capture import CaptureSession
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace
from fingertui.live.camera import FrameSource
from fingertui.live.loop import Framing, LiveLoop, Step, pose_tracker
from fingertui.live.tracking import HandTracker, Track
from fingertui.runs.records import RunRecord, active_run
from fingertui.tui.collector import IdleCollector
from fingertui.tui.widgets.panels import TrainingBar

if TYPE_CHECKING:
    from fingertui.learn.model import Model, Prediction
    from fingertui.train.eta import Eta

T = TypeVar("T")

# While a training run embeds images, live prediction would run the same network on the
# same cores at full rate and take them from it; it predicts this often instead.
TRAINING_PREDICT_EVERY_S = 0.5
# How often the app looks for changes another process made to the store (`fingertui label`
# in another terminal): one PRAGMA on the open connection, microseconds.
STORE_POLL_S = 1.0
# On quit, how long a training cancelled by quitting may take to store what it computed.
QUIT_WAIT_S = 30.0
ENV_TRAIN_IN = "FINGERTUI_TRAIN_IN"
# The training bar moves at most this often within a phase.
PROGRESS_EVERY_S = 0.25


@dataclass
class PredictionMade(Message):
    step: Step  # its model made it: a prediction from a replaced model is dropped


@dataclass
class TrainingDone(Message):
    run: RunRecord | None
    error: str | None


@dataclass
class ModelLoaded(Message):
    model: Model | None
    error: str | None


@dataclass
class PoseOff(Message):
    reason: str  # why hand pose cannot run here


@dataclass
class StoreChanged(Message):
    """Another process changed the store."""

    run: RunRecord | None  # the active run now


class AppServices(App[None]):
    """The app's state and background work. Its signals tell the screens what changed:

    - ``model_changed``: the model on show (loading, loaded, failed, replaced);
    - ``counts_changed``: labels were added, changed or removed;
    - ``store_changed_elsewhere``: another process changed the store;
    - ``predicted``: a new live prediction (a :class:`~fingertui.live.loop.Step`)."""

    def __init__(
        self,
        workspace: Workspace,
        source: FrameSource,
        *,
        weights: str | None = None,
        backbone: str | None = None,
        auto_retrain: int = 0,
        train_in: str | None = None,
    ) -> None:
        super().__init__()
        self.train_backbone = backbone
        # Where a training run computes: "process" (a child process, fingertui/train/process.py:
        # the screen keeps its interpreter) or "thread" (this process; tests that replace
        # pipeline functions in it). $FINGERTUI_TRAIN_IN picks one for benchmarks.
        self.train_in = train_in or os.environ.get(ENV_TRAIN_IN) or "process"
        if self.train_in not in ("process", "thread"):
            raise ValueError(f"train_in must be 'process' or 'thread', not {self.train_in!r}")
        self.auto_retrain = auto_retrain  # retrain after this many new labels; 0 = off
        self._cancel: threading.Event | None = None
        self._eta: Eta | None = None  # of the training run going on
        self._train_t0 = 0.0
        self._train_ticker: Timer | None = None
        self._last_progress: tuple[str, int, int] | None = None
        self.training = False
        self._train_idle = threading.Event()  # cleared while a training thread runs
        self._train_idle.set()
        self.workspace = workspace
        self.source = source
        self.weights = weights
        self.store = Store(workspace)
        self.capture = CaptureSession(self.store)
        self.active: RunRecord | None = active_run(self.store)
        self.model_loading = True  # until the first ModelLoaded
        self.model_error: str | None = None
        self.prediction: Prediction | None = None  # the newest shown
        self.started = time.monotonic()
        self.first_frame_s: float | None = None
        # The square follows the hand when the hand-pose detector can run on this source;
        # otherwise ``pose_note`` says why it cannot, in one line.
        self.pose_note: str | None = None
        self.framing = Framing()
        self.live = LiveLoop(source, self.framing, make_tracker=lambda: self._make_tracker())
        # Store writes of the capture screen (captures, undo), one at a time in the order
        # they were asked for, off the UI thread (``write_store``).
        self._writes = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fingertui-store")
        # Full garbage collections when no key comes (tui/collector.py); run_app's apps only.
        self.collector: IdleCollector | None = None
        # Set by q: keys typed after it (a fast `qu`) are dropped, never carried out on the
        # way out: an undo typed after q took back a capture.
        self.closing = False
        self.model_changed: Signal[None] = Signal(self, "model-changed")
        self.counts_changed: Signal[None] = Signal(self, "counts-changed")
        self.store_changed_elsewhere: Signal[None] = Signal(self, "store-changed-elsewhere")
        self.predicted: Signal[Step] = Signal(self, "predicted")

    @property
    def model(self) -> Model | None:
        """The model the live view predicts with (None: none yet, or none to load)."""
        return self.live.model

    @model.setter
    def model(self, model: Model | None) -> None:
        self.live.model = model

    @property
    def track(self) -> Track | None:
        """Where the hand was in the newest frame the live view looked at."""
        return self.live.track

    def get_driver_class(self) -> type[Driver]:
        """On POSIX, Textual's driver on a descriptor of its own (tui/terminal.py says why)."""
        import sys

        from textual import constants

        if sys.platform == "win32" or constants.DRIVER is not None:
            return super().get_driver_class()
        from fingertui.tui.terminal import OwnTerminalDriver

        return OwnTerminalDriver

    def start_services(self) -> None:
        """Once the first screen is up: load the model, start the live view, watch the store."""
        if self.source.name == "demo":
            self.pose_note = "the demo hand is drawn, not photographed: the hand-pose model does not see it"
            self.framing.follow = False
            self.live.make_tracker = None
        if self.source.notice:
            self.notify(self.source.notice, severity="warning", timeout=8)
        self.load_model()
        self.live_loop()
        self._store_version = self.store.data_version()
        self.set_interval(STORE_POLL_S, self.check_store)
        if self.collector is not None:
            self.set_interval(1.0, self.collector.tick)

    async def on_event(self, event: events.Event) -> None:
        if self.collector is not None and isinstance(event, events.Key | events.MouseDown):
            self.collector.input()
        await super().on_event(event)

    async def action_quit(self) -> None:
        self.closing = True
        await super().action_quit()

    async def run_action(
        self,
        action: str | ActionParseResult,
        default_namespace: DOMNode | None = None,
        namespaces: Mapping[str, DOMNode] | None = None,
    ) -> bool:
        """Every key binding of every screen runs here: after q, none is carried out."""
        if self.closing:
            return False
        return await super().run_action(action, default_namespace, namespaces)

    # --- the store --------------------------------------------------------------------

    def check_store(self) -> None:
        """Another process changed the store: show its counts, queue and active run now."""
        if self.training:
            # The run's own process writes caches all the while; what it changes that shows
            # (a new run, the queue) is shown when it ends. Looked at again after it.
            return
        version = self.store.data_version()
        if version is None or version == self._store_version:
            return  # unchanged, or a worker is using the connection: look again next tick
        self._store_version = version
        self.read_active_run()

    @work(thread=True, exclusive=True, group="store-watch", exit_on_error=False, description="reading the store")
    def read_active_run(self) -> None:
        self.post_message(StoreChanged(active_run(self.store)))

    @on(StoreChanged)
    def store_changed(self, msg: StoreChanged) -> None:
        run = msg.run
        if run is not None and (self.active is None or run.id != self.active.id) and not self.training:
            # `fingertui train` or `runs activate` elsewhere: predict with that run.
            self.notify(f"run {run.id} is the active model now (changed in another terminal)")
            self.switch_model(run)
        self.counts_changed.publish(None)
        self.store_changed_elsewhere.publish(None)

    def write_store(self, job: Callable[[], T], then: Callable[[T], None], description: str) -> None:
        """Run ``job`` (a store write) off the UI thread, after every job asked for before
        it, then ``then`` with its result on the UI thread. A failure shows as any failed
        worker's does (``worker_failed``)."""
        future = self._writes.submit(job)

        async def wait() -> None:
            then(await asyncio.wrap_future(future))

        self.run_worker(wait(), group="store", description=description, exit_on_error=False)

    def labels_changed(self) -> None:
        """After a capture or a review change: the counts show it at once; retrain
        automatically if asked to."""
        self.counts_changed.publish(None)
        if not self.auto_retrain or self.training:
            return
        seen = (self.active.n_train + self.active.n_test) if self.active else 0
        if len(self.store.labelled()) - seen >= self.auto_retrain:
            self.notify(f"{self.auto_retrain} new labels: retraining")
            self.action_train()

    # --- the model and the live view --------------------------------------------------

    def last_prediction_tuple(self) -> tuple[int | None, int | None, float | None] | None:
        if self.prediction is None or self.active is None or self.prediction.label is None:
            return None
        return (self.active.id, self.prediction.label, self.prediction.confidence)

    @work(thread=True, exclusive=True, group="model", exit_on_error=False, description="loading the model")
    def load_model(self) -> None:
        from fingertui.errors import UserError
        from fingertui.learn.model import Model

        try:
            if self.active is None and self.source.name == "demo":
                # The starter reads a real hand's pose: a drawn hand is not one.
                self.post_message(ModelLoaded(None, None))
                return
            if self.active is None:  # no run yet: the shipped starter counts (if hand pose runs here)
                model = Model.starter()
                self.post_message(ModelLoaded(model, None))
                return
            model = Model.for_run(self.store, self.active, weights_file=self.weights, warn=lambda m: None)
        except UserError as e:
            self.post_message(ModelLoaded(None, str(e)))
            return
        self.post_message(ModelLoaded(model, None))

    @on(ModelLoaded)
    def model_loaded(self, msg: ModelLoaded) -> None:
        self.model, self.model_error = msg.model, msg.error
        self.model_loading = False
        self.model_changed.publish(None)
        if self.collector is not None and not self.collector.frozen:
            self.collector.freeze()  # start-up is over: its modules and model live as long as the app

    def switch_model(self, run: RunRecord) -> None:
        """Predict with ``run`` from now on (a new run, or a rollback)."""
        self.active = run
        self.model = None
        self.model_loading = True
        self.prediction = None
        self.model_changed.publish(None)
        self.counts_changed.publish(None)
        self.load_model()

    @work(thread=True, exclusive=True, group="live", exit_on_error=False, description="live view")
    def live_loop(self) -> None:
        """The live loop (live/loop.py) on a thread of its own, each prediction shown."""
        from fingertui.learn.streams import pose_unavailable_reason

        worker = get_current_worker()
        if self.live.make_tracker is not None:
            reason = pose_unavailable_reason()  # imports MediaPipe: not on the UI thread
            if reason is not None:
                self.live.make_tracker = None
                self.post_message(PoseOff(reason))

        def show(step: Step) -> None:
            self.post_message(PredictionMade(step))

        self.live.run(
            show,
            stopped=lambda: worker.is_cancelled,
            slow=lambda: self.training,
            slow_every_s=TRAINING_PREDICT_EVERY_S,
        )

    def _make_tracker(self) -> HandTracker:
        return pose_tracker()

    @on(PoseOff)
    def pose_off(self, msg: PoseOff) -> None:
        self.pose_note = f"hand pose unavailable ({msg.reason}): fixed square, image only"
        self.framing.follow = False
        self.notify(self.pose_note, severity="warning", timeout=8)

    @on(PredictionMade)
    def prediction_made(self, msg: PredictionMade) -> None:
        step = msg.step
        if self.model is None or step.model is not self.model or step.prediction is None:
            return  # from a model just replaced
        self.prediction = step.prediction
        self.predicted.publish(step)

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        # One place turns any failed worker into a visible error, never a silent dead one.
        if event.state == WorkerState.ERROR:
            err = event.worker.error
            if event.worker.group == "train":
                self.training_over()
            self.notify(f"{event.worker.description} failed: {type(err).__name__}: {err}", severity="error", timeout=10)

    # --- training -----------------------------------------------------------------------

    def action_train(self) -> None:
        if self.training:
            self.notify("a training run is already going on (esc cancels it)", severity="warning")
            return
        from fingertui.train.eta import Eta, estimate_for

        self.training = True
        self.lift_toasts()
        self._cancel = threading.Event()
        self._train_idle.clear()
        # The bar shows at once, before the worker has imported anything: a first run spends
        # its first seconds loading the networks, and a blank screen meanwhile looks stuck.
        self._eta = Eta(estimate_for(self.store))
        self._train_t0 = time.monotonic()
        self.show_training("loading model", 0, 1, 0.0)
        # Elapsed time and time left move on every second, also while a phase reports nothing.
        self._train_ticker = self.set_interval(1.0, self._tick_training)
        self.train_worker(self._cancel)

    def _tick_training(self) -> None:
        if self.training and self._last_progress is not None:
            self.show_training(*self._last_progress, time.monotonic() - self._train_t0)

    def cancel_training(self) -> bool:
        """Ask a running training to stop; False when none is running."""
        if not self.training or self._cancel is None:
            return False
        self._cancel.set()
        self.notify("cancelling training…")
        return True

    @work(thread=True, exclusive=True, group="train", exit_on_error=False, description="training")
    def train_worker(self, cancel: threading.Event) -> None:
        from fingertui.errors import Cancelled, UserError

        t0 = self._train_t0
        shown: list[tuple[str | None, float]] = [(None, 0.0)]  # the phase on show, since when

        def progress(phase: str, k: int, n: int) -> None:
            # At most PROGRESS_EVERY_S apart within a phase (a run reports every image: hundreds
            # of repaints a second took the screen's time); a new phase and its end at once.
            now = time.monotonic()
            if phase == shown[0][0] and k < n and now - shown[0][1] < PROGRESS_EVERY_S:
                self._last_progress = (phase, k, n)  # the 1 s ticker shows it if nothing follows
                return
            shown[0] = (phase, now)
            self.call_from_thread(self.show_training, phase, k, n, now - t0)

        def warn(msg: str) -> None:
            self.call_from_thread(self.notify, msg, severity="warning", timeout=10)

        try:
            if self.train_in == "process":
                from fingertui.runs.records import get_run
                from fingertui.train.process import train_in_child

                run_id = train_in_child(
                    self.workspace.root,
                    backbone=self.train_backbone,
                    weights_file=self.weights,
                    progress=progress,
                    warn=warn,
                    cancel=cancel,
                )
                run = get_run(self.store, run_id)
            else:
                from fingertui.train.pipeline import train

                run = train(
                    self.store,
                    backbone=self.train_backbone,
                    weights_file=self.weights,
                    progress=progress,
                    cancel=cancel,
                    warn=warn,
                ).run
        except Cancelled:
            self.post_message(TrainingDone(None, "training cancelled; nothing was recorded"))
            return
        except UserError as e:
            self.post_message(TrainingDone(None, str(e)))
            return
        finally:
            self.training = False
            self._train_idle.set()
        self.post_message(TrainingDone(run, None))

    def lift_toasts(self) -> None:
        """While a run trains, toasts sit above its bar on every screen (fingertui.tcss): a
        class on each screen's toast rack, as screens come; a class on the app would restyle
        every widget of every screen, tens of ms on the key that starts the run."""
        for screen in self.screen_stack:
            for rack in screen.query("ToastRack"):
                rack.set_class(self.training, "above-training-bar")

    def show_training(self, phase: str, k: int, n: int, elapsed: float) -> None:
        from fingertui.train.eta import say_left

        self._last_progress = (phase, k, n)
        self.lift_toasts()  # on a screen opened since
        left = say_left(self._eta.left(phase, k, n)) if self._eta is not None else ""
        for screen in self.screen_stack:
            for bar in screen.query(TrainingBar):
                bar.show_progress(phase, k, n, elapsed, left)

    def training_over(self) -> None:
        """The run ended (done, cancelled or failed): the bar and its ticker go."""
        self.training = False
        self.lift_toasts()
        if self._train_ticker is not None:
            self._train_ticker.stop()
            self._train_ticker = None
        self._last_progress = None
        for screen in self.screen_stack:
            for bar in screen.query(TrainingBar):
                bar.hide()

    # --- the end ------------------------------------------------------------------------

    def on_unmount(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
        self.workers.cancel_all()
        self.source.close()

    def finish_writes(self, timeout: float = QUIT_WAIT_S) -> None:
        """After the app closed: the captures asked for are stored, a training cancelled by
        quitting stores what it computed, a write under way ends, then the store closes.
        Reads (a model still loading, a live prediction) are not waited for: they change
        nothing."""
        self._writes.shutdown(wait=True)
        self._train_idle.wait(timeout)
        self.store.close(timeout)

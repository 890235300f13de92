"""The Textual app: its screens, the keys that open them, and where a finished run goes.
What it does for the screens (the store, the live view, the model, training) is in
``services.py``, below the screens."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

from textual import on
from textual.app import SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from fingertui.data.workspace import Workspace
from fingertui.live.camera import FrameSource, open_source
from fingertui.tui.collector import IdleCollector
from fingertui.tui.screens.capture import CaptureScreen
from fingertui.tui.services import AppServices, TrainingDone


class FingerApp(AppServices):
    CSS_PATH = "fingertui.tcss"
    TITLE = "fingertui"
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("t", "train", "train"),
        Binding("r", "review", "review"),
        Binding("g", "gallery", "gallery"),
        Binding("c", "results", "results"),
        Binding("h", "runs", "runs"),
        # F1 is where terminal apps keep help, ? where Textual apps do: both, on every screen.
        Binding("f1,question_mark", "help", "help", show=False),
    ]

    def on_mount(self) -> None:
        self.push_screen(CaptureScreen())
        self.start_services()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every key of the screen on show, and every app-wide key, is also a command in the
        palette (ctrl+p), run exactly as the key would run it."""
        builtin = list(super().get_system_commands(screen))
        yield from builtin
        seen = {c.title.lower() for c in builtin}
        for owner, bindings in ((screen, screen.BINDINGS), (self, self.BINDINGS)):
            for b in bindings:
                if not isinstance(b, Binding):
                    continue
                if b.action == "cancel_training" and not self.training:
                    continue  # offered only while a run is going on
                title, key = b.description, b.key.split(",")[0]
                key_shown = b.key_display or key
                if key.isdigit():  # one binding per digit, shown once as "0-5": name each
                    key_shown = key
                    if not title.endswith(key):
                        title = f"{title.split()[0]} {key}"  # "capture" → "capture 0"
                if title.lower() in seen:  # "quit" is built in already
                    continue
                seen.add(title.lower())
                yield SystemCommand(title.capitalize(), f"key {key_shown}", partial(owner.run_action, b.action))

    @property
    def capture_screen(self) -> CaptureScreen:
        return next(s for s in self.screen_stack if isinstance(s, CaptureScreen))

    # --- screens ----------------------------------------------------------------------

    def action_help(self) -> None:
        """F1 (and ?): the keys of the screen on show."""
        from fingertui.tui.screens.help import HelpScreen

        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        own = getattr(screen, "action_help", None)
        if own is not None:
            own()
            return
        rows = [(b.key_display or b.key, b.description) for b in screen.BINDINGS if isinstance(b, Binding) and b.show]
        self.push_screen(HelpScreen(rows + [("q", "quit"), ("ctrl+p", "every command")]))

    def action_review(self) -> None:
        from fingertui.tui.screens.review import ReviewScreen

        self.push_screen(ReviewScreen())

    def action_gallery(self) -> None:
        from fingertui.tui.screens.gallery import GalleryScreen

        if isinstance(self.screen, GalleryScreen):
            return
        # Open on the class just captured (its frames are what gets pruned), else 0.
        last = self.capture.history[-1].label if self.capture.history else 0
        self.push_screen(GalleryScreen(last))

    def action_results(self) -> None:
        from fingertui.tui.screens.results import ResultsScreen

        self.push_screen(ResultsScreen())

    def action_runs(self) -> None:
        from fingertui.tui.screens.runs import RunsScreen

        self.push_screen(RunsScreen())

    @on(TrainingDone)
    def training_done(self, msg: TrainingDone) -> None:
        self.training_over()
        if msg.run is None:
            self.notify(msg.error or "training stopped", severity="warning", timeout=8)
            return
        from fingertui.learn.metrics import accuracy_caveat
        from fingertui.learn.nextday import held_back_message

        test = msg.run.metrics["test"]
        small = " (too few test images to mean much yet)" if accuracy_caveat(test) else ""
        self.notify(
            f"run {msg.run.id} trained in {msg.run.metrics['duration_s']:.1f} s: "
            f"test accuracy {100 * test['accuracy']:.1f}%{small}"
        )
        held = held_back_message(msg.run.metrics.get("next_day"))
        if held:  # worse than the starter where it did not train: the model in use stays
            self.notify(held, severity="warning", timeout=20)
        else:
            self.switch_model(msg.run)
        from fingertui.tui.screens.results import ResultsScreen

        self.push_screen(ResultsScreen(msg.run))


def run_app(app: FingerApp, **kwargs: Any) -> int:
    """Run the app until the user quits; returns its exit code once nothing is being written.

    Textual's ``App.run`` (through ``asyncio.run``) would join every worker thread on the
    way out, and a model that is still loading can hold that for seconds. On an event loop
    of our own nothing is joined; ``finish_writes`` waits for what must finish. The caller
    may then end the process at once (the CLI does), without the interpreter's teardown
    with torch and MediaPipe loaded: q then takes a median 0.53 s with the model loaded
    and 0.67 s while it loads, against 5.47 s and 12.02 s joining and tearing down
    (bench/results/quit_time.json)."""
    loop = asyncio.new_event_loop()
    app.collector = IdleCollector()
    app.collector.install()
    try:
        app.run(loop=loop, **kwargs)
    finally:
        app.collector.uninstall()
        app.finish_writes()
    # The loop is left open: closing it would wait for nothing but could fail a worker that
    # still hands back a result; the process ends right after.
    return app.return_code or 0


def make_app(
    workspace: Workspace | str | Path | None = None,
    source: FrameSource | str = "webcam",
    *,
    weights: str | None = None,
    backbone: str | None = None,
    auto_retrain: int = 0,
    train_in: str | None = None,
) -> FingerApp:
    """The one factory for the app, used by the CLI and the tests."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
    src = open_source(source) if isinstance(source, str) else source
    return FingerApp(ws, src, weights=weights, backbone=backbone, auto_retrain=auto_retrain, train_in=train_in)

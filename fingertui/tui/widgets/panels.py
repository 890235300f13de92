"""Side panels of the capture screen (prediction bars, dataset counts) and the training
bar every screen shows while a run trains."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Digits, Label, Static

from fingertui.labels import CLASSES

BAR = 24
# Below this many rows the prediction panel is compact (one line per class).
COMPACT_BELOW_ROWS = 40


FINGER_NAMES = ("thumb", "index", "middle", "ring", "little")


def finger_line(ups: list[float], short: bool = False) -> Text:
    """The five fingers' up-probabilities: why the count is what it is. ``short``: one
    line of a narrow panel (each finger's initial and state, no probability)."""
    line = Text("fingers ")
    for name, p in zip(FINGER_NAMES, ups, strict=True):
        style = "green" if p >= 0.65 else "grey50" if p <= 0.35 else "yellow bold"
        # Plain ASCII marks: arrows and triangles are "ambiguous width" and some terminals
        # (tmux among them) draw them two cells wide, which shifts the panel.
        mark = "up" if p >= 0.65 else "dn" if p <= 0.35 else "??"
        line.append(f"{name[0].upper()}:{mark} " if short else f"{name} {mark} {p:.2f}  ", style=style)
    return line


def sure_word(unsure: bool, checked: bool) -> tuple[str, str]:
    """The word after the confidence, and its style: "sure" only where held-out images have
    checked the model's confidence (no "96 % sure" from a model trained on a handful)."""
    if unsure:
        return "unsure", "yellow bold"
    return ("sure", "green") if checked else ("unchecked", "yellow")


class PredictionPanel(Widget):
    """The prediction for the capture square: the count in large digits (Textual's
    ``Digits``) with its calibrated confidence under it, then every class's bar and the
    fingers line."""

    DEFAULT_CSS = """
    PredictionPanel { height: auto; layout: vertical; }
    PredictionPanel > Digits { width: auto; margin: 0 0 0 1; }
    PredictionPanel > #confidence { height: auto; }
    PredictionPanel > #detail { height: auto; }
    """

    shown: tuple[int, list[float], bool] | None = None
    shown_fingers: list[float] | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Compact (a short terminal, 80×24): the count on the confidence line instead of in
        # three-row digits, and the fingers on one line; the class bars stay.
        self.compact = False
        self._last: tuple[tuple, dict] | None = None
        self._digit = Digits("")
        self._digit.display = False
        self._confidence = Static(id="confidence")
        self._detail = Static(id="detail")

    def compose(self) -> ComposeResult:
        yield self._digit
        yield self._confidence
        yield self._detail

    def set_compact(self, compact: bool) -> None:
        if compact != self.compact:
            self.compact = compact
            if self._last is not None:
                self.show(*self._last[0], **self._last[1])

    def show_waiting(self, message: str) -> None:
        self._last = None
        self.shown = self.shown_fingers = None
        self._digit.display = False
        self._confidence.update(Text(message, style="italic"))
        self._detail.update("")

    def show(
        self,
        label: int,
        confidence: float,
        probs: list[float],
        unsure: bool,
        threshold: float,
        note: str = "",
        fingers: list[float] | None = None,
        checked: bool = True,
    ) -> None:
        """``checked``: held-out images have checked the model's confidence (else a confident
        prediction is not called "sure")."""
        self._last = ((label, confidence, probs, unsure, threshold, note, fingers), {"checked": checked})
        self.shown = (label, probs, unsure)
        self.shown_fingers = fingers
        self._digit.update(str(label))
        self._digit.display = not self.compact
        self._digit.set_class(unsure, "unsure")
        head = Text()
        if self.compact:
            head.append(f"count {label} ", style="bold yellow" if unsure else "bold green")
        head.append(f"{100 * confidence:.0f}% ", style="bold")
        head.append(*sure_word(unsure, checked))
        if self.compact:
            head.append(f" (<{100 * threshold:.0f}%)" if checked else " (not checked)", style="dim")
        else:
            head.append(
                f"  (unsure below {100 * threshold:.0f}%)" if checked else "  (not yet checked on your images)",
                style="dim",
            )
        self._confidence.update(head)
        rows = [Text(note, style="yellow")] if note else [] if self.compact else [Text("")]
        bar = BAR // 2 if self.compact else BAR
        for c, p in zip(CLASSES, probs, strict=True):
            line = Text(f"{c} ")
            n = round(p * bar)
            line.append("█" * n, style="bold green" if c == label else "grey50")
            line.append("·" * (bar - n), style="grey23")
            line.append(f" {100 * p:5.1f}%")
            rows.append(line)
        if fingers is not None:
            rows += [finger_line(fingers, short=True)] if self.compact else [Text(""), finger_line(fingers)]
        self._detail.update(Group(*rows))


class SidePanels(VerticalScroll):
    """A column of panels that scrolls (by mouse) when the terminal is too short for it,
    and never takes the keyboard: arrows and space keep their meaning on the screen."""

    can_focus = False


class CountsPanel(Static):
    """Labelled images per class and split; the class that most needs data is marked."""

    shown: tuple[dict[int, dict[str, int]], int, int] | None = None  # counts, unlabelled, to review
    compact = False  # a short terminal: classes across, three rows instead of seven

    def set_compact(self, compact: bool) -> None:
        if compact != self.compact:
            self.compact = compact
            if self._args is not None:
                self.show(*self._args)

    _args: tuple | None = None

    def show(
        self,
        counts: dict[int, dict[str, int]],
        unlabeled: int,
        needy: int | None,
        why: str,
        to_review: int = 0,
        sessions: int = 0,
    ) -> None:
        self._args = (counts, unlabeled, needy, why, to_review, sessions)
        self.shown = (counts, unlabeled, to_review)
        rows = {c: counts.get(c, {"train": 0, "test": 0}) for c in CLASSES}
        if self.compact:
            t = Table("class", *(str(c) for c in CLASSES), box=None, padding=(0, 1), expand=False)
            for c in CLASSES:
                if c == needy:
                    t.columns[c + 1].header = Text(f"{c}<", style="bold yellow")
                    t.columns[c + 1].style = "bold yellow"
            t.add_row("train", *(str(rows[c]["train"]) for c in CLASSES))
            t.add_row("test", *(str(rows[c]["test"]) for c in CLASSES))
        else:
            t = Table("class", "train", "test", "all", box=None, padding=(0, 1), expand=False)
            for c in CLASSES:
                row = rows[c]
                total = row["train"] + row["test"]
                style = "bold yellow" if c == needy else None
                mark = " < needs data" if c == needy else ""
                t.add_row(f"{c}{mark}", str(row["train"]), str(row["test"]), str(total), style=style)
        if self.compact:
            note = Text(f"class {needy} needs data: {why}" if needy is not None else "", style="dim")
            queue = Text(f"unlabelled {unlabeled} · to review {to_review} (r) · sessions {sessions}", style="dim")
            self.update(Group(t, note, queue))
            return
        waiting = f"unlabelled: {unlabeled}" + (" (r labels them)" if unlabeled else "")
        note = Text(waiting + (f"   < {why}" if needy is not None else ""), style="dim")
        queue = Text(f"to review: {to_review} flagged (r)", style="dim")
        # Sittings: validation holds whole ones out, so a second day is what tells whether
        # the model counts on a new one (nextday.py).
        days = Text(
            f"sessions: {sessions}" + (" (another day or room tells how it counts there)" if sessions == 1 else ""),
            style="dim",
        )
        self.update(Group(t, note, queue, days))


class TrainingBar(Widget):
    """Progress of a training run started from the app: phase, a bar of the phase, k/N, the
    elapsed time and the time left of the whole run.

    Two labels of fixed width updated without a layout pass, and a bar drawn in text:
    Textual's ``ProgressBar`` animates its indeterminate bar many times a second, and a
    label update with a layout pass re-renders the whole screen — while a run reports
    hundreds of images, that would be the app's busiest work (bench/tui_latency.py measures
    how the screen keeps up during a run: bench/results/tui_latency-*.json)."""

    DEFAULT_CSS = """
    TrainingBar { height: 1; display: none; padding: 0 1; background: $boost; layout: horizontal; }
    TrainingBar > #phase { width: 25; }
    TrainingBar > #count { width: 1fr; }
    """
    BAR = 20

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.phase: str | None = None
        self.k = self.n = 0
        self.elapsed = 0.0
        self.left = ""
        self._phase = Label(id="phase")
        self._count = Label(id="count")

    def compose(self) -> ComposeResult:
        yield self._phase
        yield self._count

    def show_progress(self, phase: str, k: int, n: int, elapsed: float, left: str = "") -> None:
        if not self.display:
            self.display = True  # one layout pass, when the bar appears
        if phase != self.phase:
            # "training image" (a phase of the run) reads as "training image", not "training training image".
            self._phase.update(Text.assemble(("training", "bold"), f" {phase.removeprefix('training ')}"), layout=False)
        self.phase, self.k, self.n, self.elapsed, self.left = phase, k, n, elapsed, left
        # 80 columns: a shorter bar, so that "esc cancels" stays on screen.
        narrow = self.app.size.width < 100
        width = self.BAR // 2 - 2 if narrow else self.BAR
        done = round(width * k / n) if n else 0
        bar = Text.assemble(("━" * done, "bold green"), ("━" * (width - done), "grey35"))
        self._count.update(
            Text.assemble(
                bar,
                f" {k}/{n}  {elapsed:.0f} s  " if narrow else f" {k}/{n}  {elapsed:.1f} s  ",
                (f"{left}  " if left else "", "bold"),
                ("esc cancels", "dim"),
            ),
            layout=False,
        )

    def hide(self) -> None:
        self.display = False
        self.phase = None

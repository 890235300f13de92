"""Side panels of the capture screen (prediction bars, dataset counts) and the training
bar every screen shows while a run trains."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Digits, Label, ProgressBar, Static

from fingertui.labels import CLASSES

BAR = 24


FINGER_NAMES = ("thumb", "index", "middle", "ring", "little")


def finger_line(ups: list[float]) -> Text:
    """The five fingers' up-probabilities: why the count is what it is."""
    line = Text("fingers ")
    for name, p in zip(FINGER_NAMES, ups, strict=True):
        style = "green" if p >= 0.65 else "grey50" if p <= 0.35 else "yellow bold"
        # Plain ASCII marks: arrows and triangles are "ambiguous width" and some terminals
        # (tmux among them) draw them two cells wide, which shifts the panel.
        mark = "up" if p >= 0.65 else "dn" if p <= 0.35 else "??"
        line.append(f"{name} {mark} {p:.2f}  ", style=style)
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
        self._digit = Digits("")
        self._digit.display = False
        self._confidence = Static(id="confidence")
        self._detail = Static(id="detail")

    def compose(self) -> ComposeResult:
        yield self._digit
        yield self._confidence
        yield self._detail

    def show_waiting(self, message: str) -> None:
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
        self.shown = (label, probs, unsure)
        self.shown_fingers = fingers
        self._digit.update(str(label))
        self._digit.display = True
        self._digit.set_class(unsure, "unsure")
        head = Text()
        head.append(f"{100 * confidence:.0f}% ", style="bold")
        head.append(*sure_word(unsure, checked))
        head.append(
            f"  (unsure below {100 * threshold:.0f}%)" if checked else "  (not yet checked on your images)", style="dim"
        )
        self._confidence.update(head)
        rows = [Text(note, style="yellow") if note else Text("")]
        for c, p in zip(CLASSES, probs, strict=True):
            line = Text(f"{c} ")
            n = round(p * BAR)
            line.append("█" * n, style="bold green" if c == label else "grey50")
            line.append("·" * (BAR - n), style="grey23")
            line.append(f" {100 * p:5.1f}%")
            rows.append(line)
        if fingers is not None:
            rows += [Text(""), finger_line(fingers)]
        self._detail.update(Group(*rows))


class CountsPanel(Static):
    """Labelled images per class and split; the class that most needs data is marked."""

    shown: tuple[dict[int, dict[str, int]], int, int] | None = None  # counts, unlabelled, to review

    def show(
        self, counts: dict[int, dict[str, int]], unlabeled: int, needy: int | None, why: str, to_review: int = 0
    ) -> None:
        self.shown = (counts, unlabeled, to_review)
        t = Table("class", "train", "test", "all", box=None, padding=(0, 1), expand=False)
        for c in CLASSES:
            row = counts.get(c, {"train": 0, "test": 0})
            total = row["train"] + row["test"]
            style = "bold yellow" if c == needy else None
            mark = " < needs data" if c == needy else ""
            t.add_row(f"{c}{mark}", str(row["train"]), str(row["test"]), str(total), style=style)
        waiting = f"unlabelled: {unlabeled}" + (" (r labels them)" if unlabeled else "")
        note = Text(waiting + (f"   < {why}" if needy is not None else ""), style="dim")
        queue = Text(f"to review: {to_review} flagged (r)", style="dim")
        self.update(Group(t, note, queue))


class TrainingBar(Widget):
    """Progress of a training run started from the app: phase, a bar of the phase (Textual's
    ``ProgressBar``), k/N, the elapsed time and the time left of the whole run."""

    DEFAULT_CSS = """
    TrainingBar { height: 1; display: none; padding: 0 1; background: $boost; layout: horizontal; }
    TrainingBar > #phase { width: auto; min-width: 26; }
    TrainingBar > ProgressBar { width: auto; margin: 0 1; }
    TrainingBar > #count { width: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.phase: str | None = None
        self.k = self.n = 0
        self.elapsed = 0.0
        self.left = ""
        self._phase = Label(id="phase")
        # The bar's own ETA would be the phase's; the run's time left is shown beside it.
        self._bar = ProgressBar(total=None, show_percentage=False, show_eta=False)
        self._count = Label(id="count")

    def compose(self) -> ComposeResult:
        yield self._phase
        yield self._bar
        yield self._count

    def show_progress(self, phase: str, k: int, n: int, elapsed: float, left: str = "") -> None:
        self.display = True
        if phase != self.phase:
            self._bar.update(total=None)  # a new phase: the bar starts afresh
            # "training image" (a phase of the run) reads as "training image", not "training training image".
            self._phase.update(Text.assemble(("training", "bold"), f" {phase.removeprefix('training ')}"))
        self.phase, self.k, self.n, self.elapsed, self.left = phase, k, n, elapsed, left
        self._bar.update(total=n or None, progress=k)
        self._count.update(
            Text.assemble(f"{k}/{n}  {elapsed:.1f} s  ", (f"{left}  " if left else "", "bold"), ("esc cancels", "dim"))
        )

    def hide(self) -> None:
        self.display = False
        self.phase = None

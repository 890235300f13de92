"""The review screen: the active-learning queue, one snapshot at a time."""

from __future__ import annotations

from PIL import Image
from rich.markup import escape
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Header, Static

from fingertui.errors import UnsafePath, UserError
from fingertui.labels import CLASSES
from fingertui.learn.model import Model
from fingertui.review import flags, queue
from fingertui.review.reasons import FLAG_REASONS
from fingertui.runs.records import active_run
from fingertui.tui.screens.base import AppScreen
from fingertui.tui.screens.confirm import ConfirmScreen
from fingertui.tui.widgets.camera_view import CameraView
from fingertui.tui.widgets.panels import COMPACT_BELOW_ROWS, PredictionPanel, SidePanels, TrainingBar
from fingertui.words import plural

REASON_FILTERS: list[str | None] = [None, *FLAG_REASONS]  # `f` cycles through them: all, then each


def explain(item: queue.QueueItem) -> str:
    """A flag's reasons in plain words; a label error or disagreement with its evidence."""
    conf = f"{100 * item.confidence:.0f}%" if item.confidence is not None else "?"
    says = f"model says {item.pred} at {conf} — you labelled {item.label}"
    words = []
    if "label-error" in item.reasons:
        words.append(f"[b]the label looks wrong: probably {item.suggested}[/b]")
        words.append(item.why or says)
    elif "disagrees" in item.reasons:
        words.append(f"the model leans to {item.suggested}, not strongly enough to call your {item.label} wrong")
        words.append(item.why or says)
    elif "misclassified" in item.reasons:
        words.append(says)
    if "unsure" in item.reasons:
        words.append(
            f"unlabelled — model guesses {item.pred} at {conf}" if item.label is None else f"model unsure ({conf})"
        )
    if "finger-borderline" in item.reasons:
        words.append("a finger is neither clearly up nor down (see the fingers line) — is the label right?")
    if "no-hand" in item.reasons:
        words.append("no hand found in this snapshot — a bad snapshot? (x marks it not a hand)")
    if "weak-class" in item.reasons:
        words.append("involves the weakest class")
    if item.duplicates:
        words.append(f"{plural(len(item.duplicates), 'near-identical snapshot')} folded in")
    if item.hold:
        words.append(
            f"one take (a hold or burst) of {len(item.hold) + 1} frames: a label, confirm or x applies to all of them"
        )
    return "\n".join(words)


def explain_unlabelled(item: queue.QueueItem) -> str:
    """An unlabelled capture shown before any model was trained."""
    if item.suggested is None:
        return "unlabelled - no model yet: press 0-5 to label it"
    conf = f"{100 * (item.confidence or 0.0):.0f}%"
    return (
        f"unlabelled - the starter model counts {item.suggested} ({conf}): "
        f"press {item.suggested} if it is right, else the right count"
    )


class ReviewScreen(AppScreen[None]):
    BINDINGS = [
        *[
            Binding(str(c), f"relabel({c})", "relabel" if c == 0 else f"relabel {c}", key_display="0-5", show=c == 0)
            for c in CLASSES
        ],
        Binding("enter", "confirm", "confirm"),
        Binding("x", "exclude", "not a hand"),
        Binding("d", "delete", "delete"),
        Binding("s", "skip", "skip"),
        Binding("u", "undo", "undo"),
        Binding("left", "move(-1)", "previous", key_display="←"),
        Binding("right", "move(1)", "next", key_display="→"),
        Binding("f", "filter_reason", "filter reason"),
        Binding("l", "filter_label", "filter label"),
        Binding("escape", "back", "back"),
    ]

    def __init__(
        self, sample_ids: list[int] | None = None, title: str = "review", notes: dict[int, str] | None = None
    ) -> None:
        super().__init__()
        self.only = sample_ids  # a fixed list (e.g. one confusion-matrix cell) instead of the queue
        self.notes = notes or {}  # why each of those is shown, where the queue has no flag for it
        self.heading = title
        self.items: list[queue.QueueItem] = []
        self.index = 0
        self.reason: str | None = None
        self.label: int | None = None
        self.done = 0

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield CameraView(id="sample")
            with SidePanels(id="right"):
                yield Static(id="counter", classes="box")
                yield Static(id="why", classes="box")
                yield PredictionPanel(id="review-prediction", classes="box")
        yield TrainingBar()
        yield Footer()

    def on_resize(self, event: events.Resize) -> None:
        self.query_one(PredictionPanel).set_compact(event.size.height < COMPACT_BELOW_ROWS)

    def on_mount(self) -> None:
        self.query_one(PredictionPanel).set_compact(self.app.size.height < COMPACT_BELOW_ROWS)
        self.title = f"fingertui — {self.heading}"
        self.query_one("#counter", Static).update("loading the queue…")
        # Items resolved in another terminal leave the queue as the store changes.
        self.app.store_changed_elsewhere.subscribe(self, lambda _: self.load())
        self.load()

    @work(thread=True, exclusive=True, group="queue", exit_on_error=False, description="loading the review queue")
    def load(self) -> None:
        store = self.app.store
        if self.only is not None:
            items = [it for it in queue.items(store, diversity=False)]
            flagged = {it.sample_id: it for it in items}
            result = []
            for sid in self.only:
                if sid in flagged:
                    result.append(flagged[sid])
                else:
                    try:
                        s = store.get(sid)
                    except UserError:
                        continue
                    result.append(queue.QueueItem(s.id, s.path, s.label, None, None, None, [], 0.0, None))
            items = result
        elif active_run(store) is None:
            items = self.unlabelled()
        else:
            items = queue.items(store, reason=self.reason, label=self.label)
        self.app.call_from_thread(self.set_items, items)

    def unlabelled(self) -> list[queue.QueueItem]:
        """No run yet: the unlabelled captures, with the starter's count where it has one."""
        model = self._starter()
        if self.reason not in (None, "unsure"):
            return []
        items = queue.unlabelled_items(self.app.store, model)
        return [it for it in items if self.label is None or it.pred == self.label]

    def _starter(self) -> Model | None:
        """The model in use when it is the shipped starter (no run trained yet)."""
        model = self.app.model
        return model if isinstance(model, Model) and model.is_starter else None

    def set_items(self, items: list[queue.QueueItem]) -> None:
        self.items = items
        self.index = min(self.index, max(0, len(items) - 1))
        self.show_current()

    @property
    def current(self) -> queue.QueueItem | None:
        return self.items[self.index] if 0 <= self.index < len(self.items) else None

    def show_current(self) -> None:
        counter = self.query_one("#counter", Static)
        filters = f"reason: {self.reason or 'all'} · label: {'all' if self.label is None else self.label}"
        it = self.current
        if it is None:
            counter.update(f"[b]nothing to review[/b] ({self.done} done)\n{filters}")
            self.query_one("#why", Static).update("")
            self.query_one(PredictionPanel).show_waiting("")
            return
        sample = self.app.store.by_ids([it.sample_id]).get(it.sample_id)
        origin = escape(sample.origin_name) if sample is not None else "?"
        counter.update(
            f"[b]{len(self.items) - self.index} left[/b] · item {self.index + 1} of {len(self.items)} · {self.done} done\n"
            f"sample {it.sample_id} · from {origin}\n"
            f"label [b]{'—' if it.label is None else it.label}[/b]"
            f" · suggested [b]{'—' if it.suggested is None else it.suggested}[/b]\n{filters}"
        )
        why = explain_unlabelled(it) if it.reasons == ["unlabelled"] else explain(it)
        self.query_one("#why", Static).update(
            why or self.notes.get(it.sample_id) or "no flag: " + ", ".join(it.reasons)
        )
        starter = self._starter()
        run = self.app.active
        thr = run.metrics["unsure_threshold"] if run is not None else starter.threshold if starter is not None else None
        if it.probs and it.pred is not None and it.confidence is not None and thr is not None:
            fingers = None
            if run is not None:
                sample = self.app.store.get(it.sample_id)
                fingers = flags.finger_ups(self.app.store, run, [sample]).get(it.sample_id)
            checked = bool(run and (run.metrics.get("confidence") or {}).get("checked"))
            self.query_one(PredictionPanel).show(
                it.pred, it.confidence, it.probs, it.confidence < thr, thr, fingers=fingers, checked=checked
            )
        else:
            self.query_one(PredictionPanel).show_waiting("no prediction stored")
        try:
            with Image.open(self.app.workspace.abs(it.path)) as img:
                self.query_one(CameraView).show(img.convert("RGB"))
        except OSError:
            self.notify(f"image of sample {it.sample_id} is missing; run fingertui doctor", severity="error")
        except UnsafePath:  # a crafted row: never opened
            self.notify(
                f"sample {it.sample_id} names a file outside this workspace; run fingertui doctor", severity="error"
            )

    def _act(self, action: queue.Action, label: int | None = None) -> None:
        it = self.current
        if it is None:
            return
        # A take folded into one item (queue.fold_takes) is answered as one: its frames
        # are the same pose. Delete stays with the frame on show (it asked about that one).
        ids = [it.sample_id, *it.hold] if action in ("relabel", "confirm", "exclude") else [it.sample_id]
        try:
            for sid in ids:
                queue.apply_action(self.app.store, sid, action, label)
        except UserError as e:
            self.notify(str(e), severity="error")
            return
        if len(ids) > 1:
            self.notify(f"{action}: the whole take, {plural(len(ids), 'frame')}")
        if action != "skip":
            self.done += 1
            self.items.pop(self.index)
            self.app.labels_changed()
        else:
            self.index += 1
        self.index = min(self.index, max(0, len(self.items) - 1))
        self.show_current()

    def action_relabel(self, label: int) -> None:
        self._act("relabel", label)

    def action_confirm(self) -> None:
        it = self.current
        if it is not None and it.label is None:
            self.notify("unlabelled: press 0–5 to label it", severity="warning")
            return
        self._act("confirm")

    def action_exclude(self) -> None:
        self._act("exclude")

    def action_skip(self) -> None:
        self._act("skip")

    def action_delete(self) -> None:
        it = self.current
        if it is None:
            return

        def done(yes: bool | None) -> None:
            if yes:
                self._act("delete")

        self.app.push_screen(ConfirmScreen(f"Delete sample {it.sample_id}? (u undoes it)"), done)

    def action_undo(self) -> None:
        try:
            res = self.app.store.undo()
        except UserError as e:
            self.notify(str(e), severity="warning")
            return
        self.notify(f"undone: {res['undone']}")
        self.done = max(0, self.done - 1)
        self.app.labels_changed()
        self.load()

    def action_move(self, step: int) -> None:
        if self.items:
            self.index = (self.index + step) % len(self.items)
            self.show_current()

    def action_filter_reason(self) -> None:
        self.reason = REASON_FILTERS[(REASON_FILTERS.index(self.reason) + 1) % len(REASON_FILTERS)]
        self.index = 0
        self.load()

    def action_filter_label(self) -> None:
        options = [None, *CLASSES]
        self.label = options[(options.index(self.label) + 1) % len(options)]
        self.index = 0
        self.load()

    def action_back(self) -> None:
        if not self.app.cancel_training():
            self.app.pop_screen()

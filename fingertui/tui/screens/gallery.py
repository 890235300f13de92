"""The gallery: every image of one class as thumbnails (the user's own captures first), to
browse, relabel with 0-5 and delete (u undoes)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Static

from fingertui.data import catalog
from fingertui.data.store import Sample
from fingertui.errors import UserError
from fingertui.labels import CLASSES
from fingertui.tui.screens.base import AppScreen
from fingertui.tui.widgets.gallery import Gallery, Tile
from fingertui.tui.widgets.panels import TrainingBar
from fingertui.words import plural

PAGES: list[int | None] = [*CLASSES, None]  # None: the unlabelled snapshots


def class_name(label: int | None) -> str:
    return "unlabelled" if label is None else f"class {label}"


def caption(s: Sample) -> str:
    mark = "x " if s.excluded else ""
    return f"{mark}{s.id} {catalog.origin_name(s) if s.origin else 'yours'}"


class GalleryScreen(AppScreen[None]):
    BINDINGS = [
        *[
            Binding(str(c), f"relabel({c})", "relabel" if c == 0 else f"relabel {c}", key_display="0-5", show=c == 0)
            for c in CLASSES
        ],
        Binding("d,delete", "delete", "delete", key_display="d"),
        Binding("u", "undo", "undo"),
        Binding("left", "move(-1, 0)", "previous", key_display="left"),
        Binding("right", "move(1, 0)", "next", key_display="right"),
        Binding("up", "move(0, -1)", "row up", show=False),
        Binding("down", "move(0, 1)", "row down", show=False),
        Binding("pageup", "page(-1)", "previous page", show=False),
        Binding("pagedown", "page(1)", "next page", show=False),
        Binding("left_square_bracket", "switch(-1)", "previous class", key_display="["),
        Binding("right_square_bracket", "switch(1)", "next class", key_display="]"),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("escape", "back", "back"),
    ]

    def __init__(self, label: int | None = 0) -> None:
        super().__init__()
        self.label = label
        self.samples: list[Sample] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="gallery-info")
        yield Gallery(id="gallery")
        yield Static(id="gallery-detail")
        yield TrainingBar()
        yield Footer()

    def on_mount(self) -> None:
        self.title = "fingertui - gallery"
        # Labels changed in another terminal show here as they do in the counts.
        self.app.store_changed_elsewhere.subscribe(self, lambda _: self.load(keep=self.current_id))
        self.load()

    @property
    def gallery(self) -> Gallery:
        return self.query_one(Gallery)

    @property
    def current_id(self) -> int | None:
        return self.current.id if self.current is not None else None

    @property
    def current(self) -> Sample | None:
        i = self.gallery.index
        return self.samples[i] if 0 <= i < len(self.samples) else None

    def load(self, keep: int | None = None, index: int | None = None) -> None:
        """Read the class again; select sample ``keep`` if it is there, else ``index``."""
        self.samples = catalog.gallery(self.app.store, self.label)
        ids = [s.id for s in self.samples]
        at = ids.index(keep) if keep in ids else index if index is not None else 0
        ws = self.app.workspace
        self.gallery.empty = (
            "no unlabelled snapshots (space captures one)"
            if self.label is None
            else f"no images of {self.label} yet: capture some (esc, then hold {self.label}) or `fingertui import`"
        )
        # A row naming a file outside the workspace (a crafted index) is never opened: left
        # out, and said once; `doctor` lists it.
        refused = [s for s in self.samples if ws.unsafe(s.path)]
        if refused:
            self.samples = [s for s in self.samples if not ws.unsafe(s.path)]
            at = min(at, max(len(self.samples) - 1, 0))
            self.notify(
                f"{len(refused)} samples name files outside this workspace and are not shown; run `fingertui doctor`",
                severity="warning",
            )
        self.gallery.set_tiles([Tile(s.id, ws.abs(s.path), caption(s)) for s in self.samples], at)
        self.show_info()

    def show_info(self) -> None:
        own = sum(s.source == catalog.CAPTURED for s in self.samples)
        n = len(self.samples)
        g = self.gallery
        shown = f"showing {g.first + 1}-{min(n, g.first + g.per_page)} of {n}" if n else "nothing here yet"
        self.query_one("#gallery-info", Static).update(
            f"[b]{class_name(self.label)}[/b] · {plural(n, 'image')}: {own} captured by you (shown first), "
            f"{n - own} imported · {shown}\n[dim]\\[ and ] switch class · 0-5 relabels · d deletes · u undoes[/]"
        )

    @on(Gallery.Selected)
    def show_detail(self) -> None:
        self.show_info()
        s = self.current
        detail = self.query_one("#gallery-detail", Static)
        if s is None:
            detail.update("")
            return
        where = f"imported from {s.origin}" if s.origin else f"captured in the app (session {s.session})"
        label = "unlabelled" if s.label is None else f"label {s.label}"
        excluded = " · [yellow]excluded from training[/]" if s.excluded else ""
        detail.update(
            f"[b]sample {s.id}[/b] · {label} · {s.split or 'no split yet'} · {where} · {s.created[:19].replace('T', ' ')}{excluded}"
        )

    # --- actions ----------------------------------------------------------------------

    def action_move(self, dx: int, dy: int) -> None:
        self.gallery.move(dx, dy)

    def action_page(self, step: int) -> None:
        self.gallery.page(step)

    def action_switch(self, step: int) -> None:
        self.label = PAGES[(PAGES.index(self.label) + step) % len(PAGES)]
        self.load()

    def action_relabel(self, label: int) -> None:
        s = self.current
        if s is None:
            return
        if s.label == label:
            self.notify(f"sample {s.id} is already {label}")
            return
        try:
            self.app.store.set_label(s.id, label, reason="gallery")
        except UserError as e:
            self.notify(str(e), severity="error")
            return
        was = "unlabelled" if s.label is None else str(s.label)
        self.notify(f"sample {s.id}: {was} -> {label} (u undoes)")
        self.changed(self.gallery.index)

    def action_delete(self) -> None:
        s = self.current
        if s is None:
            return
        try:
            self.app.store.delete(s.id, reason="gallery")
        except UserError as e:
            self.notify(str(e), severity="error")
            return
        self.notify(f"deleted sample {s.id} (u brings it back)")
        self.changed(self.gallery.index)

    def action_undo(self) -> None:
        try:
            res = self.app.store.undo()
        except UserError as e:
            self.notify(str(e), severity="warning")
            return
        self.notify(f"undone: {res['undone']}")
        self.changed(self.gallery.index, keep=res.get("sample"))

    def changed(self, index: int | None = None, keep: int | None = None) -> None:
        """After a change to the dataset: this page again, the capture screen's counts."""
        self.load(keep=keep, index=index)
        self.app.labels_changed()

    def action_help(self) -> None:
        from fingertui.tui.screens.help import HelpScreen

        rows = [(b.key_display or b.key, b.description) for b in self.BINDINGS if isinstance(b, Binding) and b.show]
        rows[0] = ("0-5", "relabel the framed image (it moves to that class)")
        rows += [("arrows", "move (pageup/pagedown: a page)"), ("click", "select")]
        self.app.push_screen(HelpScreen(rows))

    def action_back(self) -> None:
        if not self.app.cancel_training():
            self.app.pop_screen()

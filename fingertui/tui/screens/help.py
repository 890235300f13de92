"""`?`: every key of the current screen, from its bindings."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close")]

    def __init__(self, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = bindings

    def compose(self) -> ComposeResult:
        width = max(len(k) for k, _ in self.rows) + 2
        # Styled pieces, not markup: a key such as "[" would be read as the start of a tag.
        text = Content("\n").join(Content.assemble((k.ljust(width), "bold"), f" {d}") for k, d in self.rows)
        with Vertical(id="help"):
            yield Static("[b]fingertui — keys[/b]\n")
            yield Static(text)
            yield Static("\n[dim]esc closes · ctrl+p opens the command palette[/dim]")

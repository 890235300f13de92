"""The key footer, rebuilt only when the keys it shows change."""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer

Shown = tuple[tuple[str, str, str, bool, str], ...]


class KeysFooter(Footer):
    """Textual's footer, except that it is recomposed only when the keys it would show
    differ from those on show. Textual recomposes it whenever its screen's bindings are
    refreshed, which is every return to the screen (closing help, review, the gallery),
    though they rarely change: a recompose builds and styles a widget per key, most of the
    main thread's work of closing the help screen, and each one leaves the replaced keys'
    data bindings behind on the footer, a list every later recompose scans
    (tests/test_tui.py: the keys after ten help screens are the same widgets)."""

    def __init__(self) -> None:
        super().__init__()
        self._shown: Shown | None = None

    def bindings_changed(self, screen: Screen) -> None:
        # Footer.bindings_changed recomposes only under these conditions: then what it
        # shows is what ``_keys`` lists now.
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            keys = _keys(screen)
            if keys == self._shown and self._bindings_ready:
                return
            self._shown = keys
        super().bindings_changed(screen)


def _keys(screen: Screen) -> Shown:
    """What the footer would show for ``screen``: every shown binding, enabled or not."""
    return tuple(
        (b.key, b.description, b.action, enabled, tooltip or "")
        for _, b, enabled, tooltip in screen.active_bindings.values()
        if b.show or b.key == screen.app.COMMAND_PALETTE_BINDING
    )

"""What it takes to keep a long Textual session lean (textual 8.2)."""

from __future__ import annotations


def forget_closed_widgets() -> None:
    """Let go of the rendered lines of widgets that have closed.

    Textual caches ``StylesCache.get_inner_outer`` with ``lru_cache`` on the method, so the
    cache holds each widget's StylesCache, and with it the widget's rendered lines, after
    the widget has gone: up to 1024 of them (Textualize/textual#6665). Every help screen,
    review or gallery opened added its widgets, thousands of objects each time that every
    full garbage collection then scanned (tests/test_tui.py opens help and counts them).
    The cache only spares two small style objects a line: emptying it costs nothing."""
    from textual._styles_cache import StylesCache

    clear = getattr(StylesCache.get_inner_outer, "cache_clear", None)
    if clear is not None:  # a Textual whose method is no longer cached this way
        clear()

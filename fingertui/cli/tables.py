"""CLI tables that keep what matters readable, piped or on a narrow terminal.

Rich sizes a table to the console, which is 80 columns when output is piped, and then cuts
every column to fit ("finis…", "data/images/a…"). Here the columns a user reads a row by
(ids, labels, scores) are never cut: on a terminal the other columns wrap around them, and
piped output is as wide as the table needs, one line per row, so ``grep`` sees whole rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

MIN_WRAPPED = 8  # a wrapped column narrower than this is unreadable

# Control characters (an escape sequence in a file name would drive the terminal), bidi
# overrides (they reorder what is shown) and lone surrogates (undecodable bytes of a name).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def safe_text(text: str) -> str:
    """User text (a file name) as it may be printed: unsafe characters shown escaped."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), str(text))


def print_table(
    out: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    whole: set[str],
    title: str | None = None,
) -> None:
    """Print ``rows`` under ``headers``; the columns named in ``whole`` are never wrapped or
    cut, the others wrap (long words fold) in the width that is left."""
    from rich import box
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Cells are text, never markup: a file named "a[/b].jpg" is shown as it is.
    rows = [[safe_text(c) for c in r] for r in rows]
    natural = [max([cell_len(name), *(cell_len(r[k]) for r in rows)]) for k, name in enumerate(headers)]

    def table(narrowest: bool = False) -> Table:
        t = Table(
            title=title,
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            collapse_padding=True,
            title_justify="left",
        )
        for name, width in zip(headers, natural, strict=True):
            if name in whole:
                t.add_column(name, width=width, no_wrap=True)
            elif narrowest:
                t.add_column(name, width=min(width, MIN_WRAPPED))
            else:
                t.add_column(name, overflow="fold")
        for r in rows:
            t.add_row(*(Text(c) for c in r))
        return t

    t = table()
    if not out.is_terminal:
        # Piped: wide enough that no column wraps (rich would assume 80 columns).
        full = Console(width=10_000, file=out.file).measure(t).maximum
        out = Console(width=full, file=out.file)
    else:
        # A terminal too narrow for the whole columns and a few letters of each other one:
        # keep them whole anyway (the terminal wraps the line) rather than cut an id or a score.
        need = Console(width=10_000, file=out.file).measure(table(narrowest=True)).maximum
        if need > out.width:
            out = Console(width=need, file=out.file)
    out.print(t, highlight=False)

"""How numbers read in fingertui's output, the same in the CLI and the app."""

from __future__ import annotations


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """'1 image', '2 images': a count with its noun agreeing."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


def pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal ("97.3%"); "—" when there is none."""
    return "—" if x is None or x != x else f"{100 * x:.1f}%"


def rough_pct(p: float) -> str:
    """A probability as a whole percentage ("12 %", "<1 %"), for evidence a user skims."""
    return "<1 %" if p < 0.005 else f"{100 * p:.0f} %"

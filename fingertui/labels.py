"""The label set (0–5 raised fingers) and how labels are read from user input."""

from __future__ import annotations

from fingertui.errors import UserError

CLASSES: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five")
ACCEPTED = ", ".join(f"{d}/{w}" for d, w in zip(CLASSES, WORDS, strict=True))


def try_parse_label(text: str) -> int | None:
    """The label a digit or word names ("3", "three", "Three"), else None."""
    t = text.strip().lower()
    # ASCII digits only: "²" or "٣" pass isdigit() but are no label (and int("²") fails).
    if len(t) == 1 and "0" <= t <= "9" and int(t) in CLASSES:
        return int(t)
    if t in WORDS:
        return WORDS.index(t)
    return None


def parse_label(text: str | int) -> int:
    """Like try_parse_label but raises a UserError naming the accepted labels."""
    label = try_parse_label(str(text))
    if label is None:
        raise UserError(f"unknown label {str(text)!r}: use one of {ACCEPTED}")
    return label

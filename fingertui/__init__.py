"""fingertui — teach a camera to count raised fingers, in the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fingertui.version import __version__

__all__ = ["Count", "Counter", "__version__"]

if TYPE_CHECKING:
    from fingertui.counter import Count, Counter


def __getattr__(name: str) -> object:
    # Lazy (PEP 562): `import fingertui` and `fingertui --help` stay light; the API's module
    # loads on first use of `fingertui.Counter`.
    if name in ("Counter", "Count"):
        from fingertui import counter

        return getattr(counter, name)
    raise AttributeError(f"module 'fingertui' has no attribute {name!r}")

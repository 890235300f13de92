"""What the app's own screens share: ``self.app`` typed as fingertui's app, so a screen's
use of the store, the active run or the training controls is checked."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from textual import getters
from textual.screen import Screen

if TYPE_CHECKING:  # the app imports the screens; a screen needs the app's type only
    from fingertui.tui.app import FingerApp

ResultType = TypeVar("ResultType")


class AppScreen(Screen[ResultType]):
    """A screen of :class:`~fingertui.tui.app.FingerApp`."""

    if TYPE_CHECKING:
        app = getters.app(FingerApp)  # the app that shows this screen, as the type checker sees it

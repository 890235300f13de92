"""What the app's own screens share: ``self.app`` typed as the app's services, so a
screen's use of the store, the active run or the training controls is checked, and the
screens sit below the app that opens them."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from textual import getters
from textual.screen import Screen

from fingertui.tui.services import AppServices

ResultType = TypeVar("ResultType")


class AppScreen(Screen[ResultType]):
    """A screen of fingertui's app (:class:`~fingertui.tui.services.AppServices`)."""

    if TYPE_CHECKING:
        app = getters.app(AppServices)  # the app that shows this screen, as the type checker sees it

"""The demo's first screen tells one story: the drawn hand is not one the starter can count."""

from __future__ import annotations

import pytest

from fingertui.tui.app import make_app
from fingertui.tui.widgets.panels import PredictionPanel
from tests.helpers import wait_for

pytestmark = pytest.mark.slow


async def test_demo_says_plainly_what_the_starter_cannot_see(ws):
    app = make_app(ws, "demo")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: not app.model_loading)
        await pilot.pause(0.5)  # frames come in: no prediction is shown over the story
        box = str(app.screen.query_one("#model").render())
        panel = app.screen.query_one(PredictionPanel)
        confidence = str(panel.query_one("#confidence").render())
        assert "drawn hand" in box and "cannot count" in box
        assert "no model yet" not in box and "starter model —" not in box
        assert app.model is None and panel.shown is None
        assert "until you train" in confidence

"""Honest on small data: an accuracy on a handful of test images says it is not yet
meaningful (with its interval), "sure" only where held-out images checked the confidence,
a results screen whose colours can be read, comparisons in words, and a rollback that
leaves the results screen up to date."""

import json

import numpy as np
import pytest
from rich.color import Color
from rich.style import Style
from textual.widgets import DataTable, Static

from fingertui.cli import main
from fingertui.data.importer import import_paths
from fingertui.data.store import Store, now_iso
from fingertui.learn import backbones
from fingertui.learn.heads import TrainConfig
from fingertui.learn.metrics import (
    MEANINGFUL_PER_CLASS,
    accuracy_caveat,
    accuracy_interval,
    confidence_check,
    evaluate,
    mcnemar,
)
from fingertui.learn.model import Model
from fingertui.live.camera import ScriptedSource
from fingertui.runs.records import describe_comparison, list_runs
from fingertui.train.pipeline import train_run
from fingertui.tui.app import make_app
from fingertui.tui.screens.results import ResultsScreen
from fingertui.tui.screens.review import ReviewScreen
from fingertui.tui.screens.runs import RunsScreen
from fingertui.tui.widgets.panels import PredictionPanel
from tests.conftest import widget_app, write_bars
from tests.helpers import wait_for
from tests.test_tui import frames

FAST = TrainConfig(views=0, max_epochs=20)


def shown(widget) -> str:
    """The text a widget draws on screen (a container: what its shown children draw)."""
    from textual.geometry import Region

    if widget.children:
        return "\n".join(shown(child) for child in widget.children if child.display)
    lines = widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    return "\n".join("".join(seg.text for seg in line) for line in lines)


# --- the numbers --------------------------------------------------------------------------


def test_a_perfect_score_on_six_images_gets_a_wide_interval_and_a_warning():
    y = np.arange(6)
    m = evaluate(y, np.eye(6)[y])
    lo, hi = m["accuracy_ci95"]
    # 6 of 6 right: the true accuracy could well be 60 %; a bootstrap would say 100–100 %.
    assert m["accuracy"] == 1.0 and lo < 0.6 and hi == 1.0
    caveat = accuracy_caveat(m)
    assert "not yet meaningful" in caveat and "only 6 test images" in caveat and f"{100 * lo:.0f}%" in caveat
    big = np.repeat(np.arange(6), MEANINGFUL_PER_CLASS)
    assert accuracy_caveat(evaluate(big, np.eye(6)[big])) is None
    # A class missing from the test split is as short as can be.
    assert "class 5 has none" in accuracy_caveat(evaluate(big[big < 5], np.eye(6)[big[big < 5]]))


def test_the_interval_of_an_older_run_is_recomputed_exactly():
    old = {"n": 6, "accuracy": 2 / 6, "accuracy_ci95": [0.0, 0.67]}  # a bootstrap from before
    lo, hi = accuracy_interval(old)
    assert lo == pytest.approx(0.0433, abs=1e-3) and hi == pytest.approx(0.7772, abs=1e-3)


def test_confidence_is_checked_only_with_enough_held_out_images_and_a_small_calibration_error():
    few = confidence_check(np.array([0, 1]), np.array([0, 1, 2]), 0.01, [0, 1, 2])
    assert not few["checked"] and "about 40 labelled per class" in few["why"]
    many = np.repeat([0, 1, 2], 10)
    assert confidence_check(many[:15], many[15:], 0.03, [0, 1, 2])["checked"]
    off = confidence_check(many[:15], many[15:], 0.25, [0, 1, 2])
    assert not off["checked"] and "0.25" in off["why"]


def test_comparison_in_words():
    def cmp(fixed: int, broke: int, n: int = 40) -> dict:
        a = np.array([False] * fixed + [True] * broke + [True] * (n - fixed - broke))
        b = np.array([True] * fixed + [False] * broke + [True] * (n - fixed - broke))
        return {"a": 2, "b": 3, "n_common": n, "mcnemar": mcnemar(a, b)}

    assert describe_comparison(cmp(12, 2)) == (
        "run 3 fixed 12 images and broke 2 of the 40 test images both saw; "
        "a difference this size is unlikely to be chance (p = 0.013): run 3 is better"
    )
    assert "could well be chance (p = 1)" in describe_comparison(cmp(5, 4))
    assert "too few changed to tell better from worse" in describe_comparison(cmp(2, 0))
    assert "no difference" in describe_comparison(cmp(0, 0))
    assert "cannot be compared" in describe_comparison({**cmp(0, 0), "n_common": 0})


# --- a model trained on a handful ---------------------------------------------------------


@pytest.fixture
def small(store, tmp_path, monkeypatch):
    """A workspace with 4 stand-in images per class (1 per class in the test split), trained."""
    monkeypatch.setenv(backbones.ENV_DEV_RANDOM, "1")
    import_paths(store, [write_bars(tmp_path / "bars", 4)])
    run = train_run(store, backbone="dev-random", cfg=FAST)
    return store, run


@pytest.mark.slow
def test_cli_train_eval_runs_predict_say_the_accuracy_is_not_yet_meaningful(small, capsys):
    store, run = small
    home = str(store.ws.root)
    assert not run.metrics["confidence"]["checked"]
    capsys.readouterr()
    assert main(["--home", home, "train", "--backbone", "dev-random", "--features", "image", "--views", "0"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    lo, hi = accuracy_interval(list_runs(store)[-1].metrics["test"])
    assert "not yet meaningful" in out and f"from {100 * lo:.0f}% to {100 * hi:.0f}%" in out
    assert "confidence not yet checked" in out
    assert main(["--home", home, "eval"]) == 0
    assert "not yet meaningful" in " ".join(capsys.readouterr().out.split())
    assert main(["--home", home, "runs"]) == 0
    assert "not yet meaningful" in " ".join(capsys.readouterr().out.split())
    assert main(["--home", home, "runs", "--json"]) == 0
    assert [r["accuracy_meaningful"] for r in json.loads(capsys.readouterr().out)["runs"]] == [False, False]
    image = next(iter(store.ws.images_dir.rglob("*.png")))
    assert main(["--home", home, "predict", str(image)]) == 0
    assert "confidence not yet checked" in capsys.readouterr().out
    assert main(["--home", home, "predict", str(image), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["confidence_checked"] is False


@pytest.mark.slow
def test_a_model_trained_on_a_handful_never_says_sure(small):
    store, run = small
    assert Model.for_run(store, run).confidence_checked is False
    assert Model.starter() is None or Model.starter().confidence_checked is False


async def test_prediction_panel_keeps_sure_for_checked_models():
    app = widget_app(PredictionPanel)
    async with app.run_test(size=(80, 20)) as pilot:
        panel = app.query_one(PredictionPanel)
        probs = [0.96, 0.01, 0.01, 0.01, 0.005, 0.005]
        panel.show(0, 0.96, probs, False, 0.7, checked=False)
        await pilot.pause()
        text = shown(panel)
        assert "96%" in text and "unchecked" in text and " sure " not in f" {text} ".replace("unsure", "")
        panel.show(0, 0.96, probs, False, 0.7, checked=True)
        await pilot.pause()
        assert " sure " in shown(panel)


@pytest.mark.slow
async def test_the_live_view_of_a_small_data_model_says_unchecked(small):
    store, run = small
    app = make_app(store.ws, ScriptedSource(frames()), backbone="dev-random")
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(PredictionPanel).shown is not None)
        await pilot.pause()
        text = shown(app.screen.query_one(PredictionPanel))
        app.model = None  # stop live prediction before the app closes
        await pilot.pause(0.1)
    assert "unchecked" in text or "unsure" in text
    assert " sure " not in f" {text} "


# --- the results screen -------------------------------------------------------------------


def _add_run(store, preds: dict[int, int], labels: dict[int, int], ece_override: float | None = None) -> int:
    """A recorded run whose test split predictions are ``preds`` (sample id → class)."""
    ids = sorted(preds)
    y = np.array([labels[i] for i in ids])
    probs = np.eye(6)[[preds[i] for i in ids]] * 0.9 + 0.1 / 6
    m = evaluate(y, probs)
    if ece_override is not None:
        m["ece"] = ece_override
    metrics = {"test": m, "duration_s": 1.0, "unsure_threshold": 0.7, "features": "image"}
    rows = [(i, labels[i], "test", preds[i], 0.9, json.dumps(list(probs[k]))) for k, i in enumerate(ids)]
    run = {
        "started": now_iso(),
        "finished": now_iso(),
        "backbone": "dev-random@seed0",
        "seed": 0,
        "config": "{}",
        "data_hash": "x",
        "n_train": 0,
        "n_test": len(ids),
        "metrics": json.dumps(metrics),
        "checkpoint": "data/models/none.pt",
    }
    return store.runs.add(run, rows)


@pytest.fixture
def two_runs(ws, tmp_path):
    """Run 1 and run 2 on 24 stand-in images: run 2 fixes class 3, breaks class 5 (none of its
    images right any more: an empty diagonal cell), and has the same ECE (to 3 decimals)."""
    store = Store(ws)
    import_paths(store, [write_bars(tmp_path / "bars", 4)])
    labels = {s.id: s.label for s in store.labelled()}
    first = {i: (c if c != 3 else 2) for i, c in labels.items()}  # class 3 always called 2
    second = {i: (c if c != 5 else 4) for i, c in labels.items()}  # class 5 always called 4
    a = _add_run(store, first, labels, ece_override=0.0504)
    b = _add_run(store, second, labels, ece_override=0.0503)
    store.close()
    return a, b, labels


def _contrast(fg: Color, bg: Color) -> float:
    def lum(c: Color) -> float:
        def ch(v: int) -> float:
            v /= 255
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        r, g, b = c.get_truecolor()
        return 0.2126 * ch(r) + 0.7152 * ch(g) + 0.0722 * ch(b)

    hi, lo = sorted([lum(fg), lum(bg)], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


async def open_results(pilot) -> None:
    """Press c and wait until the results screen shows its matrix."""
    app = pilot.app
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen) and app.screen.query_one("#matrix").row_count)


@pytest.mark.slow
async def test_results_screen_markers_readable_empty_diagonal_not_green_no_arrow_for_no_change(ws, two_runs):
    app = make_app(ws, ScriptedSource(frames()))
    async with app.run_test(size=(160, 48)) as pilot:
        await open_results(pilot)
        table = app.screen.query_one("#matrix", DataTable)
        rows = {int(str(table.get_cell_at((r, 0)))): r for r in range(table.row_count)}
        markers = 0
        for true, r in rows.items():
            for col in range(1, 7):
                cell = table.get_cell_at((r, col))
                base = Style.parse(cell.style) if isinstance(cell.style, str) else cell.style
                for span in cell.spans:
                    style = Style.parse(span.style) if isinstance(span.style, str) else span.style
                    bg = style.bgcolor or base.bgcolor or Color.parse("black")
                    assert style.color is not None
                    assert _contrast(style.color, bg) >= 3.0, (true, col, str(cell))
                    markers += 1
        assert markers >= 4  # 3→3 +, 3→2 −, 5→5 −, 5→4 +
        # Class 5 has no image counted right in run 2: its diagonal cell is not shaded green.
        empty = table.get_cell_at((rows[5], 6))
        assert str(empty).startswith("0 ")
        style = Style.parse(empty.style) if isinstance(empty.style, str) else empty.style
        if style.bgcolor is not None:
            r_, g_, b_ = style.bgcolor.get_truecolor()
            assert not (g_ > r_ and g_ > b_)
        text = " ".join(shown(app.screen.query_one("#metrics", Static)).split())
        assert "ECE 0.050 (same)" in text and "▲" not in text and "▼" not in text
        assert "not yet meaningful" in text and "95% interval" in text


@pytest.mark.slow
async def test_a_compared_matrix_shows_all_six_columns_at_120_and_its_shares_where_they_fit(ws, two_runs):
    """With change markers a cell read "2 (67%) +1": six of them ran past the matrix's
    width at 120 columns and column 5 was off screen. Where they do not fit, cells show
    their counts alone; where they do (160 columns), their shares too."""
    app = make_app(ws, ScriptedSource(frames()))
    async with app.run_test(size=(120, 40)) as pilot:
        await open_results(pilot)
        table = app.screen.query_one("#matrix", DataTable)
        await pilot.pause()
        assert table.virtual_size.width <= table.scrollable_content_region.width, "columns off screen"
        assert not any("%" in str(table.get_cell_at((r, c))) for r in range(table.row_count) for c in range(1, 7))
        await pilot.resize_terminal(160, 48)
        await wait_for(pilot, lambda: "%" in str(table.get_cell_at((0, 1))))
        assert table.virtual_size.width <= table.scrollable_content_region.width


@pytest.mark.slow
async def test_runs_compare_in_words_opens_the_changed_images_and_rollback_keeps_results_fresh(ws, two_runs):
    a, b, labels = two_runs
    app = make_app(ws, ScriptedSource(frames()))
    async with app.run_test(size=(160, 48)) as pilot:
        await open_results(pilot)
        results = app.screen
        assert results.run_record.id == b
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.query_one("#runs").row_count)
        await pilot.press("space", "down", "space", "p")
        await pilot.pause()
        text = " ".join(shown(app.screen.query_one("#compare")).split())
        fixed = [i for i, c in labels.items() if c == 3]
        broke = [i for i, c in labels.items() if c == 5]
        assert f"run {b} fixed {len(fixed)} images and broke {len(broke)}" in text
        assert "McNemar" not in text
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen.items)
        assert sorted(it.sample_id for it in app.screen.items) == sorted(fixed + broke)
        first = app.screen.items[0].sample_id
        why = " ".join(shown(app.screen.query_one("#why")).split())
        assert f"fixed by run {b}: run {a} said 2, run {b} says 3" in why and first in fixed
        await pilot.press("escape")
        await pilot.pause()
        # Roll back to run a: the dialog sits in the middle of the screen, not over the title.
        await pilot.press("up", "a")
        await pilot.pause()
        box = app.screen.query_one("#help").region
        assert abs((box.x + box.width / 2) - 80) <= 2 and abs((box.y + box.height / 2) - 24) <= 2
        await pilot.press("y")
        await pilot.pause()
        assert app.active.id == a
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is results and results.run_record.id == a
        assert f"results of run {a}" in results.title
        assert "(first run)" in shown(results.query_one("#metrics", Static))


@pytest.mark.parametrize(("k", "n"), [(6, 6), (0, 5), (3, 10), (97, 100), (1, 1), (240, 242)])
def test_exact_interval_and_mcnemar_are_scipy_stats_own(k, n):
    # Computed from scipy.special (scipy.stats takes 1-2 s to import in every command): the
    # same Clopper-Pearson bounds and exact binomial p-values.
    from scipy.stats import beta, binomtest

    from fingertui.learn.metrics import exact_interval

    lo = 0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1)
    hi = 1.0 if k == n else beta.ppf(0.975, k + 1, n - k)
    assert exact_interval(k, n) == pytest.approx((lo, hi), abs=1e-12)
    right_a = np.arange(n) < k
    right_b = np.arange(n) % 3 == 0
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    want = 1.0 if only_a + only_b == 0 else binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue
    assert mcnemar(right_a, right_b)["p_value"] == pytest.approx(want, abs=1e-12)

"""The runs screen: every run, accuracy across runs, comparison, rollback."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Sparkline, Static

from fingertui.learn.metrics import MEANINGFUL_PER_CLASS, accuracy_caveat, accuracy_short
from fingertui.runs.records import compare, describe_comparison, list_runs, set_active, short_backbone
from fingertui.tui.screens.base import AppScreen
from fingertui.tui.screens.confirm import ConfirmScreen
from fingertui.tui.widgets.panels import SidePanels, TrainingBar
from fingertui.words import pct


class RunsScreen(AppScreen[None]):
    BINDINGS = [
        Binding("space", "mark", "mark for compare"),
        Binding("p", "compare", "compare marked"),
        Binding("v", "view_changed", "view changed images"),
        Binding("a", "activate", "make active (roll back)"),
        Binding("escape", "back", "back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.marked: list[int] = []
        self.last_comparison: dict | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with SidePanels(id="runs-body"):
            yield DataTable(id="runs", cursor_type="row")
            yield Static("accuracy across runs", classes="label", id="acc-label")
            yield Sparkline([], id="acc-plot")
            yield Static("recall of the weakest class across runs", classes="label", id="weak-label")
            yield Sparkline([], id="weak-plot")
            yield Static(id="compare", classes="box")
        yield TrainingBar()
        yield Footer()

    def on_mount(self) -> None:
        self.title = "fingertui — runs"
        self.refresh_runs()

    def refresh_runs(self) -> None:
        runs = list_runs(self.app.store)
        table = self.query_one("#runs", DataTable)
        table.clear(columns=True)
        # The metrics first: on an 80-column terminal they are what shows without scrolling.
        table.add_columns(
            " ", "run", "accuracy", "balanced", "weakest", "ECE", "images", "features", "backbone", "time", "finished"
        )
        active = self.app.active.id if self.app.active else None
        for r in runs:
            s = r.summary()
            mark = ("*" if r.id == active else " ") + ("+" if r.id in self.marked else " ")
            table.add_row(
                mark,
                str(r.id),
                accuracy_short(r.metrics["test"]),
                pct(s["balanced_accuracy"]),
                f"{s['weakest_class']}: {pct(s['weakest_recall'])}" if s["weakest_class"] is not None else "—",
                f"{s['ece']:.3f}",
                str(r.n_train + r.n_test),
                r.metrics.get("features") or r.features or "—",
                short_backbone(r),
                f"{s['duration_s']:.1f}s",
                s["finished"][:16].replace("T", " "),
                key=str(r.id),
            )
        acc = [r.summary()["accuracy"] for r in runs]
        weak = [r.summary()["weakest_recall"] or 0.0 for r in runs]
        self.query_one("#acc-plot", Sparkline).data = acc or [0]
        self.query_one("#weak-plot", Sparkline).data = weak or [0]
        if runs:
            span = lambda xs: f"(run {runs[0].id} to {runs[-1].id}; low {pct(min(xs))}, high {pct(max(xs))})"  # noqa: E731
            self.query_one("#acc-label", Static).update(f"accuracy across runs {span(acc)}")
            self.query_one("#weak-label", Static).update(f"recall of the weakest class across runs {span(weak)}")
        if not runs:
            self.query_one("#compare", Static).update("no runs yet: press t to train")
        else:
            self.query_one("#compare", Static).update(
                "* = active model · + = marked · space marks two runs · p compares them · a makes the selected run active"
                + f"\n{self.legend()}"
            )

    def legend(self) -> str:
        """What a '!' after an accuracy means, when the table shows one."""
        if not any(accuracy_caveat(r.metrics["test"]) for r in list_runs(self.app.store)):
            return ""
        return (
            f"[yellow]! = fewer than {MEANINGFUL_PER_CLASS} test images in some class: that accuracy is not yet "
            "meaningful (its 95% interval in brackets)[/]"
        )

    def _selected(self) -> int | None:
        table = self.query_one("#runs", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return int(key) if key is not None else None

    def action_mark(self) -> None:
        rid = self._selected()
        if rid is None:
            return
        if rid in self.marked:
            self.marked.remove(rid)
        else:
            self.marked = (self.marked + [rid])[-2:]
        row = self.query_one("#runs", DataTable).cursor_row
        self.refresh_runs()
        self.query_one("#runs", DataTable).move_cursor(row=row)

    def action_compare(self) -> None:
        if len(self.marked) != 2:
            self.notify("mark two runs with space first", severity="warning")
            return
        a, b = sorted(self.marked)
        c = compare(self.app.store, a, b)
        changed = len(c["right_to_wrong"]) + len(c["wrong_to_right"])
        lines = [
            f"[b]{escape(describe_comparison(c))}[/b]",
            f"accuracy {pct(c['accuracy_a'])} -> {pct(c['accuracy_b'])} "
            f"({100 * (c['accuracy_delta'] or 0):+.1f} points) · recall per class: "
            + "  ".join(f"{k}: {100 * v['delta']:+.1f}" for k, v in c["recall"].items()),
            f"fixed: {c['wrong_to_right'][:15] or 'none'}   broke: {c['right_to_wrong'][:15] or 'none'}",
            f"[b]v[/b] opens the {changed} changed images in review" if changed else "",
            self.legend(),
        ]
        self.query_one("#compare", Static).update("\n".join(line for line in lines if line))
        self.query_one("#compare", Static).scroll_visible()  # below the fold on a short terminal
        self.last_comparison = c

    def action_view_changed(self) -> None:
        """The images a comparison found fixed or broken, in the review screen."""
        c = self.last_comparison
        if c is None:
            self.notify("compare two runs first: space marks them, p compares", severity="warning")
            return
        ids = c["wrong_to_right"] + c["right_to_wrong"]
        notes = {
            ch["sample_id"]: f"{'fixed' if ch['pred_b'] == ch['label'] else 'broken'} by run {c['b']}: "
            f"run {c['a']} said {ch['pred_a']}, run {c['b']} says {ch['pred_b']} (label {ch['label']})"
            for ch in c["changed"]
        }
        if not ids:
            self.notify(f"runs {c['a']} and {c['b']} get the same images right: nothing changed")
            return
        from fingertui.tui.screens.review import ReviewScreen

        self.app.push_screen(
            ReviewScreen(
                ids,
                title=f"run {c['b']} vs run {c['a']}: {len(c['wrong_to_right'])} fixed, then {len(c['right_to_wrong'])} broken",
                notes=notes,
            )
        )

    def action_activate(self) -> None:
        rid = self._selected()
        if rid is None:
            return

        def done(yes: bool | None) -> None:
            if yes:
                run = set_active(self.app.store, rid)
                self.app.switch_model(run)
                self.refresh_runs()
                self.notify(f"run {rid} is now the active model")

        self.app.push_screen(ConfirmScreen(f"Make run {rid} the active model?"), done)

    def action_back(self) -> None:
        if not self.app.cancel_training():
            self.app.pop_screen()

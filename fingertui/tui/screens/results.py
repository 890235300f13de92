"""The results screen: the active run's confusion matrix and metrics, with the change
from the previous run."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from fingertui.labels import CLASSES
from fingertui.runs import RunRecord, list_runs, run_predictions
from fingertui.tui.widgets.panels import TrainingBar


def _delta(now: float | None, before: float | None, points: bool = True) -> Text:
    if now is None or before is None or now != now or before != before:
        return Text("")
    d = now - before
    if abs(d) < 1e-9:
        return Text(" ±0", style="dim")
    arrow = "▲" if d > 0 else "▼"
    shown = f"{abs(100 * d):.1f}" if points else f"{abs(d):.3f}"
    return Text(f" {arrow}{shown}", style="green" if d > 0 else "red")


def _delta_bad(now: float, before: float | None) -> Text:
    """For numbers where lower is better (ECE, error counts)."""
    t = _delta(now, before, points=False)
    if t.plain.strip() and t.plain.strip() != "±0":
        t.stylize("red" if now > before else "green")
    return t


class ResultsScreen(Screen):
    BINDINGS = [Binding("escape", "back", "back"), Binding("enter", "open_cell", "open cell in review")]

    def __init__(self, run: RunRecord | None = None) -> None:
        super().__init__()
        self.run_record = run

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="matrix-box"):
                yield Static(
                    "[b]confusion matrix[/b] — rows = true label, columns = predicted (test split)", id="matrix-title"
                )
                yield DataTable(id="matrix", cursor_type="cell", zebra_stripes=False)
                yield Static(id="cell-info")
            yield Static(id="metrics", classes="box")
        yield TrainingBar()
        yield Footer()

    def on_mount(self) -> None:
        self.show_run(self.run_record or self.app.active)

    def show_run(self, run: RunRecord | None) -> None:
        self.run_record = run
        table = self.query_one("#matrix", DataTable)
        table.clear(columns=True)
        metrics = self.query_one("#metrics", Static)
        if run is None:
            metrics.update("no run yet: press t to train")
            return
        self.title = f"fingertui — results of run {run.id}"
        runs = list_runs(self.app.store)
        prev = next((r for r in reversed(runs) if r.id < run.id), None)
        m = run.metrics["test"]
        pm = prev.metrics["test"] if prev else None
        counts = m["confusion"]["counts"]
        norm = m["confusion"]["row_normalised"]
        pcounts = pm["confusion"]["counts"] if pm else None
        table.add_column("true ↓ pred →", key="true")
        for c in CLASSES:
            table.add_column(str(c), key=str(c))
        for r in CLASSES:
            if r in m["missing_classes"]:
                continue
            cells: list[Text] = [Text(str(r), style="bold")]
            for c in CLASSES:
                n, pct = counts[r][c], norm[r][c]
                if r == c:
                    style = f"bold black on rgb({40 + int(150 * pct)},{120 + int(130 * pct)},{40 + int(60 * pct)})"
                elif n:
                    style = f"bold white on rgb({90 + int(165 * min(1, 3 * pct))},30,30)"
                else:
                    style = "dim"
                cell = Text(f"{n} ({100 * pct:.0f}%)", style=style)
                if pcounts is not None:
                    d = n - pcounts[r][c]
                    if d:
                        good = (d > 0) == (r == c)
                        cell.append(f" {'+' if d > 0 else ''}{d}", style="green" if good else "red")
                cells.append(cell)
            table.add_row(*cells, key=str(r))
        lo, hi = m["accuracy_ci95"]
        t = Text()
        t.append(f"run {run.id}", style="bold")
        t.append(f"  vs run {prev.id}\n" if prev else "  (first run)\n", style="dim")
        t.append(f"backbone {run.backbone}\n{run.n_train} train / {run.n_test} test images\n\n")
        t.append(f"accuracy {100 * m['accuracy']:.1f}%")
        t.append(_delta(m["accuracy"], pm["accuracy"] if pm else None))
        t.append(f"\n  95% CI {100 * lo:.1f}–{100 * hi:.1f}%\n")
        t.append(f"balanced {100 * m['balanced_accuracy']:.1f}%")
        t.append(_delta(m["balanced_accuracy"], pm["balanced_accuracy"] if pm else None))
        t.append(f"\nECE {m['ece']:.3f}")
        t.append(_delta_bad(m["ece"], pm["ece"] if pm else None))
        t.append("\n\nclass  precision  recall\n", style="bold")
        for c, row in m["per_class"].items():
            prow = pm["per_class"].get(c) if pm else None
            t.append(f"  {c}    {100 * row['precision']:5.1f}%  {100 * row['recall']:5.1f}%")
            t.append(_delta(row["recall"], prow["recall"] if prow else None))
            t.append("\n")
        if m["missing_classes"]:
            t.append(f"\nno test images for: {', '.join(map(str, m['missing_classes']))}", style="yellow")
        metrics.update(t)

    def cell_samples(self, true: int, pred: int) -> list[int]:
        rows = run_predictions(self.app.store, self.run_record.id, "test")
        return [r["sample_id"] for r in rows if r["label"] == true and r["pred"] == pred]

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        if self.run_record is None or event.coordinate.column == 0:
            self.query_one("#cell-info", Static).update("")
            return
        true, pred = self._cell(event.coordinate)
        ids = self.cell_samples(true, pred)
        self.query_one("#cell-info", Static).update(
            f"true {true}, predicted {pred}: {len(ids)} image(s) {ids[:12]}{' …' if len(ids) > 12 else ''} — enter opens them"
        )

    def _cell(self, coord: Coordinate) -> tuple[int, int]:
        table = self.query_one("#matrix", DataTable)
        row_key = table.coordinate_to_cell_key(coord).row_key.value
        return int(row_key), CLASSES[coord.column - 1]

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        self.action_open_cell()

    def action_open_cell(self) -> None:
        table = self.query_one("#matrix", DataTable)
        if self.run_record is None or table.cursor_coordinate.column == 0 or not table.row_count:
            return
        true, pred = self._cell(table.cursor_coordinate)
        ids = self.cell_samples(true, pred)
        if not ids:
            self.notify("no images in this cell")
            return
        from fingertui.tui.screens.review import ReviewScreen

        self.app.push_screen(ReviewScreen(ids, title=f"true {true}, predicted {pred} (run {self.run_record.id})"))

    def action_back(self) -> None:
        if not self.app.cancel_training():
            self.app.pop_screen()

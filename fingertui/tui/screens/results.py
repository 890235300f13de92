"""The results screen: the active run's confusion matrix and metrics, with the change
from the previous run."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Footer, Header, Static

from fingertui.labels import CLASSES
from fingertui.learn.metrics import accuracy_caveat, accuracy_interval
from fingertui.runs.records import RunRecord, list_runs, run_predictions
from fingertui.tui.screens.base import AppScreen
from fingertui.tui.widgets.panels import TrainingBar
from fingertui.words import plural


def _delta(now: float | None, before: float | None, points: bool = True, lower_is_better: bool = False) -> Text:
    """The change from the previous run as shown: '+1.2' green when better, '-1.2' red when
    worse, '(same)' when the shown figures are equal. ASCII signs: arrows and triangles are
    ambiguous-width glyphs that tmux and some terminals draw two cells wide."""
    if now is None or before is None or now != now or before != before:
        return Text("")
    shown = f"{abs(100 * (now - before)):.1f}" if points else f"{abs(now - before):.3f}"
    if float(shown) == 0:  # a change too small to show is no change to the reader
        return Text(" (same)", style="dim")
    up = now > before
    better = up != lower_is_better
    return Text(f" {'+' if up else '-'}{shown}", style="green" if better else "red")


# Narrower than this, the results stack: matrix, then metrics (an 80-column terminal).
NARROW_BELOW = 110


def _table_width(rows: list[tuple[int, list[Text]]]) -> int:
    """Columns a DataTable takes for these rows: each column as wide as its widest cell or
    header ("true \\ predicted"), plus a cell's padding on each side."""
    if not rows:
        return 0
    widths = [max(len("true \\ predicted"), *(cells[0].cell_len for _, cells in rows))]
    widths += [max(1, *(cells[k].cell_len for _, cells in rows)) for k in range(1, len(rows[0][1]))]
    return sum(w + 2 for w in widths)


# Change markers sit on their own dark chip: on a red- or green-shaded cell a red or green
# marker without one is invisible (red on red).
CHIP = "on grey11"


def cell_style(n: int, pct: float, diagonal: bool) -> str:
    """Shading of a confusion-matrix cell: right answers green by their share of the row,
    wrong ones red; an empty diagonal cell (no image of the class counted right) is not green."""
    if diagonal and n:
        return f"bold black on rgb({40 + int(150 * pct)},{120 + int(130 * pct)},{40 + int(60 * pct)})"
    if diagonal:
        return "bold red"
    if n:
        return f"bold white on rgb({90 + int(165 * min(1, 3 * pct))},30,30)"
    return "dim"


def change_marker(d: int, diagonal: bool) -> Text:
    """'+2' / '-1' beside a cell's count: green when the change is good (more right, fewer wrong)."""
    good = (d > 0) == diagonal
    return Text(f"{'+' if d > 0 else ''}{d}", style=f"bold {'bright_green' if good else 'bright_red'} {CHIP}")


class ResultsScreen(AppScreen[None]):
    BINDINGS = [Binding("escape", "back", "back"), Binding("enter", "open_cell", "open cell in review")]

    def __init__(self, run: RunRecord | None = None) -> None:
        super().__init__()
        self.run_record = run
        # Showing the active model (the usual case), the screen follows it: back from a
        # rollback on the runs screen it shows the run now active, not the one before.
        self.follows_active = run is None
        self._shown_width: int | None = None  # the screen width the matrix was laid out for
        self._columns_compact: bool | None = None  # whether its columns have the short header

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="results-body"):
            with Vertical(id="matrix-box"):
                yield Static(
                    "[b]confusion matrix[/b] — rows = true label, columns = predicted (test split)", id="matrix-title"
                )
                yield DataTable(id="matrix", cursor_type="cell", zebra_stripes=False)
                yield Static(id="cell-info")
            yield Static(id="metrics", classes="box")
        yield TrainingBar()
        yield Footer()

    def on_resize(self, event: events.Resize) -> None:
        self.fit_to(event.size.width)

    def fit_to(self, width: int) -> None:
        """Narrower than NARROW_BELOW (80×24 among them): the metrics go under the matrix
        (the screen scrolls) and a cell shows its count alone (its share is in the cell's
        line below the matrix), so that all six columns fit."""
        self.set_class(width < NARROW_BELOW, "narrow")
        if width != self._shown_width and self.is_mounted and self.query("#matrix"):
            self.show_run(self.run_record)  # whether a cell's share fits depends on the width

    def on_mount(self) -> None:
        self.set_class(self.app.size.width < NARROW_BELOW, "narrow")
        active = self.app.active
        self.follows_active = self.follows_active or (
            active is not None and self.run_record is not None and self.run_record.id == active.id
        )
        self.show_run(self.run_record or active)

    def on_screen_resume(self) -> None:
        """Back on this screen (from the runs screen, review…): show what is true now."""
        if not self.is_mounted or not self.query("#matrix"):
            return
        from fingertui.runs.records import get_run

        if self.follows_active:
            self.show_run(self.app.active)
        elif self.run_record is not None:
            self.show_run(get_run(self.app.store, self.run_record.id))

    def show_run(self, run: RunRecord | None) -> None:
        self.run_record = run
        self._shown_width = self.app.size.width
        table = self.query_one("#matrix", DataTable)
        metrics = self.query_one("#metrics", Static)
        if run is None:
            self._set_columns(table, self.has_class("narrow"))
            table.clear()
            metrics.update("no run yet: press t to train")
            return
        self.title = f"fingertui — results of run {run.id}"
        runs = list_runs(self.app.store)
        prev = next((r for r in reversed(runs) if r.id < run.id), None)
        m = run.metrics["test"]
        pm = prev.metrics["test"] if prev else None
        # A cell reads "12 (100%) +2"; where six of those do not fit the matrix's width (80
        # columns, or the change markers of a comparison at 120), it shows its count alone:
        # its share is in the cell's line below the matrix.
        rows = self._matrix_rows(m, pm, shares=True)
        compact = self.has_class("narrow") or _table_width(rows) > self._matrix_width()
        if compact:
            rows = self._matrix_rows(m, pm, shares=False)
        self._set_columns(table, compact)
        table.clear()
        for r, cells in rows:
            table.add_row(*cells, key=str(r))
        lo, hi = accuracy_interval(m)
        caveat = accuracy_caveat(m)
        t = Text()
        t.append(f"run {run.id}", style="bold")
        t.append(f"  vs run {prev.id}\n" if prev else "  (first run)\n", style="dim")
        t.append(f"backbone {run.backbone}\n{run.n_train} train / {run.n_test} test images\n\n")
        t.append(f"accuracy {100 * m['accuracy']:.1f}%", style="bold")
        t.append_text(_delta(m["accuracy"], pm["accuracy"] if pm else None))
        t.append(
            f"\n  95% interval {100 * lo:.0f}-{100 * hi:.0f}%\n",
            style="bold yellow" if caveat else "",
        )
        if caveat:
            t.append(f"  {caveat}\n", style="bold yellow")
        t.append(f"balanced {100 * m['balanced_accuracy']:.1f}%")
        t.append_text(_delta(m["balanced_accuracy"], pm["balanced_accuracy"] if pm else None))
        t.append(f"\nECE {m['ece']:.3f}")
        t.append_text(_delta(m["ece"], pm["ece"] if pm else None, points=False, lower_is_better=True))
        from fingertui.learn.nextday import describe, held_back_message

        line = describe(run.metrics.get("next_day"))
        if line:
            t.append(f"\n{line}", style="bold" if "next day" in line else "yellow")
        held = held_back_message(run.metrics.get("next_day"))
        if held:
            t.append(f"\n{held}", style="bold yellow")
        conf = run.metrics.get("confidence")
        if conf is not None and not conf["checked"]:
            t.append(
                f"\nconfidence not yet checked: {conf['why']} (predictions say unchecked, not sure)", style="yellow"
            )
        # Each figure with its own change beside it: a "(same)" after a row read as the
        # precision's too, when only the recall had stayed.
        t.append("\n\nclass  precision        recall\n", style="bold")
        for c, row in m["per_class"].items():
            prow = pm["per_class"].get(c) if pm else None
            t.append(f"  {c}    {100 * row['precision']:5.1f}%")
            change = _delta(row["precision"], prow["precision"] if prow else None)
            t.append_text(change)
            t.append(" " * max(1, 10 - change.cell_len))
            t.append(f"{100 * row['recall']:5.1f}%")
            t.append_text(_delta(row["recall"], prow["recall"] if prow else None))
            t.append("\n")
        if m["missing_classes"]:
            t.append(f"\nno test images for: {', '.join(map(str, m['missing_classes']))}", style="yellow")
        metrics.update(t)

    def _set_columns(self, table: DataTable, compact: bool) -> None:
        """The matrix's columns, added again only when their header changes (columns are
        sized to their content; clearing them twice in one refresh left them one digit wide)."""
        if table.columns and compact == self._columns_compact:
            return
        self._columns_compact = compact
        table.clear(columns=True)
        table.add_column("true\\pred" if compact else "true \\ predicted", key="true")
        for c in CLASSES:
            table.add_column(str(c), key=str(c))

    def _matrix_width(self) -> int:
        """The columns the matrix has: two thirds of the screen beside the metrics, all of it
        when they stack; less the box's padding."""
        width = self.app.size.width
        return (width if self.has_class("narrow") else 2 * width // 3) - 4

    def _matrix_rows(self, m: dict, pm: dict | None, shares: bool) -> list[tuple[int, list[Text]]]:
        counts = m["confusion"]["counts"]
        norm = m["confusion"]["row_normalised"]
        pcounts = pm["confusion"]["counts"] if pm else None
        rows = []
        for r in CLASSES:
            if r in m["missing_classes"]:
                continue
            cells: list[Text] = [Text(str(r), style="bold")]
            for c in CLASSES:
                n, pct = counts[r][c], norm[r][c]
                cell = Text(f"{n} ({100 * pct:.0f}%)" if shares else f"{n}", style=cell_style(n, pct, r == c))
                if pcounts is not None and n != pcounts[r][c]:
                    cell.append(" ")
                    cell.append_text(change_marker(n - pcounts[r][c], r == c))
                cells.append(cell)
            rows.append((r, cells))
        return rows

    def cell_samples(self, true: int, pred: int) -> list[int]:
        """The test images of one confusion-matrix cell: labelled ``true``, predicted ``pred``."""
        if self.run_record is None:
            return []
        rows = run_predictions(self.app.store, self.run_record.id, "test")
        return [r["sample_id"] for r in rows if r["label"] == true and r["pred"] == pred]

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        if self.run_record is None or event.coordinate.column == 0:
            self.query_one("#cell-info", Static).update("")
            return
        true, pred = self._cell(event.coordinate)
        ids = self.cell_samples(true, pred)
        row = sum(self.run_record.metrics["test"]["confusion"]["counts"][true])
        share = f" ({100 * len(ids) / row:.0f}% of the {true}s)" if row else ""
        self.query_one("#cell-info", Static).update(
            f"true {true}, predicted {pred}: {plural(len(ids), 'image')}{share} {ids[:12]}{' …' if len(ids) > 12 else ''}"
            " — enter opens them"
        )

    def _cell(self, coord: Coordinate) -> tuple[int, int]:
        table = self.query_one("#matrix", DataTable)
        row_key = table.coordinate_to_cell_key(coord).row_key.value
        return int(row_key or 0), CLASSES[coord.column - 1]

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

"""Command-line interface. Heavy libraries (torch, cv2, textual) are imported inside the
commands that need them, so ``--help`` and ``--version`` answer at once."""

from __future__ import annotations

import argparse
import errno
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fingertui import __version__
from fingertui.errors import Cancelled, UserError
from fingertui.words import pct

if TYPE_CHECKING:  # for hints only: rich and the store load lazily, --help stays instant
    from rich.console import Console

    from fingertui.data.store import Store

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn

    return deco


def _finite(obj: Any) -> Any:
    """NaN and infinities as null: JSON has no NaN."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def emit_json(obj: Any) -> None:
    json.dump(_finite(obj), sys.stdout, indent=2, sort_keys=False, allow_nan=False)
    sys.stdout.write("\n")


def console() -> Console:
    from rich.console import Console

    return Console()


_OPENED: list[Store] = []


def has_workspace(args: argparse.Namespace) -> bool:
    """Whether the chosen folder holds a workspace already (an index, or data to recover)."""
    from fingertui.data.workspace import Workspace

    ws = Workspace.resolve(args.home)
    return ws.db_path.exists() or ws.data_dir.exists()


def open_store(args: argparse.Namespace, create: bool = False) -> Store:
    """The workspace's store, closed when the command ends (``main``). Only commands that
    write (``create``) make a new workspace: a reading command run in the wrong folder
    says so instead of leaving an empty data/ and db/ there."""
    from fingertui.data.store import Store
    from fingertui.data.workspace import Workspace

    ws = Workspace.resolve(args.home)
    if not create and not has_workspace(args):
        if ws.root.exists() and not ws.root.is_dir():
            raise UserError(f"{ws.root} is a file, not a workspace folder; pass a folder with --home")
        raise UserError(
            f"no fingertui workspace in {ws.root} (no db/ or data/ there); `fingertui import DIR` or the app "
            "(`fingertui`) creates one, or pass --home DIR / set FINGERTUI_HOME"
        )
    store = Store(ws)
    _OPENED.append(store)
    return store


def _close_stores() -> None:
    """Close what the command opened. A store holds reference cycles, so without this its
    connection stayed open until the garbage collector ran: a later command in the same
    process (the tests) could see the old database through it after the file was replaced."""
    while _OPENED:
        store = _OPENED.pop()
        for w in dict.fromkeys(store.warnings):  # e.g. a backup that failed: never silent
            print(f"fingertui: warning: {w}", file=sys.stderr)
        try:
            store.close()
        except Exception:  # closing must not hide the command's own result or error
            pass


# --- dataset commands -------------------------------------------------------------------


@command("import")
def cmd_import(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fingertui.data.importer import SKIPPED_SHOWN, import_paths
    from fingertui.labels import parse_label

    label = parse_label(args.label) if args.label is not None else None
    if label is not None and args.unlabeled:
        raise UserError("--label and --unlabeled contradict each other; pass one of them")
    store = open_store(args, create=True)
    with Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console_err(),
        transient=True,
        disable=args.json or not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task("import", total=None)
        report = import_paths(
            store,
            args.paths,
            label=label,
            unlabeled=args.unlabeled,
            skip_unknown=args.skip_unknown,
            session=args.session,
            progress=lambda k, n: bar.update(task, completed=k, total=n),
        )
    if args.json:
        emit_json(report.as_json())
        return 0
    out = console()
    out.print(
        f"added {report.added}, duplicates {report.duplicates} (already stored, not added again), skipped {len(report.skipped)}"
    )
    from fingertui.cli.tables import safe_text

    for path, why in report.skipped[:SKIPPED_SHOWN]:
        out.print(f"  skipped {safe_text(path)}: {safe_text(why)}", highlight=False, markup=False, soft_wrap=True)
    if len(report.skipped) > SKIPPED_SHOWN:
        out.print(f"  … and {len(report.skipped) - SKIPPED_SHOWN} more (see --json)")
    table = report.as_json()["added_by_label"]
    if table:
        from rich.table import Table

        t = Table("label", "train", "test", title="added")
        for lab, row in table.items():
            t.add_row(lab, str(row.get("train", 0)), str(row.get("test", row.get("-", 0))))
        out.print(t)
    return 0


def console_err() -> Console:
    from rich.console import Console

    return Console(stderr=True)


@command("export")
def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fingertui.data.export import export_dataset

    report = export_dataset(open_store(args), Path(args.dest))
    if args.json:
        emit_json(report.as_json())
    else:
        from fingertui.words import plural

        print(f"exported {plural(report.written, 'image')} to {report.dest} (labels.csv beside them)")
        if report.missing:
            print(
                f"{len(report.missing)} images were missing from the workspace and not exported; run `fingertui doctor`"
            )
        if report.refused:
            print(f"{len(report.refused)} rows name a path outside data/ and were not exported; run `fingertui doctor`")
    return 0


@command("stats")
def cmd_stats(args: argparse.Namespace) -> int:
    from fingertui.data.stats import dataset_stats

    st = dataset_stats(open_store(args))
    if args.json:
        emit_json(st)
        return 0
    from rich.table import Table

    t = Table("label", "train", "test", "total", title="labelled images")
    for lab, row in st["labels"].items():
        t.add_row(lab, str(row["train"]), str(row["test"]), str(row["total"]))
    tot = st["total"]
    t.add_row("all", str(tot["train"]), str(tot["test"]), str(tot["labelled"]), style="bold")
    out = console()
    out.print(t)
    out.print(f"unlabelled: {tot['unlabeled']}   total images: {tot['all']}")
    if st["sessions"]:
        ts = Table("session", *[str(c) for c in range(6)], "unlabelled", "total", title="sessions (sittings)")
        for name, row in st["sessions"].items():
            ts.add_row(name, *[str(row[str(c)]) for c in range(6)], str(row["unlabeled"]), str(row["total"]))
        out.print(ts)
    for w in st["warnings"]:
        out.print(f"[yellow]warning:[/] {w}", highlight=False)
    return 0


@command("doctor")
def cmd_doctor(args: argparse.Namespace) -> int:
    from fingertui.data import doctor
    from fingertui.data.workspace import Workspace

    ws = Workspace.resolve(args.home)
    if args.empty_trash:

        def confirm(n: int, size: int) -> bool:
            if args.yes:
                return True
            if not sys.stdin.isatty():
                raise UserError(f"{n} files ({size / 2**20:.1f} MB) in the trash; pass --yes to delete them for good")
            answer = input(f"delete {n} files ({size / 2**20:.1f} MB) in {ws.trash_dir} for good? [y/N] ")
            return answer.strip().lower() in ("y", "yes")

        done = doctor.empty_trash(ws, confirm)
        if done is None:
            print("kept the trash")
        elif done[0] == 0:
            print("the trash is empty")
        else:
            print(f"deleted {done[0]} files ({done[1] / 2**20:.1f} MB) from the trash")
        return 0
    report = doctor.run(ws, fix=not args.dry_run, restore=args.restore, reindex_files=args.reindex)
    if args.json:
        emit_json(report.as_json())
        return 0 if report.healthy else 1
    if report.restored_backup:
        print(f"index restored from {report.restored_backup} (the previous one is kept beside it in db/)")
    for line in report.recovered:
        print(f"interrupted change finished: {line}")
    from fingertui.cli.tables import safe_text

    for line in report.refused:
        print(safe_text(line))
    if report.backup_failed:
        print(
            f"the last backup of the index failed ({report.backup_failed}); labels have no fresh copy in data/backups"
        )
    if report.readonly:
        print("read-only workspace: only checked, nothing was moved")
    n_orph = len(report.orphans)
    if report.fixed:
        where = f" → {Path(report.quarantined[0]).parts[2]}" if report.quarantined else ""
        print(f"{report.checked} samples checked; {n_orph} unindexed files moved to data/quarantine{where}")
    else:
        print(f"{report.checked} samples checked; {n_orph} unindexed files (would move to data/quarantine)")
    for path in report.refound:
        print(f"{path}: was missing, put back from the trash/quarantine")
    for sid in report.missing:
        print(f"sample {sid}: image file is missing — re-import it or `fingertui delete {sid}`")
    for sid in report.corrupt:
        print(f"sample {sid}: image file no longer matches its hash — re-import it or `fingertui delete {sid}`")
    for path in report.orphan_models:
        print(f"{path}: checkpoint no run records{' (moved to data/trash/models)' if report.fixed else ''}")
    for rid in report.missing_models:
        print(f"run {rid}: checkpoint is missing — `fingertui train` again or pick another run")
    if report.reindexed:
        print(
            f"{report.reindexed} quarantined images indexed again, unlabelled (`fingertui review` / the app to label)"
        )
    if report.quarantine_files:
        print(
            f"{report.quarantine_files} files wait in data/quarantine; `fingertui doctor --reindex` adds them back unlabelled"
        )
    print(
        f"trash: {report.trash_files} files, {report.trash_bytes / 2**20:.1f} MB"
        + (" (`fingertui doctor --empty-trash` frees it)" if report.trash_files else "")
    )
    print("healthy" if report.healthy else "problems found (see above)")
    return 0 if report.healthy else 1


# --- learning commands ------------------------------------------------------------------


def _warn_err(msg: str) -> None:
    print(f"fingertui: {msg}", file=sys.stderr)


def print_metrics(out: Console, m: dict, title: str) -> None:
    from rich.table import Table

    from fingertui.learn.metrics import accuracy_caveat, accuracy_interval

    lo, hi = accuracy_interval(m)
    out.print(
        f"[bold]{title}[/]: accuracy {pct(m['accuracy'])} (95% interval {pct(lo)}–{pct(hi)}), "
        f"balanced {pct(m['balanced_accuracy'])}, ECE {m['ece']:.3f}, n={m['n']}",
        highlight=False,
    )
    caveat = accuracy_caveat(m)
    if caveat:
        out.print(f"[bold yellow]accuracy {caveat}[/]", highlight=False)
    t = Table("class", "precision", "recall", "F1", "n", title="per class")
    for c, row in m["per_class"].items():
        t.add_row(c, pct(row["precision"]), pct(row["recall"]), pct(row["f1"]), str(row["support"]))
    out.print(t)
    cm = m["confusion"]
    present = [c for c in cm["labels"] if c not in m["missing_classes"]]
    t = Table(
        "true ↓ / predicted →",
        *[str(c) for c in cm["labels"]],
        title="confusion matrix (rows = true label, columns = predicted)",
    )
    for c in present:
        cells = []
        for j, n in enumerate(cm["counts"][c]):
            share = cm["row_normalised"][c][j]
            style = "green" if j == c else ("red" if n else "dim")
            cells.append(f"[{style}]{n} ({100 * share:.0f}%)[/]")
        t.add_row(str(c), *cells)
    out.print(t)
    if m["missing_classes"]:
        out.print(f"classes without test images (left out): {', '.join(map(str, m['missing_classes']))}")


class _TrainProgress:
    """Progress of `fingertui train` from the pipeline's (phase, k, n) reports: on a
    terminal one live bar (phase, k/N, elapsed, the whole run's time left); piped a few
    lines, each indented — every phase that took a while, with the time left after it, and
    one line every ``every_s`` seconds of a long phase; nothing when disabled."""

    def __init__(
        self,
        enabled: bool,
        live: bool | None = None,
        every_s: float = 30.0,
        expected: dict[str, float] | None = None,
        clock: Callable[[], float] | None = None,
        min_phase_s: float = 2.0,
    ) -> None:
        import time

        from fingertui.runs.eta import Eta

        self.enabled = enabled
        self.live = enabled and (sys.stderr.isatty() if live is None else live)
        self.every_s = every_s
        self.min_phase_s = min_phase_s
        self.expected = expected
        self.eta = Eta(expected or {})
        self.clock = clock or time.monotonic
        self.phase: str | None = None
        self.bar: Any = None
        self.task: Any = None
        self.k = self.n = 0
        self._started = self._printed = 0.0

    def __enter__(self) -> _TrainProgress:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("training: {task.description:<16}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[left]}"),
                console=console_err(),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("loading model", total=None, left="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif exc[0] is None:
            self._phase_done(self.clock())

    def _phase_done(self, now: float, left: str = "") -> None:
        if self.enabled and self.phase is not None and now - self._started >= self.min_phase_s:
            count = f" {self.k}/{self.n}" if self.n > 1 else ""
            after = f" ({left})" if left else ""
            print(f"  {self.phase}{count}: {now - self._started:.0f} s{after}", file=sys.stderr, flush=True)

    def __call__(self, phase: str, k: int, n: int) -> None:
        from fingertui.runs.eta import say_left

        if not self.enabled:
            return
        now = self.clock()
        left = say_left(self.eta.left(phase, k, n, now)) if self.expected is not None else ""
        if phase != self.phase:
            if self.bar is None:
                self._phase_done(now, left)
            self.phase, self._started, self._printed = phase, now, now
            if self.bar is not None:  # the bar starts afresh for each phase
                self.bar.reset(self.task, total=n or None, completed=k, description=phase, left=left)
        elif self.bar is not None:
            self.bar.update(self.task, total=n or None, completed=k, left=left)
        elif now - self._printed >= self.every_s and k < n:  # a finished phase gets its own line
            self._printed = now
            print(f"  {phase} {k}/{n}{', ' + left if left else ''}", file=sys.stderr, flush=True)
        self.k, self.n = k, n


def _progress_printer(
    enabled: bool, live: bool | None = None, expected: dict[str, float] | None = None
) -> _TrainProgress:
    """The train command's progress display (a context manager that is also the callback)."""
    return _TrainProgress(enabled, live, expected=expected)


@command("train")
def cmd_train(args: argparse.Namespace) -> int:
    from fingertui.learn.heads import TrainConfig
    from fingertui.runs.eta import estimate_for
    from fingertui.runs.pipeline import train

    if not 0 <= args.views <= 16:
        raise UserError(f"--views {args.views}: give 0 to 16 augmented views per image")
    if not 0 <= args.seed < 2**63:  # checked now: the run records it after the whole training
        raise UserError(f"--seed {args.seed}: give a whole number from 0 to 2**63 - 1")
    store = open_store(args)
    cfg = TrainConfig(seed=args.seed, head=args.head, views=args.views)
    with _progress_printer(not args.json, expected=estimate_for(store)) as progress:
        result = train(
            store,
            features=args.features,
            backbone=args.backbone,
            weights_file=args.weights,
            cfg=cfg,
            progress=progress,
            warn=_warn_err,
        )
    run, flags = result.run, result.flags
    if args.json:
        emit_json({"run": run.summary(), "metrics": run.metrics, "flags": flags})
        return 0
    out = console()
    m = run.metrics
    hands = m.get("hands_found") or {}
    found = (
        f"; hands found in {hands['train']}/{hands['of'][0]} train, {hands['test']}/{hands['of'][1]} test"
        if hands.get("train") is not None
        else ""
    )
    pooling = ", ".join(f"{k} ×{v:g}" for k, v in m.get("pooling", {}).items())
    out.print(
        f"run {run.id}: features {run.features} ({pooling}), backbone {run.backbone}, {run.n_train} train / "
        f"{run.n_test} test images, {m['embedded_new']} new embeddings{found}, {m['duration_s']:.1f} s; "
        f"unsure below {100 * m['unsure_threshold']:.0f}%",
        highlight=False,
    )
    print_metrics(out, m["test"], "test split")
    out.print(f"ECE on test {m['test']['ece']:.3f}")
    _print_next_day(out, m)
    conf = m.get("confidence")
    if conf and not conf["checked"]:
        out.print(f'[yellow]confidence not yet checked: {conf["why"]}; until then no prediction says "sure"[/]')
    out.print(f"review queue: {flags['open']} flags ({flags['added']} new) — `fingertui review`")
    return 0


def _print_next_day(out: object, m: dict) -> None:
    """The next-day figure (or the same-sitting caveat), the pooling rule, and whether the
    run is held back because the starter does better (nextday.py)."""
    from fingertui.learn.nextday import describe, held_back_message

    nd = m.get("next_day")
    line = describe(nd)
    if line:
        out.print(line, highlight=False)  # type: ignore[attr-defined]
        out.print(f"pooling: {nd['why']}", highlight=False)  # type: ignore[attr-defined,index]
    held = held_back_message(nd)
    if held:
        out.print(f"[yellow]{held}[/]", highlight=False)  # type: ignore[attr-defined]


@command("eval")
def cmd_eval(args: argparse.Namespace) -> int:
    from fingertui.runs.records import resolve_run

    store = open_store(args)
    run = resolve_run(store, args.run)
    folder = None
    if args.dir is None:
        m = run.metrics["test"]
        where = "test split"
    else:
        from fingertui.learn.evaluation import eval_folder
        from fingertui.learn.model import Model

        def load() -> Model:
            return Model.for_run(store, run, weights_file=args.weights, warn=_warn_err)

        folder = eval_folder(store, load, args.dir, skip_unknown=args.skip_unknown)
        m = folder.metrics
        where = f"{args.dir} ({len(folder.skipped)} files skipped)"
    if args.json:
        out_json = {"run": run.id, "backbone": run.backbone, "on": "test" if args.dir is None else str(args.dir)}
        emit_json({**out_json, "metrics": m} if folder is None else {**out_json, **folder.as_json()})
        return 0
    out = console()
    out.print(f"run {run.id} (backbone {run.backbone}) on {where}", highlight=False, markup=False)
    note = folder.overlap_note() if folder is not None else None
    if note:
        out.print(f"[yellow]note:[/] {note}", highlight=False)
    print_metrics(out, m, "evaluation" if note is None else "all images")
    if note and folder.unseen is not None:
        print_metrics(out, folder.unseen, "images not in the workspace")
    if folder is None:
        _print_next_day(out, run.metrics)
    return 0


@command("predict")
def cmd_predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fingertui.data.images import IMAGE_EXTS
    from fingertui.learn.model import Model
    from fingertui.runs.records import active_run, resolve_run

    paths: list[str] = []
    for p in args.images:
        if Path(p).is_dir():  # a folder: its images, in name order (subfolders too)
            found = sorted(str(f) for f in Path(p).rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS)
            if not found:
                raise UserError(f"{p}: no images in this folder ({', '.join(sorted(IMAGE_EXTS))})")
            paths += found
        elif Path(p).is_file():
            paths.append(p)
        else:
            raise UserError(f"{p}: no such image file or folder")
    args.images = paths
    # With no workspace here, the starter model still predicts (and no workspace is made).
    store = open_store(args) if args.run is not None or has_workspace(args) else None
    run = None
    if args.run is None and (store is None or active_run(store) is None):
        # No run yet: the shipped starter counts fingers from the hand's pose.
        pred = Model.starter()  # None without the detector: the error below says it all
        if pred is None:
            raise UserError(
                "no trained model yet and no hand-pose detector for the starter model; "
                "label some images and run `fingertui train`"
            )
    else:
        run = resolve_run(store, args.run)
        pred = Model.for_run(store, run, weights_file=args.weights, warn=_warn_err)
    results = []
    for p in args.images:
        try:
            r = pred.predict_paths([p])[0]
        except UserError:
            raise
        except (OSError, ValueError) as e:
            raise UserError(f"{p} is not a readable image ({e})") from e
        results.append({"path": p, **r.as_json()})
    if args.json:
        emit_json(
            {
                "run": run.id if run else None,
                "model": "run" if run else "starter",
                "backbone": run.backbone if run else None,
                "threshold": pred.threshold,
                "confidence_checked": pred.confidence_checked,
                "predictions": results,
            }
        )
        return 0
    if run is None:
        print("starter model (no run yet) — capture or import a few of each and train to make it yours")
    elif not pred.confidence_checked:
        why = (run.metrics.get("confidence") or {}).get("why", "trained before confidence was checked")
        print(f"confidence not yet checked: {why}. A high percentage is not a promise yet.")
    for r in results:
        probs = " ".join(f"{c}:{100 * q:.0f}%" for c, q in enumerate(r["probs"]))
        flag = "  UNSURE" if r["unsure"] else ""
        note = f"  ({r['note']})" if r.get("note") and run is not None else ""
        if r["label"] is None:
            print(f"{r['path']}: no hand found")
            continue
        fingers = ""
        if r.get("fingers"):
            names = ("thumb", "index", "middle", "ring", "little")
            fingers = "   fingers " + " ".join(f"{n}:{u:.2f}" for n, u in zip(names, r["fingers"], strict=True))
        print(f"{r['path']}: {r['label']} ({100 * r['confidence']:.1f}%){flag}{note}   [{probs}]{fingers}")
    return 0


@command("runs")
def cmd_runs(args: argparse.Namespace) -> int:
    from fingertui.learn.metrics import MEANINGFUL_PER_CLASS, accuracy_caveat, accuracy_short
    from fingertui.runs.records import active_run, compare, describe_comparison, list_runs, set_active

    store = open_store(args)
    if args.action == "compare":
        if len(args.ids) != 2:
            raise UserError("runs compare needs two run ids: fingertui runs compare A B")
        c = compare(store, *args.ids)
        if args.json:
            emit_json(c)
            return 0
        print(describe_comparison(c))
        print(
            f"accuracy {pct(c['accuracy_a'])} → {pct(c['accuracy_b'])} "
            f"({100 * (c['accuracy_delta'] or 0):+.1f} points; p from an exact McNemar test)"
        )
        for cls, r in c["recall"].items():
            print(f"  recall {cls}: {pct(r['a'])} → {pct(r['b'])} ({100 * r['delta']:+.1f})")
        print(f"broke (right→wrong) samples: {c['right_to_wrong'] or 'none'}")
        print(f"fixed (wrong→right) samples: {c['wrong_to_right'] or 'none'}")
        if c["right_to_wrong"] or c["wrong_to_right"]:
            print("to look at them in the app: `h`, mark both runs with space, `p`, then `v` opens them in review")
        return 0
    if args.action == "activate":
        if len(args.ids) != 1:
            raise UserError("runs activate needs one run id")
        run = set_active(store, args.ids[0])
        print(f"run {run.id} is now the active model")
        return 0
    if args.action is not None:
        raise UserError(f"unknown runs action {args.action!r}: use `runs`, `runs compare A B` or `runs activate ID`")
    damaged: list[str] = []
    records = list_runs(store, damaged)
    runs = [r.summary() for r in records]
    try:
        act = active_run(store)
    except UserError:  # the active run's record is damaged: listed below
        act = None
    for r in runs:
        r["active"] = act is not None and r["id"] == act.id
    if args.json:
        emit_json({"runs": runs})
        return 0
    from fingertui.cli.tables import print_table

    rows = [
        [
            f"{r['id']}{' *' if r['active'] else ''}",
            r["finished"][:19].replace("T", " "),
            f"{r['n_train']}/{r['n_test']}",
            r["backbone"],
            accuracy_short(rec.metrics["test"]),
            _next_day_cell(rec.metrics),
            f"{r['weakest_class']}: {pct(r['weakest_recall'])}" if r["weakest_class"] is not None else "—",
            f"{r['ece']:.3f}",
            f"{r['duration_s']:.1f}s",
        ]
        for r, rec in zip(runs, records, strict=True)
    ]
    headers = [
        "run",
        "finished",
        "train/test",
        "backbone",
        "accuracy",
        "next day",
        "weakest",
        "ECE",
        "time",
    ]
    out = console()
    # The accuracy cell may carry its interval ("33.3% (10–70%)!"): that wraps after the
    # figure rather than push the table past the terminal.
    print_table(out, headers, rows, whole={"run", "train/test", "weakest", "ECE", "time"})
    out.print("* = active model" if runs else "no runs yet: `fingertui train`")
    for line in damaged:
        out.print(f"not listed: {line}", highlight=False, markup=False, soft_wrap=True)
    if any((rec.metrics.get("next_day") or {}).get("same_sitting") for rec in records):
        out.print("same = one session only: next day measured on the same sitting")
    if any(rec.held_back for rec in records):
        out.print("held = worse than the starter off its sitting: `runs activate ID` to use it")
    if any(accuracy_caveat(rec.metrics["test"]) for rec in records):
        out.print(
            f"! = fewer than {MEANINGFUL_PER_CLASS} test images in some class: that accuracy is not yet "
            "meaningful (95% interval shown)"
        )
    return 0


def _next_day_cell(m: dict) -> str:
    """Accuracy on sessions the run did not see ("same" when it had one session)."""
    nd = m.get("next_day")
    if not isinstance(nd, dict) or nd.get("accuracy") is None:
        return "—"
    cell = pct(nd["accuracy"]) + (" same" if nd.get("same_sitting") else "")
    return cell + (" held" if nd.get("starter", {}).get("held_back") else "")


@command("export-model")
def cmd_export_model(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fingertui.export.build import export_folder, export_torchscript
    from fingertui.learn.model import Model
    from fingertui.runs.records import resolve_run

    store = open_store(args)
    run = resolve_run(store, args.run)
    model = Model.for_run(store, run, weights_file=args.weights, warn=_warn_err)
    export = export_torchscript if args.format == "torchscript" else export_folder
    meta = export(model, Path(args.path), run.id, weights_file=args.weights)
    if args.json:
        emit_json({"path": args.path, "format": args.format, **meta})
    elif args.format == "torchscript":
        print(
            f"wrote {args.path}: TorchScript, run {run.id}, backbone {run.backbone}; see docs/model.md (exporting) for the loading script"
        )
    else:
        print(f"wrote {args.path}/: the whole model, run {run.id}; `python {args.path}/run.py photo.jpg` runs it")
    return 0


@command("watch")
def cmd_watch(args: argparse.Namespace) -> int:
    """The steady count of a camera, video or folder, one line per change (or per frame):
    `fingertui watch --json | my-program`. Ends cleanly on Ctrl-C, SIGTERM or a closed pipe."""
    import os
    import signal
    import time

    from fingertui.counter import Counter

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    counter = Counter.load(args.model or args.home, run=args.run, weights=args.weights)
    t0 = time.monotonic()
    try:
        for r in counter.stream(args.source, mirror=args.mirror, max_frames=args.max_frames):
            if not (args.every or r.changed):
                continue
            if args.json:
                line = json.dumps(_finite({"t": round(time.monotonic() - t0, 3), **r.as_json()}), allow_nan=False)
            elif r.steady is None:
                line = f"frame {r.frame}: {'no hand' if r.hand is False or r.count is None else 'settling'}"
            else:
                line = f"frame {r.frame}: {r.steady} ({100 * r.probs[r.steady]:.0f}%)"
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # `fingertui watch | head -1`: the reader has what it wanted. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


@command("fetch-weights")
def cmd_fetch_weights(args: argparse.Namespace) -> int:
    from fingertui.learn import backbones

    # Tries now even if a download failed earlier today, and clears that note when it works.
    try:
        bb = backbones.load_resnet18(args.weights, settings=open_store(args, create=True), force=True)
    except backbones.WeightsUnavailable as e:
        raise UserError(
            f"could not download ResNet-18 weights ({e}); connect to the internet, or pass --weights FILE"
        ) from e
    print(f"ResNet-18 ImageNet weights ready ({bb.id}); fingertui train now uses them")
    return 0


# --- review commands --------------------------------------------------------------------


def _sample_id(text: str) -> int:
    from fingertui.data.store.util import parse_id

    return parse_id(text, "sample", "fingertui samples")


@command("review")
def cmd_review(args: argparse.Namespace) -> int:
    from fingertui.labels import parse_label
    from fingertui.review import active

    store = open_store(args)
    label = parse_label(args.label) if args.label is not None else None
    items = active.queue(
        store,
        strategy=args.strategy,
        reason=args.reason,
        label=label,
        limit=args.limit,
        diversity=not args.no_diversity,
    )
    # Where each item came from (the imported file, or the capture), not its content hash.
    by_id = store.by_ids([it.sample_id for it in items])

    def where_from(it: active.QueueItem) -> dict[str, str | None]:
        s = by_id.get(it.sample_id)  # None: deleted meanwhile by someone else
        return {"origin": s.origin if s else None, "from": s.origin_name if s else it.path}

    if args.json:
        emit_json({"strategy": args.strategy, "items": [{**it.as_json(), **where_from(it)} for it in items]})
        return 0
    if not items:
        print(
            "review queue is empty"
            if active.active_run(store)
            else "no model yet: `fingertui train` first; `fingertui samples --label none` lists unlabelled snapshots "
            "to label now with `fingertui label ID N`"
        )
        return 0
    from fingertui.cli.tables import print_table

    rows = [
        [
            str(it.sample_id),
            "—" if it.label is None else str(it.label),
            "—" if it.pred is None else str(it.pred),
            pct(it.confidence),
            ", ".join(it.reasons) + (f" (+{len(it.duplicates)})" if it.duplicates else ""),
            f"{it.score:.2f}",
            "—" if it.suggested is None else str(it.suggested),
            where_from(it)["from"],
        ]
        for it in items
    ]
    headers = ["id", "label", "pred", "conf", "reasons", "score", "suggest", "from"]
    whole = {"id", "label", "pred", "conf", "score", "suggest"}
    print_table(console(), headers, rows, whole=whole, title="review queue (best first)")
    out = console()
    for it in items:
        if it.why:
            lean = "the label looks wrong: probably" if "label-error" in it.reasons else "the model leans to"
            # Wrapped to the terminal (one line when piped), never cut.
            out.print(
                f"{it.sample_id}: {lean} {it.suggested} ({it.why})",
                highlight=False,
                markup=False,
                soft_wrap=not out.is_terminal,
            )
    print("act on an item: fingertui label ID N | label ID --confirm | label ID --exclude | delete ID | undo")
    return 0


UNLABELLED_WORDS = ("none", "unlabelled", "unlabeled")


@command("samples")
def cmd_samples(args: argparse.Namespace) -> int:
    from fingertui.data import catalog
    from fingertui.labels import ACCEPTED, try_parse_label

    store = open_store(args)
    unlabelled = args.label is not None and args.label.strip().lower() in UNLABELLED_WORDS
    label = None
    if args.label is not None and not unlabelled:
        label = try_parse_label(args.label)
        if label is None:
            raise UserError(f"unknown label {args.label!r}: use one of {ACCEPTED}, or none for the unlabelled")
    items = catalog.listing(store, label=label, unlabelled=unlabelled, split=args.split)
    if args.json:
        emit_json({"samples": [catalog.row(s) for s in items]})
        return 0
    if not items:
        print("no samples match" if store.count() else "no samples yet: `fingertui import DIR` or capture in the app")
        return 0
    # Plain columns, the origin last and whole: a table at 80 columns would cut the file
    # names, which are what a user looks for here.
    rows = [
        (
            str(s.id),
            ("-" if s.label is None else str(s.label)) + (" x" if s.excluded else ""),
            s.split or "-",
            s.source,
            s.session or "-",
            s.origin or catalog.origin_name(s),
        )
        for s in items
    ]
    head = ("id", "label", "split", "source", "session", "origin")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    from fingertui.cli.tables import safe_text

    for r in [head, *rows]:  # names as they are, control characters shown escaped
        print(
            "  ".join(
                [r[0].rjust(widths[0]), *(safe_text(r[i]).ljust(widths[i]) for i in (1, 2, 3, 4)), safe_text(r[5])]
            )
        )
    note = "; x = excluded from training" if any(s.excluded for s in items) else ""
    print(f"{len(items)} samples{note}. Change one: fingertui label ID N | delete ID")
    return 0


@command("label")
def cmd_label(args: argparse.Namespace) -> int:
    from fingertui.labels import parse_label
    from fingertui.review import active

    store = open_store(args)
    sid = _sample_id(args.id)
    chosen = [x for x in (args.value is not None, args.confirm, args.exclude) if x]
    if len(chosen) != 1:
        raise UserError("give exactly one of: a label N (0–5), --confirm, --exclude")
    if args.confirm:
        res = active.resolve(store, sid, "confirm")
    elif args.exclude:
        res = active.resolve(store, sid, "exclude")
    else:
        res = active.resolve(store, sid, "relabel", parse_label(args.value))
    if args.json:
        emit_json(res)
    else:
        what = {
            "confirm": f"confirmed label {res['label']}",
            "exclude": "excluded (kept on disk, left out of training)",
            "relabel": f"labelled {res['label']}",
        }[res["action"]]
        print(f"sample {sid}: {what}")
    return 0


@command("delete")
def cmd_delete(args: argparse.Namespace) -> int:
    from fingertui.review import active

    res = active.resolve(open_store(args), _sample_id(args.id), "delete")
    if args.json:
        emit_json(res)
    else:
        print(f"sample {res['sample']} deleted (`fingertui undo` brings it back)")
    return 0


@command("undo")
def cmd_undo(args: argparse.Namespace) -> int:
    res = open_store(args).undo()
    if args.json:
        emit_json(res)
    else:
        print(f"undone: {res['undone']}")
    return 0


# --- the app ----------------------------------------------------------------------------


def run_app(args: argparse.Namespace) -> int:
    import os

    from fingertui.live.camera import open_source
    from fingertui.tui.app import make_app
    from fingertui.tui.app import run_app as run

    if args.rate <= 0:
        raise UserError(f"--rate {args.rate:g}: give a number of photos per second above 0, such as 0.5 or 2")
    source = open_source(args.source, rate=args.rate)
    app = make_app(args.home, source, weights=args.app_weights, auto_retrain=args.auto_retrain)
    code = run(app)  # returns once nothing is being written and the store is closed
    # Quit at once: the interpreter's own teardown of torch and MediaPipe took 2.6–6 s
    # (measured in tmux on 2 busy cores), and threads still reading (a model loading)
    # have nothing to save.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# --- parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS so a --home after the command does not clobber one given before it.
    common.add_argument(
        "--home",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="workspace folder (default: $FINGERTUI_HOME, else the current folder)",
    )
    json_opt = argparse.ArgumentParser(add_help=False)
    json_opt.add_argument("--json", action="store_true", help="print machine-readable JSON (shapes in docs/json.md)")

    p = argparse.ArgumentParser(
        prog="fingertui", description="Teach a camera to count raised fingers (0–5).", parents=[common]
    )
    p.add_argument("--version", action="version", version=f"fingertui {__version__}")
    p.add_argument(
        "--source",
        default="webcam",
        metavar="SRC",
        help="camera for the app: webcam[:N] (default; falls back to demo), video:PATH, folder:PATH or demo",
    )
    p.add_argument(
        "--auto-retrain",
        type=int,
        default=0,
        metavar="N",
        help="in the app, retrain after every N new labels (default off)",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=1.0,
        metavar="N",
        help="with --source folder:PATH, photos shown per second (default 1)",
    )
    p.add_argument("--weights", dest="app_weights", metavar="FILE", help="resnet18 weights file for the app's model")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("import", parents=[common, json_opt], help="import labelled image folders")
    s.add_argument(
        "paths", nargs="+", metavar="PATH", help="image files or folder trees (folder name = label: 0–5 or zero…five)"
    )
    s.add_argument("--label", metavar="N", help="label every image N (for a flat folder)")
    s.add_argument("--unlabeled", action="store_true", help="import without labels (for the review queue)")
    s.add_argument(
        "--skip-unknown", action="store_true", help="skip folders whose name is not a label instead of stopping"
    )
    s.add_argument(
        "--session",
        metavar="NAME",
        help="the sitting these photos were taken in (default: from their capture times, else this import)",
    )

    s = sub.add_parser("export", parents=[common, json_opt], help="write DIR/{train,test}/<label>/ plus labels.csv")
    s.add_argument("dest", metavar="DIR")

    sub.add_parser("stats", parents=[common, json_opt], help="counts per label and split, with warnings")

    s = sub.add_parser(
        "doctor", parents=[common, json_opt], help="check the workspace; quarantine unindexed files, never delete"
    )
    s.add_argument("--dry-run", action="store_true", help="report only; move nothing")
    s.add_argument("--restore", action="store_true", help="put back the newest backup of the index (data/backups)")
    s.add_argument("--reindex", action="store_true", help="add quarantined (or unindexed) images back, unlabelled")
    s.add_argument("--empty-trash", action="store_true", help="delete data/trash for good (asks first)")
    s.add_argument("--yes", action="store_true", help="with --empty-trash: do not ask")

    weights_opt = argparse.ArgumentParser(add_help=False)
    weights_opt.add_argument(
        "--weights",
        metavar="FILE",
        help="resnet18 ImageNet weights file (else $FINGERTUI_WEIGHTS, else torchvision's cache)",
    )
    run_opt = argparse.ArgumentParser(add_help=False)
    run_opt.add_argument("--run", metavar="ID", help="run to use (default: the active one)")

    s = sub.add_parser("train", parents=[common, json_opt, weights_opt], help="train a model on the labelled images")
    s.add_argument(
        "--backbone",
        metavar="ID",
        help="resnet18 (default once `fetch-weights` got its weights; else efficientnet-lite0, installed, offline)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--head", choices=["linear", "mlp"], default="linear")
    s.add_argument(
        "--views",
        type=int,
        default=2,
        help="at most this many augmented views per training image (default 2): image views go only to "
        "classes with fewer than 30 images; landmark views to every image",
    )
    s.add_argument(
        "--features",
        choices=["image", "pose", "both"],
        default="both",
        help="what the model looks at: the image embedding, the hand's pose (landmarks), or both (default)",
    )

    s = sub.add_parser(
        "eval",
        parents=[common, json_opt, weights_opt, run_opt],
        help="metrics of a run (test split or a labelled folder)",
    )
    s.add_argument(
        "dir", nargs="?", metavar="DIR", help="labelled folder to evaluate on (nothing is added to the dataset)"
    )
    s.add_argument("--skip-unknown", action="store_true", help="skip folders whose name is not a label")

    s = sub.add_parser("predict", parents=[common, json_opt, weights_opt, run_opt], help="classify image files")
    s.add_argument("images", nargs="+", metavar="IMAGE")

    s = sub.add_parser("runs", parents=[common, json_opt], help="list runs; `runs compare A B`; `runs activate ID`")
    s.add_argument(
        "action", nargs="?", choices=["compare", "activate"], help="compare two runs, or make one the active model"
    )
    s.add_argument("ids", nargs="*", metavar="ID")

    s = sub.add_parser(
        "export-model",
        parents=[common, json_opt, weights_opt, run_opt],
        help="write the whole model as a folder that runs without fingertui (ONNX Runtime + MediaPipe)",
    )
    s.add_argument("path", metavar="PATH")
    s.add_argument(
        "--format",
        choices=["folder", "torchscript"],
        default="folder",
        help="folder: the whole model and its runner (default); torchscript: one file of the image expert alone",
    )

    s = sub.add_parser(
        "watch",
        parents=[common, json_opt, weights_opt, run_opt],
        help="print the steady count of a camera, video or folder as it changes (for other programs)",
    )
    s.add_argument(
        "--source", default="webcam", metavar="SRC", help="webcam[:N] (default), video:PATH, folder:PATH or demo"
    )
    s.add_argument("--every", action="store_true", help="a line for every frame, not only when the count changes")
    s.add_argument(
        "--model", metavar="DIR", help="an export-model folder or another workspace (default: this workspace)"
    )
    s.add_argument("--mirror", action="store_true", help="mirror the frames first (as the app's selfie view)")
    s.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")

    sub.add_parser(
        "fetch-weights", parents=[common, weights_opt], help="download ResNet-18 ImageNet weights once (needs internet)"
    )
    s = sub.add_parser("review", parents=[common, json_opt], help="the review queue: what to look at next, and why")
    s.add_argument("--strategy", default="margin", choices=["margin", "least-confidence", "entropy", "random"])
    # The same names as active.REASONS (not imported here: --help stays fast).
    reasons = ["label-error", "disagrees", "misclassified", "unsure", "no-hand", "finger-borderline", "weak-class"]
    s.add_argument("--reason", choices=[*reasons, "near-duplicate"])
    s.add_argument("--label", metavar="N", help="only items labelled (or, unlabelled, predicted) N")
    s.add_argument("--limit", type=int, metavar="K", help="at most K items (a diverse batch)")
    s.add_argument("--no-diversity", action="store_true", help="plain score order, no k-center pass")

    s = sub.add_parser(
        "samples", parents=[common, json_opt], help="list the samples: id, label, split, where each came from"
    )
    s.add_argument("--label", metavar="N", help="only samples labelled N (0–5), or none: the unlabelled ones")
    s.add_argument("--split", metavar="SPLIT", help="only the train or the test split")

    s = sub.add_parser("label", parents=[common, json_opt], help="label ID N | label ID --confirm | label ID --exclude")
    s.add_argument("id", metavar="ID")
    s.add_argument("value", nargs="?", metavar="N")
    s.add_argument("--confirm", action="store_true", help="the current label is right")
    s.add_argument("--exclude", action="store_true", help="not a hand / bad image: keep on disk, leave out of training")

    s = sub.add_parser("delete", parents=[common, json_opt], help="delete a sample (undo brings it back)")
    s.add_argument("id", metavar="ID")

    sub.add_parser("undo", parents=[common, json_opt], help="revert the last label change, confirm, exclude or delete")
    return p


def _sqlite_message(e: Exception) -> str:
    from fingertui.data.store.util import sqlite_advice

    return sqlite_advice(e)[1]


def _did_you_mean(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """`fingertui improt …`: name the command meant, in one line, exit 2 (argparse's own
    ``suggest_on_error`` needs Python 3.14)."""
    import difflib

    words = [a for a in argv if not a.startswith("-")]
    # The first word that is not an option's value: options that take one are --home,
    # --source, --auto-retrain, --weights, --rate (before the command).
    takes_value = {"--home", "--source", "--auto-retrain", "--weights", "--rate"}
    first, skip = None, False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in takes_value:
            skip = True
            continue
        if not a.startswith("-"):
            first = a
            break
    if first is None or first in COMMANDS or not words:
        return
    close = difflib.get_close_matches(first, list(COMMANDS), n=1, cutoff=0.6)
    hint = f"; did you mean `fingertui {close[0]}`?" if close else "; `fingertui --help` lists the commands"
    parser.exit(2, f"fingertui: error: unknown command {first!r}{hint}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    _did_you_mean(parser, sys.argv[1:] if argv is None else list(argv))
    args = parser.parse_args(argv)
    if not hasattr(args, "home"):
        args.home = None
    try:
        if args.command is None:
            return run_app(args)
        try:
            return COMMANDS[args.command](args)
        finally:
            _close_stores()
    except UserError as e:
        print(f"fingertui: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `fingertui … --json | head -1`: the reader took what it wanted and went away, as
        # `head` does; that is no error to report. Point stdout at /dev/null so the
        # interpreter's final flush does not raise again.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as e:
        if e.errno == errno.ENOSPC:
            print(
                "fingertui: error: disk full; free some space and try again (nothing stored was lost)", file=sys.stderr
            )
        elif e.errno == errno.EFBIG:
            print(
                f"fingertui: error: {e.filename or 'a file'}: too large for the file size limit (ulimit -f)",
                file=sys.stderr,
            )
        elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            print(
                f"fingertui: error: permission denied ({e.filename or e}); check the folder's permissions",
                file=sys.stderr,
            )
        else:
            print(f"fingertui: error: {e.strerror or e} ({e.filename or 'no file'})", file=sys.stderr)
        return 2
    except Cancelled:
        print("fingertui: cancelled; nothing was recorded", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("fingertui: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        import sqlite3

        if isinstance(e, sqlite3.Error):
            print(f"fingertui: error: {_sqlite_message(e)}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Command-line interface. Heavy libraries (torch, cv2, textual) are imported inside the
commands that need them, so ``--help`` and ``--version`` answer at once."""

from __future__ import annotations

import argparse
import errno
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from fingertui import __version__
from fingertui.errors import UserError

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn

    return deco


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def console():  # noqa: ANN201 — rich is imported lazily
    from rich.console import Console

    return Console()


def open_store(args: argparse.Namespace):  # noqa: ANN201
    from fingertui.store import Store
    from fingertui.workspace import Workspace

    return Store(Workspace.resolve(args.home))


# --- dataset commands -------------------------------------------------------------------


@command("import")
def cmd_import(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from fingertui.importer import SKIPPED_SHOWN, import_paths
    from fingertui.labels import parse_label

    label = parse_label(args.label) if args.label is not None else None
    if label is not None and args.unlabeled:
        raise UserError("--label and --unlabeled contradict each other; pass one of them")
    store = open_store(args)
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
            progress=lambda k, n: bar.update(task, completed=k, total=n),
        )
    if args.json:
        emit_json(report.as_json())
        return 0
    out = console()
    out.print(
        f"added {report.added}, duplicates {report.duplicates} (already stored, not added again), skipped {len(report.skipped)}"
    )
    for path, why in report.skipped[:SKIPPED_SHOWN]:
        out.print(f"  skipped {path}: {why}", highlight=False)
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


def console_err():  # noqa: ANN201
    from rich.console import Console

    return Console(stderr=True)


@command("export")
def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fingertui.export import export_dataset

    report = export_dataset(open_store(args), Path(args.dest))
    if args.json:
        emit_json(report.as_json())
    else:
        print(f"exported {report.written} images to {report.dest} (labels.csv beside them)")
        if report.missing:
            print(
                f"{len(report.missing)} images were missing from the workspace and not exported; run `fingertui doctor`"
            )
    return 0


@command("stats")
def cmd_stats(args: argparse.Namespace) -> int:
    from fingertui.stats import dataset_stats

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
    for w in st["warnings"]:
        out.print(f"[yellow]warning:[/] {w}", highlight=False)
    return 0


@command("doctor")
def cmd_doctor(args: argparse.Namespace) -> int:
    from fingertui.doctor import check

    store = open_store(args)
    report = check(store, fix=not args.dry_run)
    if args.json:
        emit_json(report.as_json())
    else:
        verb = "would remove" if args.dry_run else "removed"
        print(
            f"{store.count()} samples checked; {len(report.orphans)} orphaned files ({verb} {len(report.orphans) if args.dry_run else len(report.removed)})"
        )
        for sid in report.missing:
            print(f"sample {sid}: image file is missing — re-import it or `fingertui delete {sid}`")
        for sid in report.corrupt:
            print(f"sample {sid}: image file no longer matches its hash — re-import it or `fingertui delete {sid}`")
        print("healthy" if report.healthy else "problems found (see above)")
    return 0 if report.healthy else 1


# --- the app ----------------------------------------------------------------------------


def run_app(args: argparse.Namespace) -> int:
    from fingertui.workspace import Workspace

    ws = Workspace.resolve(args.home)
    print(f"fingertui {__version__}: the terminal app is not built yet (workspace {ws.root}).")
    print("Use the commands meanwhile: fingertui import DIR, fingertui stats, fingertui --help.")
    return 0


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
    json_opt.add_argument("--json", action="store_true", help="print machine-readable JSON (shapes in README)")

    p = argparse.ArgumentParser(
        prog="fingertui", description="Teach a camera to count raised fingers (0–5).", parents=[common]
    )
    p.add_argument("--version", action="version", version=f"fingertui {__version__}")
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

    s = sub.add_parser("export", parents=[common, json_opt], help="write DIR/{train,test}/<label>/ plus labels.csv")
    s.add_argument("dest", metavar="DIR")

    sub.add_parser("stats", parents=[common, json_opt], help="counts per label and split, with warnings")

    s = sub.add_parser("doctor", parents=[common, json_opt], help="find and clean orphaned files, report broken rows")
    s.add_argument("--dry-run", action="store_true", help="report only; remove nothing")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "home"):
        args.home = None
    try:
        if args.command is None:
            return run_app(args)
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"fingertui: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno == errno.ENOSPC:
            print(
                "fingertui: error: disk full; free some space and try again (nothing stored was lost)", file=sys.stderr
            )
            return 2
        raise
    except KeyboardInterrupt:
        print("fingertui: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

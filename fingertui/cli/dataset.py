"""Dataset commands: import, export, stats, samples, doctor."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from fingertui.cli.output import console, emit_json
from fingertui.cli.workspace import open_store, workspace
from fingertui.errors import UserError
from fingertui.words import plural

# `samples --label` words for the samples without a label.
UNLABELLED_WORDS = ("none", "unlabelled", "unlabeled")


def cmd_import(args: argparse.Namespace) -> int:
    from fingertui.cli.progress import ProgressDisplay
    from fingertui.cli.tables import safe_text
    from fingertui.data.importer import SKIPPED_SHOWN, import_paths
    from fingertui.labels import parse_label

    label = parse_label(args.label) if args.label is not None else None
    if label is not None and args.unlabeled:
        raise UserError("--label and --unlabeled contradict each other; pass one of them")
    store = open_store(args, create=True)
    # A bar on a terminal only: piped, the summary below says it all.
    with ProgressDisplay("importing", enabled=not args.json, show_phase=False, piped_lines=False) as progress:
        report = import_paths(
            store,
            args.paths,
            label=label,
            unlabeled=args.unlabeled,
            skip_unknown=args.skip_unknown,
            session=args.session,
            progress=progress,
        )
    if args.json:
        emit_json(report.as_json())
        return 0
    out = console()
    out.print(
        f"added {report.added}, duplicates {report.duplicates} (already stored, not added again), skipped {len(report.skipped)}"
    )
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


def cmd_export(args: argparse.Namespace) -> int:
    from fingertui.data.export import export_dataset

    report = export_dataset(open_store(args), Path(args.dest))
    if args.json:
        emit_json(report.as_json())
        return 0
    print(f"exported {plural(report.written, 'image')} to {report.dest} (labels.csv beside them)")
    if report.missing:
        print(f"{len(report.missing)} images were missing from the workspace and not exported; run `fingertui doctor`")
    if report.refused:
        print(f"{len(report.refused)} rows name a path outside data/ and were not exported; run `fingertui doctor`")
    return 0


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


def cmd_samples(args: argparse.Namespace) -> int:
    from fingertui.cli.tables import safe_text
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
    for r in [head, *rows]:  # names as they are, control characters shown escaped
        print(
            "  ".join(
                [r[0].rjust(widths[0]), *(safe_text(r[i]).ljust(widths[i]) for i in (1, 2, 3, 4)), safe_text(r[5])]
            )
        )
    note = "; x = excluded from training" if any(s.excluded for s in items) else ""
    print(f"{len(items)} samples{note}. Change one: fingertui label ID N | delete ID")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from fingertui.cli.tables import safe_text
    from fingertui.data import doctor

    ws = workspace(args)
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


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "import": cmd_import,
    "export": cmd_export,
    "stats": cmd_stats,
    "samples": cmd_samples,
    "doctor": cmd_doctor,
}

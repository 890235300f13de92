"""Model commands: train, eval, predict, runs, export-model, watch, fetch-weights."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from fingertui.cli.output import console, emit_json, json_line, quiet_stdout, warn
from fingertui.cli.workspace import has_workspace, open_store
from fingertui.errors import UserError
from fingertui.words import pct

if TYPE_CHECKING:  # for hints only: rich and the model load with the commands that use them
    from rich.console import Console

    from fingertui.learn.evaluation import FolderEval
    from fingertui.learn.model import Model
    from fingertui.runs.records import RunRecord


def print_metrics(out: Console, m: dict[str, Any], title: str) -> None:
    """A run's metrics: accuracy with its interval, per-class table, confusion matrix."""
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


def print_next_day(out: Console, m: dict[str, Any]) -> None:
    """The next-day figure (or the same-sitting caveat), the pooling rule, and whether the
    run is held back because the starter does better (learn/nextday.py)."""
    from fingertui.learn.nextday import describe, held_back_message

    nd = m.get("next_day")
    line = describe(nd)
    if line and nd is not None:
        out.print(line, highlight=False)
        out.print(f"pooling: {nd['why']}", highlight=False)
    held = held_back_message(nd)
    if held:
        out.print(f"[yellow]{held}[/]", highlight=False)


def cmd_train(args: argparse.Namespace) -> int:
    from fingertui.cli.progress import ProgressDisplay
    from fingertui.learn.heads import TrainConfig
    from fingertui.train.eta import estimate_for
    from fingertui.train.pipeline import train

    if not 0 <= args.views <= 16:
        raise UserError(f"--views {args.views}: give 0 to 16 augmented views per image")
    if not 0 <= args.seed < 2**63:  # checked now: the run records it after the whole training
        raise UserError(f"--seed {args.seed}: give a whole number from 0 to 2**63 - 1")
    store = open_store(args)
    cfg = TrainConfig(seed=args.seed, head=args.head, views=args.views)
    with ProgressDisplay(
        "training", enabled=not args.json, first_phase="loading model", expected=estimate_for(store)
    ) as progress:
        result = train(
            store,
            features=args.features,
            backbone=args.backbone,
            weights_file=args.weights,
            cfg=cfg,
            progress=progress,
            warn=warn,
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
    print_next_day(out, m)
    conf = m.get("confidence")
    if conf and not conf["checked"]:
        out.print(f'[yellow]confidence not yet checked: {conf["why"]}; until then no prediction says "sure"[/]')
    out.print(f"review queue: {flags['open']} flags ({flags['added']} new) — `fingertui review`")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from fingertui.runs.records import resolve_run

    store = open_store(args)
    run = resolve_run(store, args.run)
    folder: FolderEval | None = None
    if args.dir is None:
        m = run.metrics["test"]
        where = "test split"
    else:
        from fingertui.learn.evaluation import eval_folder
        from fingertui.learn.model import Model

        def load() -> Model:
            return Model.for_run(store, run, weights_file=args.weights, warn=warn)

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
    if note and folder is not None and folder.unseen is not None:
        print_metrics(out, folder.unseen, "images not in the workspace")
    if folder is None:
        print_next_day(out, run.metrics)
    return 0


def _image_paths(given: list[str]) -> list[str]:
    """The image files named, a folder standing for its images in name order (subfolders too)."""
    from fingertui.data.images import IMAGE_EXTS

    paths: list[str] = []
    for p in given:
        if Path(p).is_dir():
            found = sorted(str(f) for f in Path(p).rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS)
            if not found:
                raise UserError(f"{p}: no images in this folder ({', '.join(sorted(IMAGE_EXTS))})")
            paths += found
        elif Path(p).is_file():
            paths.append(p)
        else:
            raise UserError(f"{p}: no such image file or folder")
    return paths


def cmd_predict(args: argparse.Namespace) -> int:
    from fingertui.learn.model import Model
    from fingertui.runs.records import active_run, resolve_run

    paths = _image_paths(args.images)
    # With no workspace here, the starter model still predicts (and no workspace is made).
    store = open_store(args) if args.run is not None or has_workspace(args) else None
    run: RunRecord | None = None
    model: Model | None
    if store is None or (args.run is None and active_run(store) is None):
        # No run yet: the shipped starter counts fingers from the hand's pose.
        model = Model.starter()
        if model is None:  # no hand-pose detector here
            raise UserError(
                "no trained model yet and no hand-pose detector for the starter model; "
                "label some images and run `fingertui train`"
            )
    else:
        run = resolve_run(store, args.run)
        model = Model.for_run(store, run, weights_file=args.weights, warn=warn)
    results = []
    for p in paths:
        try:
            pred = model.predict_paths([p])[0]
        except UserError:
            raise
        except (OSError, ValueError) as e:
            raise UserError(f"{p} is not a readable image ({e})") from e
        results.append({"path": p, **pred.as_json()})
    if args.json:
        emit_json(
            {
                "run": run.id if run else None,
                "model": "run" if run else "starter",
                "backbone": run.backbone if run else None,
                "threshold": model.threshold,
                "confidence_checked": model.confidence_checked,
                "predictions": results,
            }
        )
        return 0
    if run is None:
        print("starter model (no run yet) — capture or import a few of each and train to make it yours")
    elif not model.confidence_checked:
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


def cmd_runs(args: argparse.Namespace) -> int:
    from fingertui.cli.tables import print_table
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
    headers = ["run", "finished", "train/test", "backbone", "accuracy", "next day", "weakest", "ECE", "time"]
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


def _next_day_cell(m: dict[str, Any]) -> str:
    """Accuracy on sessions the run did not see ("same" when it had one session)."""
    nd = m.get("next_day")
    if not isinstance(nd, dict) or nd.get("accuracy") is None:
        return "—"
    cell = pct(nd["accuracy"]) + (" same" if nd.get("same_sitting") else "")
    return cell + (" held" if nd.get("starter", {}).get("held_back") else "")


def cmd_export_model(args: argparse.Namespace) -> int:
    from fingertui.export.build import export_folder, export_torchscript
    from fingertui.learn.model import Model
    from fingertui.runs.records import resolve_run

    store = open_store(args)
    run = resolve_run(store, args.run)
    model = Model.for_run(store, run, weights_file=args.weights, warn=warn)
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


def cmd_watch(args: argparse.Namespace) -> int:
    """The steady count of a camera, video or folder, one line per change (or per frame):
    `fingertui watch --json | my-program`. Ends cleanly on Ctrl-C, SIGTERM or a closed pipe."""
    import signal
    import time

    from fingertui.counter import Counter

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    counter = Counter.load(args.model or args.home, run=args.run, weights=args.weights)
    t0 = time.monotonic()
    try:
        for r in counter.stream(args.source, mirror=args.mirror, max_frames=args.max_frames):
            if not (args.every or r.changed):
                continue
            if args.json:
                line = json_line({"t": round(time.monotonic() - t0, 3), **r.as_json()})
            elif r.steady is None:
                line = f"frame {r.frame}: {'no hand' if r.hand is False or r.count is None else 'settling'}"
            else:
                line = f"frame {r.frame}: {r.steady} ({100 * r.probs[r.steady]:.0f}%)"
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `fingertui watch | head -1`: the reader has what it wanted
        quiet_stdout()
    return 0


def cmd_fetch_weights(args: argparse.Namespace) -> int:
    from fingertui.learn import backbones, pretrained

    # Tries now even if a download failed earlier today, and clears that note when it works.
    try:
        bb = backbones.load_resnet18(args.weights, settings=open_store(args, create=True), force=True)
    except pretrained.WeightsUnavailable as e:
        raise UserError(
            f"could not download ResNet-18 weights ({e}); connect to the internet, or pass --weights FILE"
        ) from e
    print(f"ResNet-18 ImageNet weights ready ({bb.id}); fingertui train now uses them")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": cmd_train,
    "eval": cmd_eval,
    "predict": cmd_predict,
    "runs": cmd_runs,
    "export-model": cmd_export_model,
    "watch": cmd_watch,
    "fetch-weights": cmd_fetch_weights,
}

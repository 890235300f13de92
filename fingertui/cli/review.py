"""Review commands: the queue (review), and the answers to it (label, delete, undo)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from fingertui.cli.output import console, emit_json
from fingertui.cli.workspace import open_store
from fingertui.errors import UserError
from fingertui.words import pct


def _sample_id(text: str) -> int:
    from fingertui.data.store.util import parse_id

    return parse_id(text, "sample", "fingertui samples")


def cmd_review(args: argparse.Namespace) -> int:
    from fingertui.cli.tables import print_table
    from fingertui.labels import parse_label
    from fingertui.review import queue
    from fingertui.runs.records import active_run

    store = open_store(args)
    label = parse_label(args.label) if args.label is not None else None
    items = queue.items(
        store,
        strategy=args.strategy,
        reason=args.reason,
        label=label,
        limit=args.limit,
        diversity=not args.no_diversity,
    )
    # Where each item came from (the imported file, or the capture), not its content hash.
    by_id = store.by_ids([it.sample_id for it in items])

    def where_from(it: queue.QueueItem) -> dict[str, str | None]:
        s = by_id.get(it.sample_id)  # None: deleted meanwhile by someone else
        return {"origin": s.origin if s else None, "from": s.origin_name if s else it.path}

    if args.json:
        emit_json({"strategy": args.strategy, "items": [{**it.as_json(), **where_from(it)} for it in items]})
        return 0
    if not items:
        print(
            "review queue is empty"
            if active_run(store)
            else "no model yet: `fingertui train` first; `fingertui samples --label none` lists unlabelled snapshots "
            "to label now with `fingertui label ID N`"
        )
        return 0
    rows = [
        [
            str(it.sample_id),
            "—" if it.label is None else str(it.label),
            "—" if it.pred is None else str(it.pred),
            pct(it.confidence),
            ", ".join(it.reasons) + (f" (+{len(it.duplicates)})" if it.duplicates else ""),
            f"{it.score:.2f}",
            "—" if it.suggested is None else str(it.suggested),
            where_from(it)["from"] or "",
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


def cmd_label(args: argparse.Namespace) -> int:
    from fingertui.labels import parse_label
    from fingertui.review import queue

    store = open_store(args)
    sid = _sample_id(args.id)
    chosen = [x for x in (args.value is not None, args.confirm, args.exclude) if x]
    if len(chosen) != 1:
        raise UserError("give exactly one of: a label N (0–5), --confirm, --exclude")
    if args.confirm:
        res = queue.apply_action(store, sid, "confirm")
    elif args.exclude:
        res = queue.apply_action(store, sid, "exclude")
    else:
        res = queue.apply_action(store, sid, "relabel", parse_label(args.value))
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


def cmd_delete(args: argparse.Namespace) -> int:
    from fingertui.review import queue

    res = queue.apply_action(open_store(args), _sample_id(args.id), "delete")
    if args.json:
        emit_json(res)
    else:
        print(f"sample {res['sample']} deleted (`fingertui undo` brings it back)")
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    res = open_store(args).undo()
    if args.json:
        emit_json(res)
    else:
        print(f"undone: {res['undone']}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "review": cmd_review,
    "label": cmd_label,
    "delete": cmd_delete,
    "undo": cmd_undo,
}

"""The command line's grammar: every command, its arguments and their help, and the
"did you mean" line for a mistyped command. Light on purpose: `fingertui --help` builds
this parser and imports nothing heavy."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence

from fingertui.review.reasons import FLAG_REASONS, NEAR_DUPLICATE
from fingertui.version import __version__


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
    s.add_argument("--reason", choices=[*FLAG_REASONS, NEAR_DUPLICATE])
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


def did_you_mean(parser: argparse.ArgumentParser, argv: Sequence[str], commands: Iterable[str]) -> None:
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
    names = list(commands)
    if first is None or first in names or not words:
        return
    close = difflib.get_close_matches(first, names, n=1, cutoff=0.6)
    hint = f"; did you mean `fingertui {close[0]}`?" if close else "; `fingertui --help` lists the commands"
    parser.exit(2, f"fingertui: error: unknown command {first!r}{hint}\n")

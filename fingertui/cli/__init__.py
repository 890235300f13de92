"""The command line: ``fingertui COMMAND …`` runs a command, plain ``fingertui`` the app.

The package holds the parser (parser.py), what commands print through (output.py), the
workspace a command opens (workspace.py), the progress renderer (progress.py), tables
(tables.py) and the commands: dataset.py, model.py, review.py. Heavy libraries (torch, cv2,
textual) are imported inside the commands that need them, so ``--help`` and ``--version``
answer at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from fingertui.cli import dataset, model, review
from fingertui.cli.output import error_line, quiet_stdout
from fingertui.cli.parser import build_parser, did_you_mean
from fingertui.cli.workspace import close_stores
from fingertui.errors import UserError

__all__ = ["COMMANDS", "main"]

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {**dataset.COMMANDS, **model.COMMANDS, **review.COMMANDS}


def run_app(args: argparse.Namespace) -> int:
    """The app (no command given): camera from ``--source``, workspace from ``--home``."""
    import os

    from fingertui.live.camera import open_source
    from fingertui.tui.app import make_app
    from fingertui.tui.app import run_app as run

    if args.rate <= 0:
        raise UserError(f"--rate {args.rate:g}: give a number of photos per second above 0, such as 0.5 or 2")
    source = open_source(args.source, rate=args.rate)
    app = make_app(args.home, source, weights=args.app_weights, auto_retrain=args.auto_retrain)
    code = run(app)  # returns once nothing is being written and the store is closed
    # Quit at once: the interpreter's own teardown of torch and MediaPipe takes seconds, and
    # threads still reading (a model loading) have nothing to save (bench/quit_time.py
    # times quitting: bench/results/quit_time.json).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command (or the app); returns its exit code. A user's mistake ends in one
    line on stderr and exit code 2, never a traceback."""
    parser = build_parser()
    did_you_mean(parser, sys.argv[1:] if argv is None else list(argv), COMMANDS)
    args = parser.parse_args(argv)
    if not hasattr(args, "home"):
        args.home = None
    try:
        if args.command is None:
            return run_app(args)
        try:
            return COMMANDS[args.command](args)
        finally:
            close_stores()
    except BrokenPipeError:
        # `fingertui … --json | head -1`: the reader took what it wanted and went away, as
        # `head` does; that is no error to report.
        quiet_stdout()
        return 0
    except (Exception, KeyboardInterrupt) as e:
        said = error_line(e)
        if said is None:
            raise
        print(said[0], file=sys.stderr)
        return said[1]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

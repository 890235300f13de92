"""One training run in a child process, driven like a function call.

The app trains here rather than on a thread of its own process: the run's hand search
(MediaPipe), image decoding and head fitting hold the GIL for long stretches, and on a
thread they can starve the app's event loop (a key waits until the run lets go of the
interpreter). In a process of its own, at a lower
priority, the run cannot take the interpreter from the screen, and whatever it writes to
the terminal (MediaPipe's C++ logging) cannot scribble over it. bench/tui_latency.py
measures the two (bench/results/tui_latency-*.json).

Protocol: the parent writes one JSON request line to the child's stdin; the child answers
on its stdout with JSON lines (``progress``, ``warn``, then one of ``done``, ``cancelled``,
``error``, ``crash``). Any later line on stdin, or its end (the parent is gone), cancels.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fingertui.errors import Cancelled, UserError

# The child's niceness (and its session's, under autogroup scheduling): on a busy machine
# the screen's process gets the cores first; on an idle one the run loses nothing.
NICE = 10


def train_in_child(
    root: Path,
    *,
    backbone: str | None = None,
    weights_file: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> int:
    """Train on the workspace at ``root`` in a child process; the new run's id.

    Raises ``Cancelled`` when ``cancel`` stopped it, ``UserError`` with the run's own
    message, ``RuntimeError`` when the child failed otherwise."""
    request = {"root": str(root), "backbone": backbone, "weights_file": weights_file}
    env = dict(os.environ)
    # The child imports this very package, also from a checkout that is not installed.
    here = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fingertui.train.process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
            start_new_session=True,  # no controlling terminal: the screen is the parent's
        )
        stdin, stdout = proc.stdin, proc.stdout
        assert stdin is not None and stdout is not None  # both are pipes (PIPE above)
        done = threading.Event()

        def forward_cancel() -> None:
            while not done.is_set():
                if cancel is not None and cancel.wait(0.1):
                    with contextlib.suppress(OSError, ValueError):
                        stdin.write(b"cancel\n")
                        stdin.flush()
                    return
                if cancel is None:
                    done.wait(0.5)

        try:
            stdin.write(json.dumps(request).encode() + b"\n")
            stdin.flush()
            threading.Thread(target=forward_cancel, daemon=True, name="fingertui-train-cancel").start()
            final: dict[str, Any] | None = None
            for line in stdout:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if "progress" in msg and progress is not None:
                    progress(*msg["progress"])
                elif "warn" in msg and warn is not None:
                    warn(msg["warn"])
                elif msg.keys() & {"done", "cancelled", "error", "crash"}:
                    final = msg
            code = proc.wait()
        finally:
            done.set()
            if proc.poll() is None:  # the caller itself failed: the child must not live on
                proc.kill()
                proc.wait()
            with contextlib.suppress(OSError):
                stdin.close()
        if final is None:
            errors.seek(0)
            tail = errors.read().decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"the training process ended unexpectedly (exit code {code}): {tail[0]}")
    if "done" in final:
        return int(final["done"])
    if "cancelled" in final:
        raise Cancelled()
    if "error" in final:
        raise UserError(final["error"])
    raise RuntimeError(final["crash"])


def _child() -> int:
    # The protocol gets its own descriptor; 1 and 2 go to the error file the parent keeps
    # (MediaPipe's C++ logging, a library's print), never into the protocol.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    with contextlib.suppress(OSError):
        os.nice(NICE)
    # In a session of its own (no terminal), Linux's autogroup scheduling shares the cores
    # between sessions first and applies a thread's nice only within its session: the
    # group's own nice is what lets the screen's process go first.
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(f"{NICE}\n")
    lock = threading.Lock()

    def send(**msg: Any) -> None:
        with lock:
            out.write(json.dumps(msg) + "\n")

    request = json.loads(sys.stdin.readline())
    cancel = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.readline()  # "cancel", or the end: the parent is gone
        cancel.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    from fingertui.data.store import Store
    from fingertui.data.workspace import Workspace
    from fingertui.train.pipeline import train

    store = Store(Workspace(Path(request["root"])))
    try:
        result = train(
            store,
            backbone=request["backbone"],
            weights_file=request["weights_file"],
            progress=lambda phase, k, n: send(progress=[phase, k, n]),
            cancel=cancel,
            warn=lambda m: send(warn=m),
        )
        send(done=result.run.id)
    except Cancelled:
        send(cancelled=True)
    except UserError as e:
        send(error=str(e))
    except Exception as e:  # the parent shows it; the traceback goes to the error file
        import traceback

        traceback.print_exc()
        send(crash=f"{type(e).__name__}: {e}")
    finally:
        store.close()
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child())

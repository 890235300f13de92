"""The app in a real terminal: the whole first screen arrives, and quitting leaves the
terminal as it found it, even while something mutes file descriptor 2.

The hand detector mutes descriptor 2 around MediaPipe's calls (its C++ logging writes
there). Textual used to draw on descriptor 2, so a screen painted in such a window was lost
(no title bar or footer on `folder:`/`video:` starts) and so was the quit's restore of the
terminal (alternate screen, mouse tracking, cursor) during a training run's hand search.
"""

from __future__ import annotations

import fcntl
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
import threading
import time
from functools import partial
from pathlib import Path

import pytest

from tests.conftest import noise_image, save
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

# Stands in for the detector: once the driver has put the terminal in application mode
# (before the first paint), descriptor 2 points at /dev/null for the rest of the app's life.
MUTED = (
    "import os, sys\n"
    "from textual.drivers.linux_driver import LinuxDriver\n"
    "start = LinuxDriver.start_application_mode\n"
    "def muted_start(self):\n"
    "    start(self)\n"
    "    self.flush()\n"
    "    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)\n"
    "LinuxDriver.start_application_mode = muted_start\n"
    "from fingertui.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)

LEAVE_ALT_SCREEN, SHOW_CURSOR, MOUSE_OFF = b"\x1b[?1049l", b"\x1b[?25h", b"\x1b[?1000l"


class Pty:
    """A child process on a pseudo-terminal, everything it draws kept in ``out``."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 24, cols: int = 80) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, start_new_session=True
        )
        os.close(slave)
        self.master = master
        self.out = bytearray()
        self._lock = threading.Lock()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:  # the app blocks if nobody reads the terminal
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self.out += chunk

    def wait_for(self, *needles: bytes, timeout: float = 120.0, start: int = 0) -> bool:
        def seen() -> bool:
            with self._lock:
                return all(n in self.out[start:] for n in needles)

        try:
            wait_until(lambda: seen() or self.proc.poll() is not None, timeout, every=0.1)
        except AssertionError:
            return False
        if not seen():
            time.sleep(0.3)  # the process ended: its last bytes may still be in the pty
        return seen()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        os.close(self.master)


def test_screen_and_quit_reach_the_terminal_while_descriptor_2_is_muted(tmp_path):
    env = {**os.environ, "FINGERTUI_HOME": str(tmp_path / "ws"), "PYTHONPATH": str(ROOT)}
    term = Pty([sys.executable, "-c", MUTED, "--source", "demo"], env, rows=48, cols=160)
    try:
        # The footer's keys and the title bar are painted once, never again: they arrive or
        # they are missing for good.
        assert term.wait_for(b"quit", b"fingertui", timeout=90), "the first screen never reached the terminal"
        mark = len(term.out)
        os.write(term.master, b"q")
        assert term.proc.wait(60) == 0
        assert term.wait_for(LEAVE_ALT_SCREEN, SHOW_CURSOR, MOUSE_OFF, timeout=5, start=mark), (
            "quitting did not restore the terminal"
        )
    finally:
        term.close()


# --- tmux: what a user sees ------------------------------------------------------------


# A tmux server of this test process's own: tests on other pytest-xdist workers (and the
# user's own sessions) never share it.
TMUX = ["tmux", "-L", f"fingertui-test-{os.getpid()}"]


def tmux(*args: str) -> str:
    return subprocess.run([*TMUX, *args], check=True, capture_output=True, text=True).stdout


def screen_of(session: str) -> list[str]:
    return tmux("capture-pane", "-p", "-t", session).splitlines()


def says(session: str, text: str) -> bool:
    return any(text in ln for ln in screen_of(session))


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_folder_source_first_screen_is_whole_and_quit_mid_training_restores_in_tmux(tmp_path):
    """`--source folder:` with the real hand detector, in a small terminal and a large one
    at once: title bar and footer are on screen without a resize (they were missing on 5 of
    5 starts); then t, and q 1.5 s into the run, leaves the terminal as it was (2 of 2 left
    it in the app's modes)."""
    photos = tmp_path / "photos"
    for k in range(3):
        save(noise_image(k, 160), photos / f"p{k}.png")
    # Labelled images to train on: q is pressed while the run goes on (it used to leave the
    # alternate screen, mouse tracking and a hidden cursor behind).
    from fingertui.cli import main
    from tests.conftest import write_bars

    bars = write_bars(tmp_path / "bars", 8)
    sessions = []
    try:
        for cols, rows in [(80, 24), (160, 48)]:
            home = tmp_path / f"ws{cols}"
            assert main(["--home", str(home), "import", str(bars)]) == 0
            session = f"fingertui-test-{os.getpid()}-{cols}"
            # A tmux server started by this new-session gives its first pane the default size
            # and only then the one asked for: the app starts once the pane has its size.
            cmd = (
                f"sleep 1; cd {ROOT} && FINGERTUI_HOME={home} PYTHONPATH={ROOT} {sys.executable} -m fingertui "
                f"--source folder:{photos}; echo EXITED $?; sleep 30"
            )
            tmux("new-session", "-d", "-s", session, "-x", str(cols), "-y", str(rows), cmd)
            sessions.append(session)

        # Whole once the status line says how fast frames come (the live loop and the
        # detector have started by then: the window in which the screen used to be lost).
        def started(session: str) -> bool:
            lines = screen_of(session)
            return any("fps" in ln for ln in lines) and any("predictions/s" in ln or "fixed" in ln for ln in lines)

        for session in sessions:
            wait_until(partial(started, session), 120, every=0.5)
        time.sleep(3)  # the detector's start-up and its lingering mute are over by now
        for session in sessions:
            lines = screen_of(session)
            assert "fingertui" in lines[0], f"{session}: no title bar: {lines[0]!r}"
            assert "quit" in lines[-1] or "capture" in lines[-1], f"{session}: no footer: {lines[-1]!r}"
            tmux("send-keys", "-t", session, "t")
        for session in sessions:
            wait_until(partial(says, session, "esc cancels"), 30, every=0.2)
        time.sleep(1.5)
        for session in sessions:
            tmux("send-keys", "-t", session, "q")
        for session in sessions:
            wait_until(partial(says, session, "EXITED"), 30, every=0.3)
            flags = tmux("display", "-p", "-t", session, "#{alternate_on} #{mouse_any_flag} #{cursor_flag}").split()
            assert flags == ["0", "0", "1"], f"{session}: terminal left in app mode (alternate, mouse, cursor): {flags}"
    finally:
        for session in sessions:
            subprocess.run([*TMUX, "kill-session", "-t", session], capture_output=True)

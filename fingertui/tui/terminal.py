"""The terminal the app draws on: its own file descriptor, not the process's stderr.

Textual's Linux driver writes the screen to ``sys.__stderr__``, that is file descriptor 2.
The hand detector mutes descriptor 2 around MediaPipe's calls
(``mediapipe_quirks.quiet_stderr``: its C++ logging writes there and would scribble over
the screen), and whatever Textual wrote meanwhile would go to /dev/null: the tracker opens
its model just as the app lays out its first screen (the title bar and the footer would be
lost), and a quit during a training run's hand search would lose the sequences that leave
the alternate screen, stop mouse tracking and show the cursor again. Drawing on a duplicate
of the terminal's descriptor keeps every write the app makes, whoever mutes 2.
"""

from __future__ import annotations

import io
import os
import sys
from typing import IO, Any

from textual.drivers.linux_driver import LinuxDriver


def own_terminal_file(stream: IO[str] | None = None) -> io.TextIOWrapper | None:
    """A text file on a new descriptor for the terminal behind ``stream`` (stderr), or None
    when it has no descriptor (an embedded interpreter, a test's captured stream)."""
    stream = stream if stream is not None else sys.__stderr__
    if stream is None:
        return None
    try:
        fd = os.dup(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    encoding = getattr(stream, "encoding", None) or "utf-8"
    return os.fdopen(fd, "w", encoding=encoding, errors="replace")


class OwnTerminalDriver(LinuxDriver):
    """Textual's Linux driver, drawing on its own descriptor for the terminal."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._own_file = own_terminal_file()
        if self._own_file is not None:
            self._file = self._own_file

    def close(self) -> None:
        super().close()  # the writer thread has written everything when this returns
        if self._own_file is not None:
            try:
                self._own_file.close()
            except OSError:
                pass
            self._own_file = None

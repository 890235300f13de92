"""What a benchmark printed, kept: ``record(__file__)`` at the start of a bench's main
copies everything it prints to bench/results/<name>.json when it ends, with the command
line, the time and the load average, so every figure quoted in the README has a file
behind it. ``record(__file__, "images300-seeds3")`` names the file by the arguments it
ran with (bench/results/<name>-images300-seeds3.json), so a run with other arguments
keeps its own file."""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from pathlib import Path
from typing import TextIO

OUT = Path(__file__).resolve().parent / "results"


class _Tee:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.text: list[str] = []

    def write(self, s: str) -> int:
        self.text.append(s)
        return self.stream.write(s)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


def run_details(script: str, started: float, load_start: tuple[float, float, float]) -> dict:
    """What a result file says of its run: the script, its command line, when it finished,
    how long it took, the cores and the load average at its start and end."""
    return {
        "script": f"bench/{Path(script).stem}.py",
        "argv": sys.argv[1:],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.time() - started, 1),
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }


def record(script: str, suffix: str = "") -> Path:
    """Tee stdout from now on; at exit write it to bench/results/<script's name>[-suffix].json
    and return that path (known up front, for the script to mention)."""
    name = Path(script).stem
    out = OUT / (f"{name}-{suffix}.json" if suffix else f"{name}.json")
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    started = time.time()
    load_start = os.getloadavg()

    def save() -> None:
        if {"-h", "--help"} & set(sys.argv[1:]):
            return  # a usage text is no result: keep the file a real run wrote
        OUT.mkdir(parents=True, exist_ok=True)
        lines = [line for line in "".join(tee.text).splitlines() if line.strip()]
        report = {**run_details(script, started, load_start), "output": lines}
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")

    atexit.register(save)
    return out

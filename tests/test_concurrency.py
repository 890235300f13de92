"""Two fingertui processes on one workspace: one writer at a time, nothing lost."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fingertui.data import doctor
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace
from tests.conftest import noise_image, save, write_bars

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "FINGERTUI_LOCK_WAIT_S": "60"}


def start(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fingertui", "--home", str(home), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for k in range(60):
        save(noise_image(500 + k, 96), tmp_path / "src" / str(k % 6) / f"{k}.png")
    return tmp_path / "src"


def all_there(home: Path, n: int) -> None:
    s = Store(Workspace(home))
    try:
        assert s.count() == n
        assert all(s.ws.abs(x.path).exists() and x.label is not None for x in s.samples())
        rep = doctor.check(s)
        assert rep.healthy and rep.orphans == [] and rep.quarantine_files == 0, rep.as_json()
    finally:
        s.close()


def test_doctor_during_import_never_takes_an_image(tmp_path, folder, monkeypatch):
    monkeypatch.setenv("FINGERTUI_LOCK_WAIT_S", "60")
    home = tmp_path / "home"
    Store(Workspace(home)).close()
    imp = start(home, "import", str(folder))
    runs = 0
    while imp.poll() is None or runs == 0:
        s = Store(Workspace(home))
        rep = doctor.check(s)
        s.close()
        assert rep.orphans == [], rep.as_json()  # a half-imported image is never an orphan
        runs += 1
    out, err = imp.communicate()
    assert imp.returncode == 0, err
    all_there(home, 60)


def test_two_imports_of_one_folder(tmp_path, folder):
    home = tmp_path / "home"
    Store(Workspace(home)).close()
    a, b = start(home, "import", str(folder), "--json"), start(home, "import", str(folder), "--json")
    results = [(p.wait(), p.communicate()) for p in (a, b)]
    for code, (_, err) in results:
        assert "Traceback" not in err
        assert code == 0 or (code == 2 and "another fingertui is writing" in err), err
    all_there(home, 60)


def test_train_during_import(tmp_path, folder):
    home = tmp_path / "home"
    bars = write_bars(tmp_path / "bars", 4)
    subprocess.run([sys.executable, "-m", "fingertui", "--home", str(home), "import", str(bars)], env=ENV, check=True)
    env = {**ENV, "FINGERTUI_DEV_RANDOM_BACKBONE": "1"}
    train = subprocess.Popen(
        [sys.executable, "-m", "fingertui", "--home", str(home), "train", "--backbone", "dev-random", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    imp = start(home, "import", str(folder))
    for p in (train, imp):
        _, err = p.communicate()
        assert p.returncode == 0, err
    all_there(home, 24 + 60)
    s = Store(Workspace(home))
    [run] = s.runs.rows()
    assert s.ws.abs(run["checkpoint"]).exists()
    s.close()

"""Small CLI things a new user meets: no workspace made by reading, "did you mean", a
closed pipe, a folder to predict, export names."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fingertui.cli import main
from tests.conftest import SHARED, needs_shared, noise_image, save

ROOT = Path(__file__).resolve().parents[1]


def test_a_reading_command_makes_no_workspace(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FINGERTUI_HOME", raising=False)
    for cmd in (["samples"], ["stats"], ["runs"], ["review"]):
        assert main(cmd) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "no fingertui workspace" in err[0]
    assert list(tmp_path.iterdir()) == []  # no data/, no db/


def test_a_mistyped_command_names_the_one_meant(capsys):
    with pytest.raises(SystemExit) as e:
        main(["improt", "photos"])
    assert e.value.code == 2
    assert "did you mean `fingertui import`?" in capsys.readouterr().err


@pytest.mark.slow
def test_json_into_head_ends_quietly(tmp_path, labelled_tree):
    home = tmp_path / "ws"
    assert main(["--home", str(home), "import", str(labelled_tree)]) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = f"{sys.executable} -m fingertui --home {home} samples --json | head -1"
    out = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd}"], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "{" and out.stderr == ""


def test_export_keeps_the_original_names_where_they_are_unique(tmp_path, capsys):
    src = tmp_path / "src"
    save(noise_image(1), src / "2" / "IMG_0001.png")
    save(noise_image(2), src / "2" / "IMG_0002.png")
    save(noise_image(3), tmp_path / "a" / "3" / "same.png")
    save(noise_image(4), tmp_path / "b" / "3" / "same.png")  # the same name from two folders
    home = tmp_path / "ws"
    for folder in (src, tmp_path / "a", tmp_path / "b"):
        assert main(["--home", str(home), "import", str(folder)]) == 0
    assert main(["--home", str(home), "export", str(tmp_path / "out")]) == 0
    files = list((tmp_path / "out").rglob("*.png"))
    assert len(files) == 4
    assert {"IMG_0001.png", "IMG_0002.png"} <= {p.name for p in files}
    # Where both land in one folder the clash keeps content-hash names (nothing overwritten).
    by_folder = {}
    for p in files:
        by_folder.setdefault(p.parent, []).append(p.name)
    assert all(len(names) == len(set(names)) for names in by_folder.values())
    assert len(list(csv.DictReader((tmp_path / "out" / "labels.csv").open()))) == 4


@needs_shared()
@pytest.mark.slow
def test_predict_a_folder_predicts_its_images(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    for f in sorted((SHARED / "3").iterdir())[:2]:
        (folder / f.name).symlink_to(f)
    monkeypatch.chdir(tmp_path)  # no workspace here: the starter predicts, nothing is made
    assert main(["predict", str(folder), "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert len(out["predictions"]) == 2 and out["model"] == "starter"
    assert not (tmp_path / "db").exists()

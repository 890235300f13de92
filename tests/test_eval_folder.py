"""`eval DIR` says how many of its images the workspace already holds (by content hash),
in which split, and scores the unseen ones on their own."""

import json
import shutil
from pathlib import Path

import pytest

from fingertui.cli import main
from fingertui.data.store import Store
from fingertui.data.store.util import sha256_file
from tests.conftest import finger_image


@pytest.fixture
def bars(runs_ws):
    """The folder the workspace's images were imported from (0/ … 5/)."""
    return Path(Store(runs_ws).labelled()[0].origin).parents[1]


def mixed(tmp_path, bars, known=6, new=6):
    """``known`` images copied from the imported folder and ``new`` never seen, by label."""
    root = tmp_path / "mixed"
    files = sorted(bars.rglob("*.png"))[::8][:known]  # spread over the labels
    for f in files:
        (root / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, root / f.parent.name / f"old-{f.name}")
    for k in range(new):
        label = k % 6
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        finger_image(label, 90_000 + k).save(root / str(label) / f"new-{k}.png")
    return root, files


def eval_json(ws, folder, capsys):
    capsys.readouterr()
    assert main(["--home", str(ws.root), "eval", str(folder), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def eval_text(ws, folder, capsys):
    capsys.readouterr()
    assert main(["--home", str(ws.root), "eval", str(folder)]) == 0
    return " ".join(capsys.readouterr().out.split())  # rich wraps long lines when piped


def test_images_already_in_the_workspace_are_counted_by_split(runs_ws, bars, tmp_path, capsys):
    folder, known = mixed(tmp_path, bars)
    store = Store(runs_ws)
    before = store.count()
    out = eval_json(runs_ws, folder, capsys)
    splits = [store.by_shas([sha256_file(f)])[sha256_file(f)].split for f in known]
    assert out["in_workspace"] == {
        "n": 6,
        "train": splits.count("train"),
        "test": splits.count("test"),
        "unlabelled": 0,
    }
    assert out["unseen"]["n"] == 6 and out["unseen"]["metrics"]["n"] == 6 and out["metrics"]["n"] == 12
    assert Store(runs_ws).count() == before  # evaluating adds nothing
    text = eval_text(runs_ws, folder, capsys)
    acc = 100 * out["unseen"]["metrics"]["accuracy"]
    assert "6 of 12 images are already in the workspace" in text
    assert f"on the 6 it has not seen, accuracy is {acc:.1f}%" in text
    assert "images not in the workspace: accuracy" in text


def test_a_folder_the_workspace_was_imported_from_is_flagged(runs_ws, bars, capsys):
    store = Store(runs_ws)
    n_train = sum(1 for s in store.labelled() if s.split == "train")
    out = eval_json(runs_ws, bars, capsys)
    assert out["in_workspace"]["n"] == out["metrics"]["n"] == 48 and out["in_workspace"]["train"] == n_train
    assert out["unseen"] == {"n": 0, "metrics": None}
    text = eval_text(runs_ws, bars, capsys)
    assert "all 48 images are already in the workspace" in text and f"{n_train} in the train split" in text
    assert "images not in the workspace:" not in text


def test_new_photos_get_no_note(runs_ws, bars, tmp_path, capsys):
    folder, _ = mixed(tmp_path, bars, known=0, new=6)
    out = eval_json(runs_ws, folder, capsys)
    assert out["in_workspace"]["n"] == 0 and out["unseen"]["n"] == out["metrics"]["n"] == 6
    text = eval_text(runs_ws, folder, capsys)
    assert "note:" not in text and "already in the workspace" not in text

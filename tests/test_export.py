"""`fingertui export-model`: the whole model as a folder that counts as fingertui does,
run by its own runner with fingertui, torch and textual out of reach."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.realdata import DIGITS, FRAMES, HANDS, needs_datasets, photos, trained_workspace

# Runs the exported folder's run.py with fingertui (and torch, textual) impossible to import.
HIDDEN = """
import importlib.abc, runpy, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("fingertui", "torch", "torchvision", "textual"):
            raise ImportError(name + " is hidden from the runner")
sys.meta_path.insert(0, Hide())
sys.path = [p for p in sys.path if p not in ("", ".")]
folder, *args = sys.argv[1:]
sys.argv = [folder + "/run.py", *args]
runpy.run_path(folder + "/run.py", run_name="__main__")
"""


def export(tmp_path: Path, *extra: str) -> Path:
    from fingertui.cli import main

    dest = tmp_path / "exported"
    assert main(["--home", str(trained_workspace()), "export-model", str(dest), *extra]) == 0
    return dest


def run_hidden(folder: Path, paths: list[str]) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-c", HIDDEN, str(folder), *paths],
        capture_output=True,
        text=True,
        cwd=folder.parent,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_the_copied_runtime_is_fingertuis_own_code():
    """Only import lines naming fingertui may differ: the rest is fingertui's code, byte for byte."""
    import tempfile

    import fingertui
    from fingertui.export import build

    src = Path(fingertui.__file__).parent

    with tempfile.TemporaryDirectory() as tmp:
        names = build.copy_runtime(Path(tmp) / "rt")
        assert {"pooling", "steady", "fingers", "pose", "hands", "streams", "engine"} <= set(names)
        assert len(names) == len(build.RUNTIME_MODULES)
        for dotted, name in zip(build.RUNTIME_MODULES, names, strict=True):
            ours = (src / f"{dotted.replace('.', '/')}.py").read_text().splitlines()
            theirs = (Path(tmp) / "rt" / f"{name}.py").read_text().splitlines()
            assert len(ours) == len(theirs)
            for a, b in zip(ours, theirs, strict=True):
                assert a == b or (re.search(r"\bfrom fingertui\b", a) and re.search(r"\bfrom \.", b)), (name, a, b)
        assert (src / "learn" / "pooling.py").read_bytes() == (Path(tmp) / "rt" / "pooling.py").read_bytes()


@needs_datasets()
def test_the_runner_counts_as_fingertui_predict_does_without_fingertui(tmp_path, capsys):
    from fingertui.cli import main

    folder = export(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["experts"] == ["fingers", "image", "pose"]
    assert manifest["model"]["weights"] and manifest["model"]["unsure_threshold"] > 0
    assert manifest["model"]["experts"]["fingers"]["head_json"]["w"]  # the finger-state head's parameters
    assert {"hands", "pose", "fingers"} <= set(manifest["features"])
    assert (folder / "run.py").is_file() and (folder / "README.md").is_file()
    # photos the model was not trained on: sign-digits, hagrid-rooms frames and hand crops
    sample = [str(p) for p, _ in photos(DIGITS, 2, 1) + photos(FRAMES, 2, 1) + photos(HANDS, 1, 1)]
    capsys.readouterr()
    assert main(["--home", str(trained_workspace()), "predict", "--json", *sample]) == 0
    want = json.loads(capsys.readouterr().out)["predictions"]
    got = run_hidden(folder, sample)
    assert [g["path"] for g in got] == sample
    same = [g["label"] == w["label"] for g, w in zip(got, want, strict=True)]
    assert all(same), [(g["path"], g["label"], w["label"]) for g, w, s in zip(got, want, same, strict=True) if not s]
    diff = max(float(np.abs(np.subtract(g["probs"], w["probs"])).max()) for g, w in zip(got, want, strict=True))
    assert diff < 0.01
    assert [g["hand_found"] for g in got] == [w["hand_found"] for w in want]


@needs_datasets()
def test_counter_loads_an_export_folder_and_counts_as_the_workspace_does(tmp_path):
    from PIL import Image

    from fingertui import Counter

    folder = export(tmp_path)
    a, b = Counter.load(folder), Counter.load(trained_workspace())
    assert a.source.startswith("export")
    for p, _ in photos(DIGITS, 1, 2):
        img = np.asarray(Image.open(p).convert("RGB"))
        ra, rb = a.count(img), b.count(img)
        assert ra.count == rb.count and ra.hand == rb.hand and ra.box == rb.box
        assert np.allclose(ra.probs, rb.probs, atol=0.01)


@needs_datasets()
def test_every_checkpoint_field_reaches_the_manifest_and_the_runner(tmp_path, monkeypatch):
    """A field fingertui's checkpoint gains later (say, the finger patterns seen in training)
    flows into the export without a change to the exporter."""
    from fingertui.data.store import Store
    from fingertui.data.workspace import Workspace
    from fingertui.export.build import export_folder
    from fingertui.learn.model import Model
    from fingertui.runs.records import active_run

    store = Store(Workspace(trained_workspace()))
    run = active_run(store)
    model = Model.for_run(store, run)
    store.close()
    later = {"finger_patterns": {"seen": np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=np.int8), "note": "x"}}
    monkeypatch.setattr(model, "checkpoint", replace(model.checkpoint, extra={**model.checkpoint.extra, **later}))
    export_folder(model, tmp_path / "e", run.id)
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert manifest["model"]["finger_patterns"]["note"] == "x"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from run import ExportedModel; "
        "m = ExportedModel(sys.argv[1]); print(m.meta['finger_patterns']['seen'].tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "e")], capture_output=True, text=True)
    assert out.stdout.strip() == "[[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]", out.stderr[-1000:]


@needs_datasets()
def test_export_refuses_a_folder_with_something_in_it(tmp_path, capsys):
    from fingertui.cli import main

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    assert main(["--home", str(trained_workspace()), "export-model", str(tmp_path / "busy")]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"


@pytest.mark.slow
@needs_datasets()
def test_torchscript_stays_an_option(tmp_path):
    import torch

    from fingertui.cli import main

    dest = tmp_path / "m.pt"
    assert main(["--home", str(trained_workspace()), "export-model", str(dest), "--format", "torchscript"]) == 0
    extra = {"fingertui.json": ""}
    scripted = torch.jit.load(str(dest), _extra_files=extra)
    assert json.loads(extra["fingertui.json"])["classes"] == [0, 1, 2, 3, 4, 5]
    with torch.no_grad():
        p = scripted(torch.rand(1, 3, 120, 120))
    assert p.shape == (1, 6) and abs(float(p.sum()) - 1) < 1e-4


@needs_datasets()
def test_the_runner_follows_a_video_with_the_steady_count(tmp_path):
    from PIL import Image

    from fingertui import Counter
    from tests.test_counter import jittered, write_video

    folder = export(tmp_path)
    c = Counter.load(folder)
    for path, label in photos(DIGITS, 3, 2):
        img = np.asarray(Image.open(path).convert("RGB").resize((240, 240)))
        if c.count(img).count == label:
            break
    write_video(tmp_path / "clip.avi", jittered(img, 20, seed=2))
    lines = run_hidden(folder, ["--video", str(tmp_path / "clip.avi")])
    assert lines[0]["frame"] == 1 and lines[-1]["count"] == label
    assert len(lines) <= 3  # the first frame, the count settling, nothing after

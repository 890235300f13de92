"""`fingertui samples`: every sample's id, label, split and where it came from."""

import json

import numpy as np
import pytest

from fingertui.cli import main
from fingertui.data import catalog
from fingertui.data.capture import CaptureSession
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace
from tests.conftest import noise_image, save

LONG = "a-rather-long-photo-name-from-a-phone-camera-roll-" + "x" * 60 + ".png"


@pytest.fixture
def home(tmp_path):
    """Imported 3s (one with a very long file name), a 5, and an unlabelled capture."""
    src = tmp_path / "photos"
    save(noise_image(1), src / "3" / LONG)
    save(noise_image(2), src / "3" / "b.png")
    save(noise_image(3), src / "5" / "c.png")
    home = tmp_path / "ws"
    assert main(["--home", str(home), "import", str(src)]) == 0
    store = Store(Workspace(home))
    CaptureSession(store).capture(np.asarray(noise_image(4, 64)), None)
    store.close()
    return home


def listed(capsys, *args: str) -> list[str]:  # noqa: ANN001
    capsys.readouterr()
    assert main(["samples", *args]) == 0
    return capsys.readouterr().out.splitlines()


def test_samples_lists_ids_labels_splits_and_whole_origin_names(home, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal (or a pipe) cuts nothing
    lines = listed(capsys, "--home", str(home))
    store = Store(Workspace(home))
    samples = store.samples()
    assert lines[0].split() == ["id", "label", "split", "source", "session", "origin"]
    rows = lines[1:-1]
    assert len(rows) == len(samples) == 4
    for s, line in zip(samples, rows, strict=True):
        cells = line.split()
        assert cells[0] == str(s.id) and cells[1] == ("-" if s.label is None else str(s.label))
        assert cells[2] == (s.split or "-")
    assert any(line.endswith(LONG) for line in rows)  # the whole file name, not cut
    assert "captured in the app" in rows[-1]
    assert lines[-1].startswith("4 samples")


def test_samples_filters_by_label_and_split(home, capsys):
    store = Store(Workspace(home))
    by_id = {s.id: s for s in store.samples()}
    threes = listed(capsys, "--home", str(home), "--label", "three")[1:-1]
    assert {by_id[int(r.split()[0])].label for r in threes} == {3} and len(threes) == 2
    none = listed(capsys, "--home", str(home), "--label", "none")[1:-1]
    assert [by_id[int(r.split()[0])].label for r in none] == [None]
    test = [s.id for s in store.samples() if s.split == "test"]
    rows = listed(capsys, "--home", str(home), "--split", "test")
    if test:
        assert [int(r.split()[0]) for r in rows[1:-1]] == test
    else:
        assert rows == ["no samples match"]


def test_samples_json_has_the_origin_file_name(home, capsys):
    capsys.readouterr()
    assert main(["samples", "--home", str(home), "--json", "--label", "3"]) == 0
    rows = json.loads(capsys.readouterr().out)["samples"]
    assert {r["origin_name"] for r in rows} == {LONG, "b.png"}
    assert all(
        r["label"] == 3 and r["split"] in ("train", "test") and r["origin"].endswith(r["origin_name"]) for r in rows
    )


@pytest.mark.parametrize(
    "args, words",
    [
        (["samples", "--label", "7"], "unknown label '7'"),
        (["samples", "--split", "validation"], "unknown split 'validation'"),
        (["label", "999", "2"], "`fingertui samples` lists the ids"),
        (["label", "abc", "2"], "`fingertui samples` lists them"),
    ],
)
def test_bad_input_is_one_line_exit_2(home, capsys, args, words):
    capsys.readouterr()
    assert main([*args, "--home", str(home)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


def test_gallery_order_is_own_captures_newest_first_then_imports(store):
    session = CaptureSession(store)
    imported = [
        store.add_image(
            png, "png", width=48, height=48, source="import", label=2, split="train", group_key=f"g{k}", phash=None
        ).sample
        for k, png in enumerate(_pngs(2))
    ]
    own = [session.capture(np.asarray(noise_image(40 + k, 64)), 2) for k in range(3)]
    order = [s.id for s in catalog.gallery(store, 2)]
    assert order == [s.id for s in reversed(own)] + [s.id for s in imported]
    assert catalog.gallery(store, 4) == []


def _pngs(n: int) -> list[bytes]:
    from tests.conftest import png_bytes

    return [png_bytes(noise_image(90 + k)) for k in range(n)]

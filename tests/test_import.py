import csv
import json
from pathlib import Path

import pytest

from fingertui.cli import main
from fingertui.data import doctor
from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace
from fingertui.errors import UserError
from tests.conftest import SHARED, needs_shared, noise_image, save


def run_json(capsys, argv):
    capsys.readouterr()
    code = main(argv)
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith("{") else out


def test_digit_folders_import_with_labels(store, labelled_tree):
    report = import_paths(store, [labelled_tree])
    assert report.added == 60 and report.duplicates == 0 and not report.skipped
    counts = store.split_counts()
    for label in range(6):
        assert counts[label]["train"] + counts[label]["test"] == 10
        assert 1 <= counts[label]["test"] <= 3  # about 20% of each class
    s = store.samples()[0]
    assert store.ws.abs(s.path).read_bytes() == Path(s.origin).read_bytes()


def test_word_folders_case_insensitive(store, tmp_path):
    for i, word in enumerate(["Zero", "one", "TWO", "three", "Four", "five"]):
        save(noise_image(i), tmp_path / "words" / word / "a.png")
    import_paths(store, [tmp_path / "words"])
    assert sorted(s.label for s in store.samples()) == [0, 1, 2, 3, 4, 5]


def test_reimport_is_noop_that_says_so(store, labelled_tree, capsys):
    import_paths(store, [labelled_tree])
    before = [(s.id, s.label, s.split) for s in store.samples()]
    report = import_paths(store, [labelled_tree])
    assert (report.added, report.duplicates) == (0, 60)
    assert [(s.id, s.label, s.split) for s in store.samples()] == before


def test_seed_project_layout_keeps_splits(store, tmp_path):
    root = tmp_path / "seed" / "data"
    seed = 0
    for split in ("train", "val", "test"):
        for word in ("one", "two", "three", "four", "five"):
            for k in range(3):
                seed += 1
                save(noise_image(seed), root / split / word / f"{k}.png")
    report = import_paths(store, [root])
    assert report.added == 45
    by_origin = {Path(s.origin).relative_to(root.resolve()).parts[0]: set() for s in store.samples()}
    for s in store.samples():
        by_origin[Path(s.origin).relative_to(root.resolve()).parts[0]].add(s.split)
    assert by_origin == {"train": {"train"}, "val": {"train"}, "test": {"test"}}
    assert {s.label for s in store.samples()} == {1, 2, 3, 4, 5}


def test_unknown_folder_is_an_error_naming_it_and_nothing_is_imported(tmp_path, labelled_tree, capsys):
    save(noise_image(999), labelled_tree / "six" / "x.png")
    home = tmp_path / "h"
    assert main(["--home", str(home), "import", str(labelled_tree)]) == 2
    err = capsys.readouterr().err
    assert "'six'" in err and "zero" in err and len(err.strip().splitlines()) == 1
    assert Store(Workspace(home)).count() == 0
    assert main(["--home", str(home), "import", str(labelled_tree), "--skip-unknown"]) == 0
    assert Store(Workspace(home)).count() == 60


def test_missing_path_is_one_line_exit_2(tmp_path, capsys):
    assert main(["--home", str(tmp_path), "import", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope" in err and "no such file" in err and "\n" not in err


def test_corrupt_truncated_and_non_image_files_are_skipped_and_reported(store, labelled_tree):
    good = (labelled_tree / "1" / "img0.png").read_bytes()
    (labelled_tree / "1" / "truncated.png").write_bytes(good[: len(good) // 2])
    (labelled_tree / "2" / "garbage.jpg").write_bytes(b"this is not a jpeg")
    (labelled_tree / "2" / "notes.txt").write_text("hello")
    (labelled_tree / "3" / "empty.png").write_bytes(b"")
    report = import_paths(store, [labelled_tree])
    assert report.added == 60
    skipped = {Path(p).name: why for p, why in report.skipped}
    assert set(skipped) == {"truncated.png", "garbage.jpg", "notes.txt", "empty.png"}
    assert "not an image" in skipped["notes.txt"] and "unreadable" in skipped["truncated.png"]
    assert doctor.check(store, fix=False).healthy


def test_label_option_for_flat_folder_and_unlabeled(store, tmp_path):
    for k in range(4):
        save(noise_image(k), tmp_path / "flat" / f"{k}.png")
        save(noise_image(50 + k), tmp_path / "pool" / f"{k}.png")
    import_paths(store, [tmp_path / "flat"], label=2)
    import_paths(store, [tmp_path / "pool"], unlabeled=True)
    labels = sorted((s.label is None, s.label, s.split is None) for s in store.samples())
    assert labels[:4] == [(False, 2, False)] * 4
    assert labels[4:] == [(True, None, True)] * 4


def test_flat_folder_without_label_is_an_error(store, tmp_path):
    save(noise_image(1), tmp_path / "flat" / "a.png")
    with pytest.raises(UserError, match="--label N"):
        import_paths(store, [tmp_path / "flat"])


def test_unknown_label_option(tmp_path, labelled_tree, capsys):
    assert main(["--home", str(tmp_path), "import", str(labelled_tree), "--label", "7"]) == 2
    assert "unknown label '7'" in capsys.readouterr().err


def test_export_import_round_trip(tmp_path, labelled_tree, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    main(["--home", str(a), "import", str(labelled_tree)])
    save(noise_image(777), tmp_path / "pool" / "u.png")
    main(["--home", str(a), "import", str(tmp_path / "pool"), "--unlabeled"])
    code, out = run_json(capsys, ["--home", str(a), "export", str(tmp_path / "exp"), "--json"])
    assert code == 0 and out["written"] == 61
    rows = list(csv.DictReader(open(tmp_path / "exp" / "labels.csv")))
    assert len(rows) == 61 and set(rows[0]) >= {"path", "label", "split", "sha256"}
    assert main(["--home", str(b), "import", str(tmp_path / "exp")]) == 0
    first = {s.sha256: (s.label, s.split) for s in Store(Workspace(a)).samples()}
    second = {s.sha256: (s.label, s.split) for s in Store(Workspace(b)).samples()}
    assert first == second


def test_export_refuses_non_empty_folder(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    assert main(["--home", str(tmp_path / "h"), "export", str(tmp_path / "full")]) == 2
    assert (tmp_path / "full" / "x").read_text() == "keep me"


def test_json_shapes(tmp_path, labelled_tree, capsys):
    home = ["--home", str(tmp_path / "h")]
    code, imp = run_json(capsys, [*home, "import", str(labelled_tree), "--json"])
    assert code == 0
    assert set(imp) == {"added", "duplicates", "skipped", "skipped_examples", "added_by_label"}
    assert set(imp["added_by_label"]) == {"0", "1", "2", "3", "4", "5"}
    code, st = run_json(capsys, [*home, "stats", "--json"])
    assert set(st) == {"labels", "total", "sessions", "warnings"}
    assert st["labels"]["3"]["total"] == 10 and set(st["labels"]["3"]) == {"train", "test", "total"}
    assert st["total"]["all"] == 60
    assert any("fewer" in w or "only 10" in w for w in st["warnings"])
    code, doc = run_json(capsys, [*home, "doctor", "--json"])
    assert code == 0 and doc["healthy"] is True
    assert {"healthy", "orphans", "quarantined", "missing", "corrupt", "trash", "orphan_models"} <= set(doc)


def test_stats_warns_about_imbalance_and_missing_test(store, tmp_path):
    from fingertui.data.stats import dataset_stats

    for k in range(25):
        save(noise_image(k), tmp_path / "t" / "1" / f"{k}.png")
    save(noise_image(500), tmp_path / "t" / "2" / "a.png")
    import_paths(store, [tmp_path / "t"])
    w = " | ".join(dataset_stats(store)["warnings"])
    assert "class 2 has only 1" in w and "class 2 has no test images" in w and "imbalanced" in w


@needs_shared()
def test_shared_sign_digits_import(store):
    report = import_paths(store, [SHARED])
    assert report.added == 1237 and not report.skipped
    counts = store.split_counts()
    for label in range(6):
        n = counts[label]["train"] + counts[label]["test"]
        assert 205 <= n <= 207
        assert 0.15 <= counts[label]["test"] / n <= 0.25

"""Odd input never gets a traceback: one line on stderr, exit 2 (or the right answer)."""

import io
import json
import math
import zipfile

import numpy as np
import pytest

from fingertui.cli import main
from fingertui.cli.tables import print_table, safe_text
from fingertui.data.store import Store, now_iso
from fingertui.data.workspace import Workspace
from fingertui.errors import UserError
from fingertui.labels import try_parse_label
from fingertui.learn.checkpoint import FORMAT, META_KEY, Checkpoint, save_fields
from fingertui.learn.linear import LinearHead
from tests.conftest import noise_image, save
from tests.test_bad_input import one_line_exit_2

BIG = str(2**63)
HUGE = str(2**64)


@pytest.fixture
def home(tmp_path):
    src = tmp_path / "photos"
    for k in range(3):
        save(noise_image(k), src / str(k + 1) / f"{k}.png")
    h = tmp_path / "ws"
    assert main(["--home", str(h), "import", str(src)]) == 0
    return h


# --- labels and ids ---------------------------------------------------------------------


def test_unicode_digits_are_not_labels():
    for text in ("²", "³", "٣", "३", "①", "𝟑"):
        assert try_parse_label(text) is None


@pytest.mark.parametrize(
    "argv",
    [["label", "1", "²"], ["samples", "--label", "²"], ["review", "--label", "٣"], ["import", "--label", "²", "x"]],
)
def test_unicode_digit_labels_on_the_command_line(home, capsys, argv):
    capsys.readouterr()
    one_line_exit_2(capsys, ["--home", str(home), *argv], "unknown label")


def test_a_folder_named_with_a_unicode_digit(tmp_path, capsys):
    save(noise_image(1), tmp_path / "tree" / "²" / "a.png")
    one_line_exit_2(capsys, ["--home", str(tmp_path / "ws"), "import", str(tmp_path / "tree")], "not a label")


@pytest.mark.parametrize(
    "argv",
    [
        ["label", BIG, "3"],
        ["label", HUGE, "--confirm"],
        ["label", "-" + HUGE, "3"],
        ["delete", BIG],
        ["runs", "activate", BIG],
        ["runs", "compare", "1", HUGE],
        ["eval", "--run", BIG],
        ["predict", "--run", HUGE, "PHOTO"],
        ["export-model", "--run", BIG, "out.pt"],
    ],
)
def test_ids_beyond_sqlite_integers(home, capsys, argv):
    photo = next(home.glob("data/images/*/*.png"))
    argv = [str(photo) if a == "PHOTO" else a for a in argv]
    one_line_exit_2(capsys, ["--home", str(home), *argv])


def test_train_seed_is_checked_before_training(home, capsys, monkeypatch):
    import fingertui.train.pipeline as pipeline

    def never(*a, **k):
        raise AssertionError("trained with a seed that cannot be recorded")

    monkeypatch.setattr(pipeline, "train", never)
    for seed in (HUGE, str(2**63), "-1"):
        one_line_exit_2(capsys, ["--home", str(home), "train", "--seed", seed], "--seed")


# --- user text printed as text ----------------------------------------------------------------


def test_tables_print_markup_and_escapes_as_text():
    from rich.console import Console

    buf = io.StringIO()
    out = Console(file=buf, width=200)
    print_table(
        out, ["id", "from"], [["1", "a[/b].jpg"], ["2", "x[copy].png"], ["3", "e\x1b[31mvil.png"]], whole={"id"}
    )
    text = buf.getvalue()
    assert "a[/b].jpg" in text and "x[copy].png" in text
    assert "\x1b" not in text and "e\\x1b[31mvil.png" in text


def test_review_with_markup_in_a_file_name(runs_ws, capsys):
    s = Store(runs_ws)
    with s.transaction() as db:
        db.execute("UPDATE samples SET origin = '/photos/a[/b].jpg'")
    s.close()
    assert main(["--home", str(runs_ws.root), "review"]) == 0
    out = capsys.readouterr().out
    assert "a[/b].jpg" in out


def test_import_and_samples_print_odd_names_as_they_are(tmp_path, capsys):
    tree = tmp_path / "tree"
    save(noise_image(1), tree / "3" / "a[" / "b].png")
    save(noise_image(2), tree / "3" / "x[copy].png")
    save(noise_image(3), tree / "3" / "e\x1b[31mvil.png")
    (tree / "3" / "notes[copy].txt").write_text("x")
    (tree / "3" / "bell\x07.txt").write_text("x")
    ws = tmp_path / "ws"
    assert main(["--home", str(ws), "import", str(tree)]) == 0
    out = capsys.readouterr().out
    assert "notes[copy].txt" in out and "\x07" not in out and "bell\\x07.txt" in out
    assert main(["--home", str(ws), "samples"]) == 0
    out = capsys.readouterr().out
    assert "a[/b].png" in out and "x[copy].png" in out
    assert "\x1b" not in out and "e\\x1b[31mvil.png" in out
    assert safe_text("ok²") == "ok²"


# --- damaged rows -----------------------------------------------------------------------------


def test_an_unknown_journal_op_breaks_no_command(home, capsys):
    s = Store(Workspace(home))
    with s.transaction() as db:
        db.execute("INSERT INTO journal (op, payload, created) VALUES ('explode', '{}', ?)", [now_iso()])
        db.execute("INSERT INTO journal (op, payload, created) VALUES ('add', 'not json', ?)", [now_iso()])
    s.close()
    for argv in (["stats"], ["samples"], ["label", "1", "4"], ["undo"]):
        assert main(["--home", str(home), *argv]) == 0
    assert main(["--home", str(home), "doctor"]) == 1
    out = capsys.readouterr().out
    assert "unknown operation 'explode'" in out and "not a JSON object" in out


def test_non_json_run_metrics(runs_ws, capsys):
    s = Store(runs_ws)
    with s.transaction() as db:
        db.execute("UPDATE runs SET metrics = 'not json {' WHERE id = 1")
    s.close()
    home = str(runs_ws.root)
    assert main(["--home", home, "runs"]) == 0
    out = capsys.readouterr().out
    assert "run 1" in out and "damaged" in out
    assert main(["--home", home, "review"]) == 0
    capsys.readouterr()
    one_line_exit_2(capsys, ["--home", home, "runs", "activate", "1"], "damaged")
    # The active run itself damaged: predict and review say so in one line.
    s = Store(runs_ws)
    with s.transaction() as db:
        db.execute("UPDATE runs SET metrics = '[1, 2]' WHERE id = 2")
    s.close()
    photo = next(runs_ws.root.glob("data/images/*/*.png"))
    one_line_exit_2(capsys, ["--home", home, "predict", str(photo)], "damaged")
    one_line_exit_2(capsys, ["--home", home, "review"], "damaged")
    assert main(["--home", home, "runs", "--json"]) == 0


# --- checkpoints -------------------------------------------------------------------------------


def checkpoint(**change) -> dict:
    head = LinearHead(np.zeros(4), np.ones(4), np.full((6, 4), 0.1), np.zeros(6))
    ckpt = {
        "format": FORMAT,
        "classes": list(range(6)),
        "features": "image",
        "experts": {
            "image": {
                "backbone": "x",
                "head": {"kind": "linear", "dim": 4},
                "head_state": head.state(),
                "framing": None,
            }
        },
        "weights": {"image": 1.0},
        "temperature": 1.0,
        "image_temperature": 1.0,
        "unsure_threshold": 0.5,
    }
    ckpt.update(change)
    return ckpt


def test_a_sound_checkpoint_loads(tmp_path):
    save_fields(tmp_path / "ok.npz", checkpoint())
    assert Checkpoint.load(tmp_path / "ok.npz").weights == {"image": 1.0}


@pytest.mark.parametrize(
    "change",
    [
        {"weights": None},
        {"weights": {"image": "heavy"}},
        {"weights": [1.0, 2.0]},
        {"weights": {"image": math.nan}},
        {"weights": {"image": math.inf}},
        {"weights": {"image": True}},
    ],
)
def test_bad_pooling_weights_are_refused(tmp_path, change):
    ckpt = checkpoint(**change)
    if change["weights"] is None:
        del ckpt["weights"]
    save_fields(tmp_path / "bad.npz", ckpt)
    with pytest.raises(UserError, match="damaged"):
        Checkpoint.load(tmp_path / "bad.npz")


def test_nan_head_weights_are_refused(tmp_path):
    ckpt = checkpoint()
    state = ckpt["experts"]["image"]["head_state"]
    key = next(k for k, v in state.items() if isinstance(v, np.ndarray) and v.size)
    state[key] = np.full_like(state[key], np.nan, dtype=float)
    save_fields(tmp_path / "nan.npz", ckpt)
    with pytest.raises(UserError, match="damaged"):
        Checkpoint.load(tmp_path / "nan.npz")


def _bomb(path, n_bytes: int, declared: int | None = None) -> None:
    """A checkpoint whose one array member inflates to ``n_bytes`` of zeros."""
    meta = io.BytesIO()
    np.lib.format.write_array(meta, np.array(json.dumps(checkpoint(weights={"image": 1.0}) | {"experts": {}})))
    header = io.BytesIO()
    count = (declared if declared is not None else n_bytes) // 8
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (count,)})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{META_KEY}.npy", meta.getvalue())
        with z.open("a0.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(n_bytes >> 20):
                f.write(chunk)


def test_a_zip_bomb_is_refused_before_it_is_read(tmp_path, monkeypatch):
    _bomb(tmp_path / "bomb.npz", 96 << 20)
    assert (tmp_path / "bomb.npz").stat().st_size < 1 << 20

    def no_reading(*a, **k):
        raise AssertionError("a member was read")

    monkeypatch.setattr(np.lib.format, "read_array", no_reading)
    with pytest.raises(UserError, match="too large"):
        Checkpoint.load(tmp_path / "bomb.npz")


def test_an_array_header_larger_than_its_member_is_refused(tmp_path):
    _bomb(tmp_path / "liar.npz", 1 << 20, declared=1 << 40)
    with pytest.raises(UserError):
        Checkpoint.load(tmp_path / "liar.npz")


# --- environment ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "nan", "-1", "inf"])
def test_lock_wait_that_is_not_a_number(home, capsys, monkeypatch, value):
    monkeypatch.setenv("FINGERTUI_LOCK_WAIT_S", value)
    one_line_exit_2(capsys, ["--home", str(home), "label", "1", "4"], "FINGERTUI_LOCK_WAIT_S")


def test_home_with_an_unknown_user(monkeypatch, capsys):
    monkeypatch.setenv("FINGERTUI_HOME", "~nouser-fingertui/x")
    one_line_exit_2(capsys, ["stats"], "FINGERTUI_HOME")
    one_line_exit_2(capsys, ["--home", "~nouser-fingertui/x", "stats"], "--home")


def test_an_import_tree_deeper_than_the_recursion_limit(tmp_path, capsys):
    import os
    import sys

    deep = str(tmp_path / "tree" / "3")
    os.makedirs(deep)
    levels = [deep]
    try:
        for _ in range(sys.getrecursionlimit() + 100):  # (os.makedirs itself recurses)
            levels.append(levels[-1] + "/a")
            os.mkdir(levels[-1])
        noise_image(1).save(levels[-1] + "/x.png")
        assert main(["--home", str(tmp_path / "ws"), "import", str(tmp_path / "tree")]) == 0
        assert "added 1" in capsys.readouterr().out
    finally:  # bottom-up: pytest's own clean-up (shutil.rmtree) recurses and would fail
        for level in reversed(levels):
            for f in os.listdir(level):
                if not os.path.isdir(os.path.join(level, f)):
                    os.unlink(os.path.join(level, f))
            os.rmdir(level)

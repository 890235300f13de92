"""Bad input: one line on stderr, exit 2, nothing changed — never a traceback."""

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fingertui.cli import main
from fingertui.data.images import decode, open_rgb
from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace
from fingertui.errors import UserError
from tests.conftest import noise_image, save

ROOT = Path(__file__).resolve().parents[1]


def one_line_exit_2(capsys, argv, *needles):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    # Progress lines may precede it; the error itself is one line.
    assert [ln for ln in err.splitlines() if not ln.startswith("  ")] == [err.splitlines()[-1]], err
    assert err.splitlines()[-1].startswith("fingertui: error:") and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


@pytest.fixture
def home(tmp_path, labelled_tree):
    h = tmp_path / "home"
    assert main(["--home", str(h), "import", str(labelled_tree)]) == 0
    return h


def snapshot(h: Path) -> dict:
    return {str(p.relative_to(h)): p.stat().st_size for p in h.rglob("*") if p.is_file() and "db" not in p.parts}


def test_home_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    one_line_exit_2(capsys, ["--home", str(f), "stats"], "is a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_home_read_only(tmp_path, capsys, home):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        # Only a command that writes makes a workspace (a reading one says there is none).
        (ro / "src").mkdir()
        one_line_exit_2(capsys, ["--home", str(ro / "new"), "import", str(ro / "src")], "cannot create a workspace")
    finally:
        ro.chmod(0o755)


def test_read_only_workspace_reads_and_refuses_writes(home, capsys, monkeypatch):
    # Root ignores permissions, so the read-only check is simulated through os.access.
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **k: False if m == os.W_OK else real(p, m, **k))
    before = snapshot(home)
    assert main(["--home", str(home), "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["all"] == 60
    one_line_exit_2(capsys, ["--home", str(home), "delete", "1"], "read-only")
    assert main(["--home", str(home), "doctor"]) == 0  # checks, moves nothing, says so
    assert "read-only" in capsys.readouterr().out
    assert snapshot(home) == before


def test_export_into_a_file(home, tmp_path, capsys):
    f = tmp_path / "out.txt"
    f.write_text("keep")
    one_line_exit_2(capsys, ["--home", str(home), "export", str(f)], "is a file")
    assert f.read_text() == "keep"


def test_empty_folder_import_says_no_images(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    one_line_exit_2(capsys, ["--home", str(tmp_path / "h"), "import", str(tmp_path / "empty")], "found no images")


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "missing"])
def test_damaged_index_every_command_and_doctor_give_working_advice(home, capsys, damage):
    db = home / "db" / "fingertui.db"
    for extra in home.glob("db/fingertui.db-*"):
        extra.unlink()
    if damage == "garbage":
        db.write_bytes(os.urandom(8192))
    elif damage == "truncated":
        db.write_bytes(db.read_bytes()[:1000])
    elif damage == "empty":
        db.write_bytes(b"")
    else:
        db.unlink()
    before = snapshot(home)
    err = one_line_exit_2(capsys, ["--home", str(home), "stats"], "doctor --restore")
    one_line_exit_2(capsys, ["--home", str(home), "doctor"], "doctor --restore")
    assert snapshot(home) == before  # doctor refused to touch a single file
    assert "nothing was changed" in err
    # The advice works: the newest backup (taken after the import) brings every label back.
    assert main(["--home", str(home), "doctor", "--restore"]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["labelled"] == 60


def test_missing_index_without_backup_reindexes_unlabelled(home, capsys):
    for f in (home / "data" / "backups").iterdir():
        f.unlink()
    (home / "db" / "fingertui.db").unlink()
    one_line_exit_2(capsys, ["--home", str(home), "doctor"], "doctor --reindex")
    assert main(["--home", str(home), "doctor", "--reindex"]) == 0
    capsys.readouterr()
    s = Store(Workspace(home))
    assert s.count() == 60 and s.unlabelled_count() == 60
    s.close()


@pytest.mark.slow
def test_disk_full_from_sqlite_is_one_line(home, capsys, monkeypatch):
    real_init = Store.__init__

    def tiny(self, *a, **k):
        real_init(self, *a, **k)
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        self.db.execute(f"PRAGMA max_page_count = {pages}")

    monkeypatch.setattr(Store, "__init__", tiny)
    more = home.parent / "more"
    for k in range(40):
        save(noise_image(900 + k, 256), more / "2" / f"{k}.png")
    one_line_exit_2(capsys, ["--home", str(home), "import", str(more)], "disk full")


@pytest.mark.slow
def test_json_into_a_closed_pipe(home):
    cmd = f"{sys.executable} -m fingertui --home {home} stats --json | head -c 1 >/dev/null; exit ${{PIPESTATUS[0]}}"
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "Traceback" not in r.stderr and r.returncode in (0, 2), r.stderr


@pytest.mark.slow
def test_eval_on_an_unreadable_folder_is_an_error_not_nan(home, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FINGERTUI_DEV_RANDOM_BACKBONE", "1")
    assert main(["--home", str(home), "train", "--backbone", "dev-random", "--json"]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad" / "3"
    bad.mkdir(parents=True)
    (bad / "a.png").write_bytes(b"not an image")
    one_line_exit_2(capsys, ["--home", str(home), "eval", str(tmp_path / "bad")], "could be read")
    # A header claiming 50000×50000: refused before decoding, in predict too.
    huge = tmp_path / "huge.png"
    huge.write_bytes(_png_header(50000, 50000))
    one_line_exit_2(capsys, ["--home", str(home), "predict", str(huge)], "megapixels")
    # A stored image gone missing before it was ever embedded: train says what to do.
    save(noise_image(4242), tmp_path / "new" / "2" / "x.png")
    assert main(["--home", str(home), "import", str(tmp_path / "new")]) == 0
    capsys.readouterr()
    s = Store(Workspace(home))
    victim = s.samples()[-1]
    s.close()
    (home / victim.path).unlink()
    one_line_exit_2(capsys, ["--home", str(home), "train", "--backbone", "dev-random"], "doctor")


def _png_header(w: int, h: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.mark.slow
@pytest.mark.parametrize(
    "change,message",
    [
        (lambda c: c["head"].update(kind="transformer"), "head kind"),
        (lambda c: c.pop("temperature"), "temperature"),
        (lambda c: c.update(temperature="hot"), "temperature"),
        (lambda c: c.update(backbone=None), "backbone"),
        (lambda c: c["head"].update(dim=10**9), "dim"),
    ],
)
def test_checkpoint_with_right_tag_but_bad_fields(tmp_path, change, message):
    import torch

    from fingertui.labels import CLASSES
    from fingertui.learn.checkpoint import FORMAT_V1 as FORMAT
    from fingertui.learn.checkpoint import Checkpoint

    ckpt = {
        "format": FORMAT,
        "classes": list(CLASSES),
        "head": {"kind": "linear", "dim": 8, "hidden": 4},
        "head_state": {},
        "backbone": "dev-random@0",
        "temperature": 1.0,
        "unsure_threshold": 0.5,
    }
    change(ckpt)
    p = tmp_path / "c.pt"
    torch.save(ckpt, p)
    with pytest.raises(UserError, match=message):
        Checkpoint.load(p)


# --- pixels -----------------------------------------------------------------------------


def _bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_sixteen_bit_png_is_scaled_not_white():
    grad = (np.arange(64, dtype=np.uint16)[None, :].repeat(8, 0) * 1000).astype(np.uint16)
    rgb = open_rgb(_bytes(Image.fromarray(grad)))
    assert rgb[0, 0].tolist() == [0, 0, 0] and 200 < rgb[0, -1, 0] < 255  # a gradient, not white
    assert rgb[0, 10, 0] == (10 * 1000) >> 8


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (60, 20), (0, 0, 0))
    img.paste((255, 0, 0), (0, 0, 10, 20))  # red on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: a viewer turns it 90° clockwise
    d = decode(_bytes(img, "JPEG", exif=exif))
    assert d.rgb.shape == (60, 20, 3) and (d.width, d.height) == (20, 60)
    assert d.rgb[2, 10, 0] > 200 and d.rgb[-3, 10, 0] < 80  # red now on top


@pytest.mark.parametrize("mode", ["CMYK", "P", "LA", "I;16", "L", "1", "RGBA", "I", "F"])
def test_every_mode_becomes_rgb(mode):
    img = Image.new(mode, (16, 12))
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode in ("I", "F") else "PNG"
    rgb = open_rgb(_bytes(img, fmt))
    assert rgb.shape == (12, 16, 3) and rgb.dtype == np.uint8


def test_transparent_is_on_white_and_palette_keeps_colours():
    assert open_rgb(_bytes(Image.new("LA", (4, 4), (0, 0))))[0, 0].tolist() == [255, 255, 255]
    p = Image.new("RGB", (4, 4), (200, 30, 10)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert open_rgb(_bytes(p))[0, 0].tolist() == [200, 30, 10]


def test_eps_named_jpg_is_never_handed_to_ghostscript(tmp_path, store):
    eps = tmp_path / "x" / "3" / "hand.jpg"
    eps.parent.mkdir(parents=True)
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    save(noise_image(1), tmp_path / "x" / "3" / "ok.png")
    report = import_paths(store, [tmp_path / "x"])
    assert report.added == 1 and "not a supported image" in report.skipped[0][1]


def test_huge_header_is_refused_before_decoding(tmp_path, store):
    (tmp_path / "h" / "2").mkdir(parents=True)
    (tmp_path / "h" / "2" / "bomb.png").write_bytes(_png_header(50000, 50000))
    save(noise_image(2), tmp_path / "h" / "2" / "ok.png")
    report = import_paths(store, [tmp_path / "h"])
    assert report.added == 1 and "megapixels" in report.skipped[0][1]


def test_large_image_is_downscaled_for_the_model_but_stored_whole(tmp_path, store):
    big = Image.new("RGB", (3000, 1500), (10, 200, 30))
    save(big, tmp_path / "b" / "1" / "big.png")
    report = import_paths(store, [tmp_path / "b"])
    [s] = store.samples()
    assert report.added == 1 and (s.width, s.height) == (3000, 1500)
    assert Image.open(store.ws.abs(s.path)).size == (3000, 1500)  # the original, unchanged
    assert max(open_rgb(store.ws.abs(s.path)).shape) <= 1024


def test_flat_unlabelled_folder_is_not_one_group(tmp_path, store):
    for k in range(10):
        save(noise_image(300 + k), tmp_path / "flat" / f"{k}.png")
    import_paths(store, [tmp_path / "flat"], unlabeled=True)
    groups = {s.group_key for s in store.samples()}
    assert len(groups) == 10  # distinct images: distinct groups, so some can reach test
    for s in store.samples():
        store.set_label(s.id, 1)
    assert {s.split for s in store.samples()} == {"train", "test"}


def test_doctor_json_has_no_nan(home, capsys):
    assert main(["--home", str(home), "doctor", "--json"]) == 0
    json.loads(capsys.readouterr().out)


def test_unlabelled_shots_of_one_burst_share_a_split_by_their_capture_times(tmp_path, store):
    # Four bursts of five different-looking JPEGs, shots 0.3 s apart on the camera's clock,
    # bursts a minute apart; copied, so file times say nothing. Only EXIF tells the bursts.
    for b in range(4):
        for k in range(5):
            exif = Image.Exif()
            sub = exif.get_ifd(0x8769)
            sub[0x9003] = f"2026:11:29 10:{10 + b:02d}:0{(k * 3) // 10}"
            sub[0x9291] = str((k * 3) % 10)
            path = tmp_path / "flat" / f"b{b}_{k}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            noise_image(500 + 10 * b + k).save(path, format="JPEG", exif=exif)
    import_paths(store, [tmp_path / "flat"], unlabeled=True)
    by_burst: dict[str, set] = {}
    for s in store.samples():
        by_burst.setdefault(s.origin.rsplit("/", 1)[1].split("_")[0], set()).add(s.group_key)
    assert len(by_burst) == 4 and all(len(keys) == 1 for keys in by_burst.values())
    assert len({next(iter(keys)) for keys in by_burst.values()}) == 4  # four groups, not one
    for s in store.samples():
        store.set_label(s.id, 1)
    splits_by_burst: dict[str, set] = {}
    for s in store.samples():
        splits_by_burst.setdefault(s.origin.rsplit("/", 1)[1].split("_")[0], set()).add(s.split)
    assert all(len(v) == 1 for v in splits_by_burst.values())


@pytest.mark.parametrize("views", ["-1", "17"])
def test_train_with_an_impossible_view_count_says_so_and_trains_nothing(home, capsys, views):
    before = snapshot(home)
    one_line_exit_2(capsys, ["--home", str(home), "train", "--views", views], "--views", "0 to 16")
    assert snapshot(home) == before

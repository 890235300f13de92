import subprocess
import sys

from fingertui import __version__

HEAVY = ("torch", "cv2", "textual")


def test_help_and_version_do_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "from fingertui.cli import main\n"
        "for argv in (['--help'], ['--version']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"fingertui {__version__}" in out
    assert out.strip().splitlines()[-1] == "[]"


def test_core_does_not_import_textual():
    code = (
        "import sys\n"
        "import fingertui.data.store, fingertui.data.importer, fingertui.data.export, fingertui.data.stats, fingertui.data.doctor\n"
        "import fingertui.runs.records, fingertui.review.queue, fingertui.review.flags, fingertui.live.camera, fingertui.data.capture, fingertui.live.demo, fingertui.learn.heads\n"
        "print('textual' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_home_option_before_or_after_command(tmp_path, labelled_tree, capsys):
    from fingertui.cli import main

    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["--home", str(a), "import", str(labelled_tree)]) == 0
    assert main(["import", str(labelled_tree), "--home", str(b)]) == 0
    assert (a / "db" / "fingertui.db").exists() and (b / "db" / "fingertui.db").exists()


def test_home_from_environment(tmp_path, labelled_tree, monkeypatch):
    from fingertui.cli import main

    monkeypatch.setenv("FINGERTUI_HOME", str(tmp_path / "envhome"))
    assert main(["import", str(labelled_tree)]) == 0
    assert (tmp_path / "envhome" / "db" / "fingertui.db").exists()

"""Progress of `fingertui train` and `import`: on a terminal one bar (train's with the run's
time left); piped a few lines for train, not one per image, none for import; nothing in
--json mode."""

import itertools

from fingertui.cli.progress import ProgressDisplay
from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace


def train_display(enabled: bool, live: bool | None = None, expected: dict[str, float] | None = None) -> ProgressDisplay:
    return ProgressDisplay("training", enabled=enabled, first_phase="loading model", live=live, expected=expected)


def test_piped_train_prints_a_few_lines_not_one_per_image(capsys):
    now = [0.0]
    expected = {"loading model": 3.0, "embedding": 60.0, "training image": 5.0}
    with train_display(True, live=False, expected=expected) as report:
        report.clock = lambda: now[0]
        report("loading model", 0, 1)
        now[0] = 4.0
        report("loading model", 1, 1)
        for k in range(601):  # 600 images, 0.1 s each
            report("embedding", k, 600)
            now[0] += 0.1
        for phase in ("training image", "calibrating", "evaluating", "recording"):
            report(phase, 0, 1)
            now[0] += 0.01
    lines = capsys.readouterr().err.splitlines()
    # The phases that took a while, each once, with how long and the time left after it;
    # one progress line every 30 s of a long phase; indented, so an error stays the one
    # unindented line.
    assert lines[0].startswith("  loading model: 4 s (about ") and lines[0].endswith(" s left)")
    assert "  embedding 600/600: 60 s (about 5 s left)" in lines
    assert any(line.startswith("  embedding 3") and line.endswith("left") for line in lines)  # at 30 s
    assert not any(line.startswith("  calibrating") for line in lines)  # a quick phase says nothing
    assert all(line.startswith("  ") for line in lines) and len(lines) <= 4


def test_json_mode_prints_no_progress(capsys):
    with train_display(False) as report:
        for phase in ("loading model", "embedding"):
            report(phase, 1, 1)
    assert capsys.readouterr().err == ""


def test_live_bar_follows_the_phase_and_shows_the_time_left():
    with train_display(True, live=True, expected={"embedding": 40.0, "training image": 5.0}) as report:
        report("embedding", 0, 40)
        report("embedding", 10, 40)
        assert report.bar is not None
        task = report.bar.tasks[0]
        assert (task.description, task.completed, task.total) == ("embedding", 10, 40)
        assert task.fields["left"].endswith("left")
        report("training image", 3, 300)  # a new phase starts its own count
        task = report.bar.tasks[0]
        assert (task.description, task.completed, task.total) == ("training image", 3, 300)


def test_import_reports_through_the_one_progress_type_and_its_bar_counts_every_step(tmp_path, labelled_tree):
    heard: list[tuple[str, int, int]] = []
    report = import_paths(Store(Workspace(tmp_path / "ws")), [labelled_tree], progress=lambda *a: heard.append(a))
    steps = heard[-1][2]
    assert steps >= 2 * report.added > 0  # reading and storing each image: two steps
    assert {phase for phase, _, _ in heard} == {"importing"}
    assert heard[-1] == ("importing", steps, steps)
    assert [k for _, k, _ in heard] == sorted(k for _, k, _ in heard)  # never goes back
    with ProgressDisplay("importing", enabled=True, show_phase=False, live=True) as bar:
        for call in heard:
            bar(*call)
        assert bar.bar is not None
        task = bar.bar.tasks[0]
        assert (task.completed, task.total) == (steps, steps)


def test_piped_import_prints_no_progress(capsys, tmp_path, labelled_tree):
    with ProgressDisplay("importing", enabled=True, show_phase=False, live=False, piped_lines=False) as bar:
        bar.clock = itertools.count(0.0, 10.0).__next__  # each step takes 10 s: long enough to be told
        import_paths(Store(Workspace(tmp_path / "ws")), [labelled_tree], progress=bar)
    assert capsys.readouterr().err == ""

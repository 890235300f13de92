"""`fingertui train` progress: on a terminal one bar with the run's time left; piped a few
lines, not one per image; nothing in --json mode."""

from fingertui.cli import _progress_printer


def test_piped_train_prints_a_few_lines_not_one_per_image(capsys):
    now = [0.0]
    expected = {"loading model": 3.0, "embedding": 60.0, "training image": 5.0}
    with _progress_printer(True, live=False, expected=expected) as report:
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
    with _progress_printer(False) as report:
        for phase in ("loading model", "embedding"):
            report(phase, 1, 1)
    assert capsys.readouterr().err == ""


def test_live_bar_follows_the_phase_and_shows_the_time_left():
    with _progress_printer(True, live=True, expected={"embedding": 40.0, "training image": 5.0}) as report:
        report("embedding", 0, 40)
        report("embedding", 10, 40)
        task = report.bar.tasks[0]
        assert (task.description, task.completed, task.total) == ("embedding", 10, 40)
        assert task.fields["left"].endswith("left")
        report("training image", 3, 300)  # a new phase starts its own count
        task = report.bar.tasks[0]
        assert (task.description, task.completed, task.total) == ("training image", 3, 300)

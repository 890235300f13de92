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
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "training: about 70 s left"
    # The phases that took a while, each once, with how long; one progress line every 30 s.
    assert "  loading model: 4 s" in lines and "  embedding 600/600: 60 s" in lines
    assert [line for line in lines if "left" in line and line.startswith("  embedding")] != []
    assert not any(line.startswith("  calibrating") for line in lines)  # a quick phase says nothing
    assert len(lines) <= 6


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

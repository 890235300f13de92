"""`fingertui train` progress: a few lines when piped, not one per image."""

from fingertui.cli import _progress_printer

PHASES = [("loading model", 1), ("embedding", 1000), ("training image", 300), ("calibrating", 1), ("evaluating", 1)]


def test_piped_progress_is_one_line_per_phase(capsys):
    with _progress_printer(True, live=False) as report:
        for phase, n in PHASES:
            for k in range(n + 1):
                report(phase, k, n)
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["loading", "embedding", "training", "calibrating", "evaluating"]
    assert "embedding 0/1000" in lines[1]


def test_json_mode_prints_no_progress(capsys):
    with _progress_printer(False) as report:
        for phase, n in PHASES:
            report(phase, n, n)
    assert capsys.readouterr().err == ""


def test_live_bar_follows_the_phase_and_its_count():
    with _progress_printer(True, live=True) as report:
        report("embedding", 0, 40)
        report("embedding", 10, 40)
        task = report.bar.tasks[0]
        assert (task.description, task.completed, task.total) == ("embedding", 10, 40)
        report("training image", 3, 300)  # a new phase starts its own count (and ETA)
        task = report.bar.tasks[0]
        assert (task.description, task.completed, task.total) == ("training image", 3, 300)

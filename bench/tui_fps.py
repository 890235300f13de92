"""Capture screen speed, counted where it happens: camera frames really painted and
predictions really made, idle and while `fingertui train` runs in another process.

The app runs in a real terminal (tmux) on the demo source with a trained model. Inside
it, this script counts
- paints: the camera widget drawing a new frame (its ``render_line`` called for a picture
  it had not drawn before) — not the 15 Hz timer that hands frames to it, and not the
  rate the app prints about itself;
- frames handed to the widget (the timer's work), for comparison;
- predictions: results of the live-prediction worker shown on the prediction panel.
Each event is time-stamped; rates are counted in an idle window and in a window while a
training run goes on beside the app. Start-up is the time from process start to the
first painted frame. Without tmux the app runs headless (Textual still renders).

Writes bench/results/tui_fps.json and tui_fps.csv (one row per second of the run).

Run: PYTHONPATH=. .venv/bin/python bench/tui_fps.py [--home WS] [--seconds 12] [--quick]
     (without --home a scratch workspace with demo-hand images and a trained
     efficientnet-lite0 run is made first)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"
T_START = time.time()


def child(home: str, out: str, headless: bool) -> None:
    """The app itself, with counters on the camera widget and the prediction panel; it
    reports and quits when the file OUT.stop appears."""
    from fingertui.tui import app as app_mod
    from fingertui.tui.widgets.camera_view import CameraView
    from fingertui.tui.widgets.panels import PredictionPanel

    events: dict[str, list[float]] = {"paint": [], "handed": [], "prediction": []}
    render_line = CameraView.render_line
    show = CameraView.show
    painted: dict[int, int] = {}

    def counting_render_line(self: CameraView, y: int) -> object:
        if self.picture is not None and painted.get(id(self)) != id(self.picture):
            painted[id(self)] = id(self.picture)
            events["paint"].append(time.time())
        return render_line(self, y)

    def counting_show(self: CameraView, img: object) -> None:
        events["handed"].append(time.time())
        show(self, img)

    panel_show = PredictionPanel.show

    def counting_prediction(self: PredictionPanel, *a: object, **k: object) -> None:
        events["prediction"].append(time.time())
        if len(events["prediction"]) == 1:
            Path(out + ".ready").touch()  # model loaded, predictions flowing: windows may start
        panel_show(self, *a, **k)

    CameraView.render_line = counting_render_line
    CameraView.show = counting_show
    PredictionPanel.show = counting_prediction
    app = app_mod.make_app(home, "demo")

    def report() -> None:
        Path(out).write_text(json.dumps({"start": T_START, "events": events}))

    if headless:
        import asyncio

        async def go() -> None:
            async with app.run_test(size=(140, 42)) as pilot:
                while not Path(out + ".stop").exists():
                    await pilot.pause(0.2)
            report()

        asyncio.run(go())
        return

    def stop() -> None:
        while not Path(out + ".stop").exists():
            time.sleep(0.2)
        report()
        app.call_from_thread(app.exit)

    threading.Thread(target=stop, daemon=True).start()
    app.run()


def make_workspace(home: Path, per_class: int) -> None:
    """Demo-hand images labelled with their drawn count, and one trained run."""
    from PIL import Image

    from fingertui.data.importer import import_paths
    from fingertui.data.store import Store
    from fingertui.data.workspace import Workspace
    from fingertui.live.demo import HandScene
    from fingertui.train.pipeline import train

    counts, i = [0] * 6, 0
    scene = HandScene(seed=0)
    while min(counts) < per_class:
        scene.new_pose()
        i += 1
        if counts[scene.truth] >= per_class:
            continue
        p = home / "src" / str(scene.truth) / f"{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(scene.next_frame(now=scene._changed)).save(p)
        counts[scene.truth] += 1
    store = Store(Workspace(home / "ws"))
    import_paths(store, [home / "src"])
    train(store, features="image", backbone="efficientnet-lite0", flags=False)
    store.close()


def rate(times: list[float], t0: float, t1: float) -> float:
    return sum(t0 <= t < t1 for t in times) / max(1e-9, t1 - t0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", help="a workspace with a trained run (default: make one)")
    ap.add_argument("--seconds", type=float, default=12, help="length of each window")
    ap.add_argument("--quick", action="store_true", help="6 s windows")
    ap.add_argument("--headless", action="store_true", help="no tmux: run the app headless")
    ap.add_argument("--child", metavar="OUT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.home, args.child, args.headless)
        return 0
    if args.quick:
        args.seconds = 6
    headless = args.headless or not shutil.which("tmux")
    tmp = tempfile.TemporaryDirectory()
    home = args.home
    if home is None:
        print("making a workspace: demo-hand images and a trained efficientnet-lite0 run…", flush=True)
        make_workspace(Path(tmp.name), 6)
        home = str(Path(tmp.name) / "ws")
    window = args.seconds
    out = Path(tmp.name) / "events.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--home", home, "--child", str(out)]
    if headless:
        proc = subprocess.Popen([*cmd, "--headless"], env=env, stdout=subprocess.DEVNULL)
    else:
        session = "fingertui-fps-bench"
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        line = " ".join(f"'{c}'" for c in cmd)
        subprocess.run(
            ["tmux", "new", "-d", "-s", session, "-x", "140", "-y", "42", f"env PYTHONPATH='{ROOT}' {line}"], check=True
        )
    t_app = time.time()
    ready = Path(str(out) + ".ready")
    while not ready.exists() and time.time() - t_app < 300:  # model loaded, first prediction shown
        time.sleep(0.2)
    time.sleep(1)
    idle = (time.time(), time.time() + window)
    time.sleep(window)
    trainer = subprocess.Popen(
        [sys.executable, "-m", "fingertui", "--home", home, "train", "--backbone", "efficientnet-lite0", "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(2)
    busy = (time.time(), time.time() + window)
    time.sleep(window)
    still_training = trainer.poll() is None
    Path(str(out) + ".stop").touch()
    deadline = time.time() + 120
    while not out.exists() and time.time() < deadline:
        time.sleep(0.5)
    trainer.wait()
    if headless:
        proc.wait()
    else:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    if not out.exists():
        print("the app did not report its counts")
        return 1
    got = json.loads(out.read_text())
    ev = got["events"]
    result = {"terminal": "headless" if headless else "tmux 140x42", "window_s": window}
    for name, (t0, t1) in (("idle", idle), ("training beside it", busy)):
        result[name] = {k: round(rate(ev[k], t0, t1), 2) for k in ("paint", "handed", "prediction")}
    result["training_still_running_at_end"] = still_training
    result["first_paint_s"] = round(min(ev["paint"]) - got["start"], 2) if ev["paint"] else None
    result["first_prediction_s"] = round(min(ev["prediction"]) - got["start"], 2) if ev["prediction"] else None
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "tui_fps.json").write_text(json.dumps(result, indent=2))
    start = int(min(min(v) for v in ev.values() if v)) if any(ev.values()) else int(t_app)
    with open(OUT / "tui_fps.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["second", "paints", "frames_handed", "predictions", "window"])
        for s in range(start, int(busy[1]) + 1):
            where = "idle" if idle[0] <= s < idle[1] else "training" if busy[0] <= s < busy[1] else ""
            w.writerow(
                [s - start, *(sum(s <= t < s + 1 for t in ev[k]) for k in ("paint", "handed", "prediction")), where]
            )
    for name in ("idle", "training beside it"):
        r = result[name]
        print(
            f"{name}: {r['paint']:.1f} camera frames painted/s ({r['handed']:.1f} handed to the widget), "
            f"{r['prediction']:.1f} predictions/s"
        )
    if not still_training:
        print("(the training ended before the second window did)")
    print(
        f"start-up to the first painted frame: {result['first_paint_s']} s, to the first prediction: "
        f"{result['first_prediction_s']} s (process start, imports and model load included)"
    )
    print(f"wrote {OUT / 'tui_fps.json'} and tui_fps.csv ({result['terminal']}; 2 shared cores: indicative only)")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

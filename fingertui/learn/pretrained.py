"""Where the backbones' ImageNet weights come from: torchvision's download and cache for
ResNet-18 (a failed download is remembered for a day, not tried on every run), or a
weights file the user gives."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Protocol

# torchvision's ResNet-18 ImageNet weights (ResNet18_Weights.IMAGENET1K_V1: its file name
# and transforms; tests check these against torchvision).
RESNET18_FILE = "resnet18-f37072fd.pth"


def file_id(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:8]


class WeightsUnavailable(Exception):
    """ResNet-18 ImageNet weights are neither cached, downloadable nor given as a file.
    ``remembered``: no download was tried, because one failed less than a day ago."""

    def __init__(self, reason: str, remembered: bool = False) -> None:
        super().__init__(reason)
        self.remembered = remembered


class Settings(Protocol):
    """Where a failed download is remembered: the workspace's settings (``Store``)."""

    def get_setting(self, key: str) -> str | None: ...

    def set_setting(self, key: str, value: str | None) -> None: ...


DOWNLOAD_FAILED_KEY = "resnet18_download_failed"
# A failed download is tried again after a day (or at once with `fingertui fetch-weights`),
# not on every run: offline, each try would print a line and could wait on the network.
RETRY_AFTER_S = 24 * 3600


def resnet18_cache_file() -> Path:
    """Where torchvision keeps the downloaded ResNet-18 weights: torch.hub's directory
    ($TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub, else ~/.cache/torch/hub), read the way
    torch.hub reads it, without importing torch."""
    default = os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    home = os.path.expanduser(os.environ.get("TORCH_HOME", default))
    return Path(home) / "hub" / "checkpoints" / RESNET18_FILE


def download(url: str, dest: Path) -> None:
    """torch.hub's download with the file's hash checked, and no "Downloading" line on stdout."""
    from torch.hub import HASH_REGEX, download_url_to_file

    match = HASH_REGEX.search(dest.name)
    download_url_to_file(url, str(dest), match.group(1) if match else None, progress=False)


def _reason(e: BaseException) -> str:
    """The cause of a failed download in a word or two ("offline", not the whole URLError)."""
    import socket
    import urllib.error

    if isinstance(e, urllib.error.URLError | socket.gaierror | ConnectionError | TimeoutError):
        return "offline"
    text = str(e).strip()
    return text.splitlines()[0][:60] if text else type(e).__name__


def download_failed_recently(settings: Settings | None) -> str | None:
    """The reason of a failed download less than RETRY_AFTER_S ago, else None."""
    raw = settings.get_setting(DOWNLOAD_FAILED_KEY) if settings is not None else None
    try:
        memo = json.loads(raw) if raw else None
        if memo and time.time() - float(memo["at"]) < RETRY_AFTER_S:
            return str(memo["reason"])
    except (ValueError, KeyError, TypeError):
        pass  # an unreadable note is no reason not to try
    return None


def resnet18_state(settings: Settings | None, force: bool) -> dict:
    from torchvision.models import ResNet18_Weights

    path = resnet18_cache_file()
    if not path.exists():
        recent = None if force else download_failed_recently(settings)
        if recent is not None:
            raise WeightsUnavailable(recent, remembered=True)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            download(ResNet18_Weights.IMAGENET1K_V1.url, path)
        except (OSError, RuntimeError, ValueError) as e:  # URLError is an OSError; a bad hash a RuntimeError
            reason = _reason(e)
            if settings is not None:
                settings.set_setting(DOWNLOAD_FAILED_KEY, json.dumps({"at": time.time(), "reason": reason}))
            raise WeightsUnavailable(reason) from e
        if settings is not None and settings.get_setting(DOWNLOAD_FAILED_KEY) is not None:
            settings.set_setting(DOWNLOAD_FAILED_KEY, None)
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a half-written or damaged cache file
        raise WeightsUnavailable(f"{path} is damaged ({type(e).__name__}); delete it") from e

"""Heavy imports on a background thread while C++ work runs (fingertui/preload.py)."""

import sys

import pytest

from fingertui.preload import preload


def test_preload_imports_in_the_background_and_skips_what_is_loaded(monkeypatch):
    for name in ("xml.dom.minidom", "xml.dom"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    thread = preload("xml.dom.minidom")
    assert thread is not None and thread.name == "fingertui-preload"
    thread.join(10)
    assert "xml.dom.minidom" in sys.modules
    assert preload("xml.dom.minidom", "sys") is None  # nothing left to do: no thread


def test_a_failing_preload_is_quiet_and_the_real_import_says_why():
    thread = preload("fingertui_no_such_module")
    thread.join(10)
    with pytest.raises(ModuleNotFoundError):
        __import__("fingertui_no_such_module")

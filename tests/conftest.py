"""Shared fixtures: a temporary data folder, and the virtual PulseAudio devices."""

from __future__ import annotations

import pytest

from tests.virtual_audio import virtual_audio  # noqa: F401  (fixture)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh voicereflect data folder; config comes from built-in defaults only."""
    data = tmp_path / "home"
    monkeypatch.setenv("VOICEREFLECT_HOME", str(data))
    monkeypatch.setenv("VOICEREFLECT_CONFIG", "")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    return data

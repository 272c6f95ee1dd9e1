"""Settings come from the MISTUDIO_* variables only: the default home is ~/.mistudio, not $HOME itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from mistudio.settings import get_settings, reset_settings


def test_default_home_is_dot_mistudio_under_the_users_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISTUDIO_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DEVICE", "not-a-device")  # a field's own name is not its variable
    reset_settings()
    settings = get_settings()
    assert settings.home == tmp_path / ".mistudio"
    assert settings.device is None
    monkeypatch.setenv("MISTUDIO_HOME", str(tmp_path / "elsewhere"))
    reset_settings()
    assert get_settings().home == tmp_path / "elsewhere"

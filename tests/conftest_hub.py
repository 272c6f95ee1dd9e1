"""Fixtures for tests that talk to the fake HuggingFace Hub (`fakes.fake_hub`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.fake_hub import FakeHub
from fakes.hub_repos import build_all

from mistudio.settings import reset_settings


@pytest.fixture(scope="session")
def hub_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding every demo repo (built once per session; treat it as read-only)."""
    root = tmp_path_factory.mktemp("hub")
    build_all(root)
    return root


@pytest.fixture
def fake_hub(hub_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """A running fake hub over `hub_root`, with HF_ENDPOINT pointing at it and no token or offline mode set."""
    monkeypatch.setenv("HF_ENDPOINT", "")
    for var in ("HF_TOKEN", "HF_HUB_OFFLINE", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MISTUDIO_HOME", str(tmp_path / "home"))
    with FakeHub(hub_root) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        reset_settings()
        yield hub
    reset_settings()

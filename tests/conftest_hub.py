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


@pytest.fixture
def writable_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A running fake hub over an empty folder that accepts writes (`fakes.fake_hub.WRITE_TOKEN`), with
    huggingface_hub (its module constants, read at import, included) pointed at it and Xet off: the fake speaks
    the LFS protocol, and huggingface_hub chooses Xet on the client side whenever `hf_xet` is installed."""
    from huggingface_hub import constants as hf_constants

    for var in ("HF_TOKEN", "HF_HUB_OFFLINE", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no token saved by `hf auth login` is picked up
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-home" / "stored_tokens"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    root = tmp_path / "writable-hub"
    root.mkdir()
    with FakeHub(root) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setattr(hf_constants, "ENDPOINT", hub.endpoint)
        monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        reset_settings()
        yield hub
    reset_settings()

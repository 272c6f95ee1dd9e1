"""Fixtures for browser end-to-end tests: a real `mistudio serve` on a free port (SQLite in a temp
MISTUDIO_HOME, HF_ENDPOINT at the fake hub), the built web UI, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fakes.fake_hub import FakeHub
from fakes.hub_repos import build_all

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("MISTUDIO_CHROMIUM", "/usr/bin/chromium"))
STATIC_INDEX = REPO_ROOT / "src" / "mistudio" / "web" / "static" / "index.html"
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _require_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) to run browser tests")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the `playwright` Python package is missing (pip install playwright; no browser download needed)")
    if not STATIC_INDEX.exists():
        pytest.skip("the web UI is not built: run `npm --prefix frontend ci && npm --prefix frontend run build`")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mistudio serve exited early:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"mistudio serve did not answer {url} in {timeout}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def e2e_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    """The fake HuggingFace Hub serving every test repo (Gemma Scope layout included); slowed so progress shows."""
    _require_browser()
    root = tmp_path_factory.mktemp("e2e-hub")
    build_all(root)
    with FakeHub(root, chunk_delay=0.02) as hub:
        yield hub


@contextmanager
def serve_studio(home: Path, **env_vars: str) -> Iterator[str]:
    """`mistudio serve` on a free port over the store `home` (SQLite, CPU) in a subprocess; yields its base URL
    and stops it afterwards. `env_vars` are added to the server's environment (e.g. `HF_ENDPOINT`)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HUB_OFFLINE", "HUGGING_FACE_HUB_TOKEN",
                                                               "MISTUDIO_DATABASE_URL")}
    env.update(MISTUDIO_HOME=str(home), MISTUDIO_DEVICE="cpu", **env_vars,
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    log = home / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mistudio.cli.main", "serve", "--port", str(port)],
                                cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/api/v1/health", proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def error_recording_page(browser: object, url: str) -> object:
    """A new 1440×900 page on `url` whose uncaught page errors collect in `page.page_errors`."""
    context = browser.new_context(base_url=url, viewport={"width": 1440, "height": 900})  # type: ignore[attr-defined]
    context.set_default_timeout(30_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.page_errors = errors
    return pg


@pytest.fixture(scope="session")
def server(e2e_hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mistudio serve` in a subprocess; yields its base URL."""
    home = tmp_path_factory.mktemp("e2e-home")
    try:
        with serve_studio(home, HF_ENDPOINT=e2e_hub.endpoint) as url:
            yield url
    finally:
        SCREENSHOTS.parent.mkdir(parents=True, exist_ok=True)
        if (home / "server.log").exists():
            shutil.copy(home / "server.log", SCREENSHOTS.parent / "e2e-server.log")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless (never a downloaded Playwright browser)."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser, server: str) -> Iterator[object]:
    """One page (1440×900, downloads allowed) shared by a module's ordered steps."""
    context = browser.new_context(base_url=server, viewport={"width": 1440, "height": 900}, accept_downloads=True)
    context.set_default_timeout(20_000)
    pg = context.new_page()
    console: list[str] = []
    pg.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}") if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
    pg.console_errors = console
    yield pg
    context.close()


@pytest.fixture(scope="session")
def shoot() -> object:
    """`shoot(page, name)` saves test-artifacts/screenshots/{name}.png (every run)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def _shoot(pg, name: str, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        pg.screenshot(path=str(path), full_page=full_page)
        return path

    return _shoot

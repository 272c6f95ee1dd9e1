"""Who the server lets in: the API token on every /api/v1 route (health excepted; SSE streams and downloads through
the session cookie), imports from server paths only inside MISTUDIO_IMPORT_ROOTS (decided before anything reads the
folder), errors that show no server paths, and `mistudio serve` refusing a non-loopback address without a token —
through the real app and a real `mistudio serve` process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sae_factories import make_sae, write_in_format
from sqlalchemy import select

from mistudio.api.app import create_app
from mistudio.api.auth import SESSION_COOKIE, is_loopback
from mistudio.db.models import SAERecord
from mistudio.studio import Studio

TOKEN = "test-token-6f1d2c9a8b7e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _studio(monkeypatch: pytest.MonkeyPatch, home: Path, **env: str) -> Studio:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Studio.open(home=home)


@pytest.fixture
def secured(monkeypatch: pytest.MonkeyPatch, isolated_home: Path, tmp_path: Path) -> Iterator[TestClient]:
    studio = _studio(monkeypatch, isolated_home, MISTUDIO_API_TOKEN=TOKEN, MISTUDIO_IMPORT_ROOTS=str(tmp_path / "data"))
    with TestClient(create_app(studio, start_worker=False)) as client:
        yield client


def _api_routes(client: TestClient) -> list[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item
            if path.startswith("/api/")]


def _filled(path: str) -> str:
    return path.replace("{", "").replace("}", "")  # any value: the token is checked before the route runs


def test_every_api_route_but_health_needs_the_token(secured: TestClient) -> None:
    health = secured.get("/api/v1/health")
    assert health.status_code == 200 and health.json()["auth_required"] is True
    routes = _api_routes(secured)
    assert len(routes) > 25 and ("GET", "/api/v1/jobs/{job_id}/events") in routes
    for method, path in routes:
        if (method, path) == ("GET", "/api/v1/health"):
            continue
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                        {"Authorization": f"bearer {TOKEN}x"}):
            resp = secured.request(method, _filled(path), headers=headers)
            assert resp.status_code == 401, (method, path, headers, resp.text)
            assert resp.json()["error"]["type"] == "AuthenticationError"
            assert resp.headers["www-authenticate"].startswith("Bearer")
    assert secured.get("/api/v1/no/such/route").status_code == 401  # unknown API paths too
    ok = secured.get("/api/v1/saes", headers=AUTH)
    assert ok.status_code == 200 and ok.json()["total"] == 0
    assert secured.get("/openapi.json").status_code == 200  # the web shell and the schema stay public
    assert secured.get("/").status_code in (200, 404)


def test_session_cookie_opens_streams_and_reads_but_never_writes(secured: TestClient) -> None:
    studio = secured.app.state.studio  # type: ignore[attr-defined]
    login = secured.post("/api/v1/auth/session", headers=AUTH)
    assert login.status_code == 200 and login.json() == {"auth_required": True, "authenticated": True}
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/api/" in cookie and TOKEN not in cookie
    assert secured.cookies.get(SESSION_COOKIE)
    assert secured.get("/api/v1/saes").status_code == 200  # GET with the cookie alone
    write = secured.post("/api/v1/trainings", json={"name": "run"})
    assert write.status_code == 401  # a cookie never authorizes a change
    job_id = studio.runner.create("sae_download", {"sae_id": "x", "repo_id": "a/b"})
    studio.runner.cancel(job_id)
    with secured.stream("GET", f"/api/v1/jobs/{job_id}/events") as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        first = next(line for line in stream.iter_lines() if line.startswith("data:"))
        assert json.loads(first[5:])["id"] == job_id
    secured.cookies.clear()
    assert secured.get(f"/api/v1/jobs/{job_id}/events").status_code == 401
    secured.cookies.set(SESSION_COOKIE, "forged", path="/api/")
    assert secured.get("/api/v1/saes").status_code == 401


def test_no_token_means_open_api_on_loopback(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    studio = _studio(monkeypatch, isolated_home)
    with TestClient(create_app(studio, start_worker=False)) as client:
        assert client.get("/api/v1/health").json()["auth_required"] is False
        assert client.get("/api/v1/saes").status_code == 200


def _sae_zip(tmp_path: Path) -> tuple[Path, Path]:
    folder = write_in_format(make_sae("standard", d_in=16, d_sae=32), "saelens", tmp_path / "data" / "sae")
    archive = tmp_path / "sae.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f.name)
    return folder, archive


def test_server_path_imports_only_inside_import_roots(secured: TestClient, tmp_path: Path) -> None:
    folder, _ = _sae_zip(tmp_path)
    data = tmp_path / "data"
    (tmp_path / "data2").mkdir()
    write_in_format(make_sae("standard", seed=3), "saelens", tmp_path / "data2" / "other")
    (data / "link-out").symlink_to(tmp_path / "data2")
    outside = [str(tmp_path / "data2" / "other" / "sae"), str(data / ".." / "data2" / "other" / "sae"),
               str(data / "link-out" / "other" / "sae"), str(tmp_path / "nowhere"), "/usr", "/root", "/", "relative"]
    for path in outside:
        start = time.perf_counter()
        resp = secured.post("/api/v1/saes", json={"path": path}, headers=AUTH)
        elapsed = time.perf_counter() - start
        assert resp.status_code == 403, (path, resp.text)
        assert elapsed < 0.5, f"{path} took {elapsed:.2f}s: something read the folder before the check"
        message = resp.json()["error"]["message"]
        assert "MISTUDIO_IMPORT_ROOTS" in message and ".cache" not in message and "other" not in message.replace(
            path, "")
    # a file inside the root that links outside it is refused too
    linked = data / "linked"
    linked.mkdir()
    (linked / "cfg.json").write_bytes((folder / "cfg.json").read_bytes())
    (linked / "sae_weights.safetensors").symlink_to(tmp_path / "data2" / "other" / "sae" / "sae_weights.safetensors")
    resp = secured.post("/api/v1/saes", json={"path": str(linked)}, headers=AUTH)
    assert resp.status_code == 403 and "link to a file outside" in resp.json()["error"]["message"]

    created = secured.post("/api/v1/saes", json={"path": str(folder)}, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["duplicate_of"] is None
    again = secured.post("/api/v1/saes", json={"path": str(folder)}, headers=AUTH)
    assert again.status_code == 200 and again.json()["duplicate_of"] == created.json()["id"]
    missing = secured.post("/api/v1/saes", json={"path": str(data / "missing")}, headers=AUTH)
    assert missing.status_code == 404
    notes = data / "notes"
    notes.mkdir()
    (notes / "secret-name.txt").write_text("x")
    unknown = secured.post("/api/v1/saes", json={"path": str(notes)}, headers=AUTH)
    assert unknown.status_code == 422 and "secret-name" not in unknown.text  # no listing of server files


def test_without_import_roots_server_paths_are_refused(isolated_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    folder, _ = _sae_zip(tmp_path)
    monkeypatch.delenv("MISTUDIO_IMPORT_ROOTS", raising=False)
    with TestClient(create_app(_studio(monkeypatch, isolated_home), start_worker=False)) as client:
        resp = client.post("/api/v1/saes", json={"path": str(folder)})
        assert resp.status_code == 403 and "lists no folders" in resp.json()["error"]["message"]


def test_upload_errors_show_no_server_paths(secured: TestClient, tmp_path: Path) -> None:
    studio = secured.app.state.studio  # type: ignore[attr-defined]
    folder, archive = _sae_zip(tmp_path)
    weights = folder / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:300])
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f.name)
    junk = tmp_path / "junk.zip"
    with zipfile.ZipFile(junk, "w") as zf:
        zf.writestr("notes.txt", "hello")
    home = str(studio.settings.home)
    for path, expected in ((broken, "sae_weights.safetensors is truncated"), (junk, "notes.txt")):
        with open(path, "rb") as fh:
            resp = secured.post("/api/v1/saes", files={"file": (path.name, fh, "application/zip")}, headers=AUTH)
        assert resp.status_code == 422, resp.text
        assert expected in resp.text
        assert home not in resp.text and "/tmp" not in resp.text and str(tmp_path) not in resp.text, resp.text
    with studio.sessions() as s:
        assert s.scalars(select(SAERecord)).all() == []
    assert list(studio.settings.tmp_dir.iterdir()) == []
    with open(archive, "rb") as fh:  # the upload limit stays
        studio.settings.max_import_bytes = 100
        resp = secured.post("/api/v1/saes", files={"file": ("sae.zip", fh, "application/zip")}, headers=AUTH)
    assert resp.status_code == 422 and "MISTUDIO_MAX_IMPORT_BYTES" in resp.text


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                                ("127.1.2.3", True), ("0.0.0.0", False), ("::", False),
                                                ("192.168.1.4", False), ("example.com", False)])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mistudio.cli.main", "serve", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_health(port: int, proc: subprocess.Popen[str], timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the server did not come up")


def test_serve_refuses_a_public_address_without_a_token(isolated_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MISTUDIO_API_TOKEN",)}
    env.update(MISTUDIO_HOME=str(isolated_home), MISTUDIO_START_WORKER="0")
    port = _free_port()
    refused = subprocess.run([sys.executable, "-m", "mistudio.cli.main", "serve", "--host", "0.0.0.0",
                              "--port", str(port)], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "refusing to serve on 0.0.0.0" in refused.stderr and "MISTUDIO_API_TOKEN" in refused.stderr

    proc = _serve(["--host", "0.0.0.0", "--port", str(port)], {**env, "MISTUDIO_API_TOKEN": TOKEN})
    try:
        health = _wait_health(port, proc)
        assert health.status_code == 200 and health.json()["auth_required"] is True
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/saes").status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/saes", headers=AUTH).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    proc = _serve(["--host", "0.0.0.0", "--port", str(port), "--no-auth"], env)
    try:
        assert _wait_health(port, proc).json()["auth_required"] is False
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/saes").status_code == 200
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert "warning: --no-auth on 0.0.0.0" in output

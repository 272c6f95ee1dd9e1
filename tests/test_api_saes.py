"""REST API for the catalog, jobs and hub browsing, through the real FastAPI app and the real job worker,
with HuggingFace downloads served by the fake hub."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest
from fakes import hub_repos as R
from fastapi.testclient import TestClient
from sae_factories import make_sae, write_in_format

from mistudio.api.app import create_app


@pytest.fixture
def client(fake_hub, isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN001, ANN201
    from mistudio.studio import Studio

    monkeypatch.setenv("MISTUDIO_IMPORT_ROOTS", str(tmp_path))  # server-path imports: only from the test's folder
    studio = Studio.open(home=isolated_home)
    with TestClient(create_app(studio)) as c:
        yield c


def _wait_job(client: TestClient, job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job did not finish: {job}")


def test_browse_and_download_gemma_scope_through_the_api(client: TestClient) -> None:
    listing = client.get("/api/v1/hub/saes", params={"repo_id": R.GEMMA_SCOPE_REPO}).json()
    layer = listing["gemma_scope"][0]
    width = layer["widths"][0]
    l0 = width["l0s"][0]["l0"]
    resp = client.post("/api/v1/saes/download-hf", json={"repo_id": R.GEMMA_SCOPE_REPO, "layer": layer["layer"],
                                                          "width": width["width"], "l0": l0})
    assert resp.status_code == 202, resp.text
    ids = resp.json()
    job = _wait_job(client, ids["job_id"])
    assert job["status"] == "completed", job
    assert [st["name"] for st in job["stages"]] == ["downloading", "detecting format", "registering"]
    sae = client.get(f"/api/v1/saes/{ids['sae_id']}").json()
    assert sae["source"] == "gemma_scope" and sae["status"] == "ready" and sae["format"] == "gemma_scope"
    assert (sae["d_in"], sae["d_sae"], sae["layer"]) == (R.GEMMA_SCOPE_D_IN, width["d_sae"], layer["layer"])
    assert sae["hook_name"] == f"blocks.{layer['layer']}.hook_resid_post" and sae["model_name"] == "gemma-2-2b"
    assert len(sae["revision"]) == 40
    config = client.get(f"/api/v1/saes/{ids['sae_id']}/config").json()
    assert config["config"]["apply_b_dec_to_input"] is False and config["config"]["architecture"] == "jumprelu"
    listing = client.get("/api/v1/saes", params={"source": "gemma_scope"}).json()
    assert listing["total"] == 1 and listing["facets"]["sources"] == ["gemma_scope"]
    dup = client.post("/api/v1/saes/download-hf", json={"repo_id": R.GEMMA_SCOPE_REPO, "layer": layer["layer"],
                                                         "width": width["width"], "l0": l0})
    assert dup.status_code == 409 and "already in the catalog" in dup.json()["error"]["message"]
    assert client.delete(f"/api/v1/saes/{ids['sae_id']}").status_code == 204
    assert client.get(f"/api/v1/saes/{ids['sae_id']}").status_code == 404


def test_hub_errors_map_to_status_codes(client: TestClient) -> None:
    missing = client.get("/api/v1/hub/saes", params={"repo_id": "nobody/nothing"})
    assert missing.status_code == 404 and "not found" in missing.json()["error"]["message"]
    private = client.get("/api/v1/hub/saes", params={"repo_id": R.PRIVATE_REPO})
    assert private.status_code == 401 and "token" in private.json()["error"]["message"].lower()
    ok = client.get("/api/v1/hub/saes", params={"repo_id": R.PRIVATE_REPO, "token": R.PRIVATE_TOKEN})
    assert ok.status_code == 200 and ok.json()["saes"]


def test_failed_download_marks_sae_error(client: TestClient) -> None:
    resp = client.post("/api/v1/saes/download-hf", json={"repo_id": R.SAELENS_REPO, "path_in_repo": "no/such/folder"})
    job = _wait_job(client, resp.json()["job_id"])
    assert job["status"] == "failed" and job["error_message"]
    sae = client.get(f"/api/v1/saes/{resp.json()['sae_id']}").json()
    assert sae["status"] == "error" and sae["error_message"] == job["error_message"]


def test_upload_import_show_convert_link_delete(client: TestClient, tmp_path: Path) -> None:
    folder = write_in_format(make_sae("topk", d_sae=24), "saelens", tmp_path / "sae")
    archive = tmp_path / "sae.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f.name)
    with open(archive, "rb") as fh:
        resp = client.post("/api/v1/saes", files={"file": ("my-sae.zip", fh, "application/zip")},
                           data={"name": "uploaded"})
    assert resp.status_code == 201, resp.text
    sae = resp.json()
    assert (sae["name"], sae["source"], sae["architecture"], sae["d_sae"]) == ("uploaded", "upload", "topk", 24)
    by_path = client.post("/api/v1/saes", json={"path": str(folder)})  # the same files as the upload
    assert by_path.status_code == 200 and by_path.json()["duplicate_of"] == sae["id"]
    assert client.post("/api/v1/saes", json={"path": "/usr"}).status_code == 403
    bad = client.post("/api/v1/saes", json={"path": str(tmp_path / "missing")})
    assert bad.status_code == 404 and "does not exist" in bad.json()["error"]["message"]
    out = tmp_path / "converted"
    conv = client.post(f"/api/v1/saes/{sae['id']}/convert", json={"to": "mistudio", "out_dir": str(out)})
    assert conv.status_code == 200 and (out / "config.json").exists()
    training = client.post("/api/v1/trainings", json={"name": "run", "model_name": "tiny"}).json()
    linked = client.post(f"/api/v1/saes/{sae['id']}/link", json={"training_id": training["id"]}).json()
    assert linked["training_id"] == training["id"]
    stats = client.get(f"/api/v1/saes/{sae['id']}/statistics").json()
    assert stats["size_bytes"] == sae["size_bytes"]
    bad_sort = client.get("/api/v1/saes", params={"sort": "nope"})
    assert bad_sort.status_code == 422
    assert client.delete(f"/api/v1/saes/{sae['id']}").status_code == 204
    assert client.get("/api/v1/jobs/nope").status_code == 404


def test_openapi_schema_lists_the_documented_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for route in ("/api/v1/saes", "/api/v1/saes/{sae_id}", "/api/v1/saes/download-hf", "/api/v1/jobs/{job_id}",
                  "/api/v1/jobs/{job_id}/cancel", "/api/v1/saes/{sae_id}/convert", "/api/v1/saes/{sae_id}/config",
                  "/api/v1/hub/saes"):
        assert route in paths

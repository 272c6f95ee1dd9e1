"""REST and CLI over real extractions: start (and reuse) an extraction, page/sort/filter features in SQL,
read dashboards, label features; the offline demo end to end."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mistudio.api.app import create_app
from mistudio.catalog.service import register_sae_from_path
from mistudio.demo import random_sae
from mistudio.saes.formats import write_saelens
from mistudio.studio import Studio
from mistudio.testing.tiny_models import build_tiny_model

D_SAE = 96


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    model = build_tiny_model("gpt2", root / "model")
    sae = random_sae(64, D_SAE, "blocks.1.hook_resid_pre", model_name=str(model), context_size=32)
    with __import__("torch").no_grad():
        sae.b_enc[5] = -1e9  # never fires
    return model, write_saelens(sae, root / "sae")


@pytest.fixture()
def client_and_sae(assets, tmp_path):
    model, sae_path = assets
    studio = Studio.open(home=tmp_path / "home")
    sae_id = register_sae_from_path(studio, sae_path, name="tiny", source="trained").id
    with TestClient(create_app(studio, start_worker=False)) as client:
        yield client, studio, sae_id, str(model)


def _extract(client, studio, sae_id, model, **extra) -> dict:
    body = {"model": model, "dataset": "builtin:corpus", "n_tokens": 4096, "context_size": 32, "top_k": 5, **extra}
    res = client.post(f"/api/v1/saes/{sae_id}/extract", json=body)
    assert res.status_code == 202, res.text
    started = res.json()
    if not started["reused"]:
        state = studio.runner.run_inline(started["job_id"])
        assert state.status == "completed", state
    return started


def test_extract_list_dashboard_label(client_and_sae):
    client, studio, sae_id, model = client_and_sae
    started = _extract(client, studio, sae_id, model)
    assert _extract(client, studio, sae_id, model) == {**started, "reused": True}

    exts = client.get(f"/api/v1/saes/{sae_id}/extractions").json()
    assert [e["status"] for e in exts] == ["completed"] and exts[0]["n_features"] == D_SAE
    assert exts[0]["n_tokens"] > 3000

    page = client.get(f"/api/v1/saes/{sae_id}/features", params={"sort": "frequency", "order": "desc",
                                                                 "page_size": 10}).json()
    assert page["total"] == D_SAE and len(page["items"]) == 10
    freqs = [it["activation_frequency"] for it in page["items"]]
    assert freqs == sorted(freqs, reverse=True) and freqs[0] > 0
    dead = client.get(f"/api/v1/saes/{sae_id}/features", params={"dead": True, "page_size": 1000}).json()
    assert 5 in {it["feature_index"] for it in dead["items"]}
    assert all(it["dead"] and it["activation_frequency"] == 0 for it in dead["items"])

    top = page["items"][0]["feature_index"]
    dash = client.get(f"/api/v1/saes/{sae_id}/features/{top}/dashboard", params={"n_examples": 3}).json()
    assert dash["feature_index"] == top and dash["label"] is None
    assert len([e for e in dash["activations"] if e["bin_min"] == -1]) == 3  # top group; intervals follow
    bare = client.get(f"/api/v1/saes/{sae_id}/features/{top}/dashboard",
                      params={"n_examples": 3, "include_intervals": False}).json()
    assert bare["activations"] == dash["activations"][:3]
    assert dash["statistics"]["activation_frequency"] == pytest.approx(page["items"][0]["activation_frequency"])
    ex = dash["activations"][0]
    assert len(ex["tokens"]) == len(ex["values"]) == 32 and ex["source"]["dataset"] == "builtin:corpus"
    assert len(dash["logits"]["top_positive"]) == 50 and dash["explanations"] == []
    full = client.get(f"/api/v1/saes/{sae_id}/features/{top}/dashboard").json()
    assert page["items"][0]["top_token"] == full["top_tokens"][0]["token"]

    res = client.put(f"/api/v1/saes/{sae_id}/features/{top}/label", json={"label": "Shakespeare", "category": "lit"})
    assert res.status_code == 200
    labeled = client.get(f"/api/v1/saes/{sae_id}/features", params={"labeled": True}).json()
    assert [it["feature_index"] for it in labeled["items"]] == [top]
    found = client.get(f"/api/v1/saes/{sae_id}/features", params={"search": "shakes"}).json()
    assert found["total"] == 1
    assert client.get(f"/api/v1/saes/{sae_id}/features/{top}/dashboard").json()["label"] == "Shakespeare"

    # a new extraction with other settings keeps the label
    _extract(client, studio, sae_id, model, top_k=3)
    assert client.get(f"/api/v1/saes/{sae_id}/features/{top}/dashboard").json()["label"] == "Shakespeare"


def test_errors(client_and_sae):
    client, studio, sae_id, model = client_and_sae
    assert client.get("/api/v1/saes/nope/features").status_code == 404
    assert client.get(f"/api/v1/saes/{sae_id}/features").status_code == 404  # nothing extracted yet
    assert client.put(f"/api/v1/saes/{sae_id}/features/1/label", json={"label": "x"}).status_code == 404
    _extract(client, studio, sae_id, model)
    assert client.get(f"/api/v1/saes/{sae_id}/features/{D_SAE}/dashboard").status_code == 404
    assert client.get(f"/api/v1/saes/{sae_id}/features", params={"sort": "bogus"}).status_code == 422
    res = client.post(f"/api/v1/saes/{sae_id}/extract", json={"model": model, "dataset": "/no/such/file.txt"})
    job = studio.runner.run_inline(res.json()["job_id"])
    assert job.status == "failed" and "not found" in job.error_message


def test_cli_demo_features_feature(tmp_path, monkeypatch):
    from mistudio.cli.main import app

    monkeypatch.setenv("MISTUDIO_HOME", str(tmp_path / "cli-home"))
    from mistudio.settings import reset_settings

    reset_settings()
    runner = CliRunner()
    res = runner.invoke(app, ["demo", "--n-tokens", "4096", "--json"])
    assert res.exit_code == 0, res.output
    demo = json.loads(res.stdout)
    res = runner.invoke(app, ["features", demo["sae_id"], "--sort", "max", "--json"])
    assert res.exit_code == 0, res.output
    items = json.loads(res.stdout)["items"]
    assert items[0]["max_activation"] >= items[-1]["max_activation"] > -1
    res = runner.invoke(app, ["feature", demo["sae_id"], str(items[0]["feature_index"]), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["activations"]
    res = runner.invoke(app, ["feature", demo["sae_id"], str(items[0]["feature_index"])])
    assert res.exit_code == 0 and "logit lens" in res.output


def test_job_pause_then_resume_continues_from_checkpoint(client_and_sae):
    from mistudio.extraction.service import list_extractions, start_extraction
    from mistudio.store.feature_store import FeatureStore

    _, studio, sae_id, model = client_and_sae
    started = start_extraction(studio, sae_id, model, "builtin:corpus", submit=False, n_tokens=16384,
                               context_size=16, top_k=3, batch_size=2)
    job_id = started.job_id
    batches: list[str] = []

    def pause_early(event: dict) -> None:
        if "windows" in (event.get("message") or ""):
            batches.append(event["message"])
            if len(batches) == 3:
                studio.runner.pause(job_id)

    assert studio.runner.run_inline(job_id, listener=pause_early).status == "paused"
    assert [e.status for e in list_extractions(studio, sae_id)] == ["paused"]
    store_dir = studio.settings.features_dir / sae_id / started.extraction_id
    _, done = FeatureStore.open(store_dir).load_checkpoint()
    assert 0 < done < 1024
    studio.runner.resume(job_id)
    resumed: list[str] = []
    state = studio.runner.run_inline(job_id, listener=lambda e: resumed.append(e.get("message") or ""))
    assert state.status == "completed", state
    first = next(m for m in resumed if "windows" in m)
    assert int(first.split("/")[0]) > done  # finished batches were not redone

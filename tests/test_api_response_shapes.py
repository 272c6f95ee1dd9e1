"""The typed routes serve exactly the JSON the domain functions build: same keys, same values, same number
types (an int stays an int, a float a float)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mistudio.api.app import create_app
from mistudio.catalog import service as catalog
from mistudio.catalog.query import SAEQuery, list_saes
from mistudio.dashboards.reader import feature_dashboard
from mistudio.demo import random_sae
from mistudio.export import service as export_service
from mistudio.export.config import ExportConfig
from mistudio.extraction import service as extraction
from mistudio.extraction.summaries import list_features
from mistudio.saes.formats import write_saelens
from mistudio.studio import Studio
from mistudio.testing.tiny_models import build_tiny_model


def _same_json(served: Any, built: Any) -> None:
    assert json.dumps(served, sort_keys=True) == json.dumps(built, sort_keys=True)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("shapes")
    model = build_tiny_model("gpt2", root / "model")
    sae = random_sae(64, 48, "blocks.1.hook_resid_pre", model_name=str(model), context_size=32)
    studio = Studio.open(home=root / "home")
    sae_id = catalog.register_sae_from_path(studio, write_saelens(sae, root / "sae"), name="tiny",
                                            source="trained").id
    with TestClient(create_app(studio, start_worker=False)) as client:
        res = client.post(f"/api/v1/saes/{sae_id}/extract", json={
            "model": str(model), "dataset": "builtin:corpus", "n_tokens": 2048, "context_size": 32, "top_k": 4})
        assert res.status_code == 202, res.text
        started = res.json()
        studio.runner.run_inline(started["job_id"])
        yield client, studio, sae_id, started


def test_catalog_routes(extracted) -> None:  # noqa: ANN001
    client, studio, sae_id, _ = extracted
    with studio.sessions() as s:
        _same_json(client.get("/api/v1/saes").json(), list_saes(s, SAEQuery()).model_dump())
        _same_json(client.get(f"/api/v1/saes/{sae_id}").json(), list_saes(s, SAEQuery()).items[0].model_dump())
    _same_json(client.get(f"/api/v1/saes/{sae_id}/statistics").json(),
               catalog.sae_statistics(studio, sae_id).model_dump(exclude_unset=True))
    _same_json(client.get(f"/api/v1/saes/{sae_id}/config").json(), catalog.sae_config(studio, sae_id).model_dump())
    training = client.post("/api/v1/trainings", json={"name": "run", "metrics": {"l0": 3}}).json()
    with studio.sessions() as s:
        stored = [t.model_dump() for t in catalog.list_trainings(s)]
    _same_json(client.get("/api/v1/trainings").json(), {"items": stored})
    _same_json(client.get(f"/api/v1/trainings/{training['id']}").json(), stored[0])


def test_job_and_extraction_routes(extracted) -> None:  # noqa: ANN001
    client, studio, sae_id, started = extracted
    job_id = started["job_id"]
    _same_json(client.get(f"/api/v1/jobs/{job_id}").json(), studio.runner.get(job_id).json_view())
    _same_json(client.get("/api/v1/jobs").json(), {"items": [j.json_view() for j in studio.runner.list()]})
    _same_json(client.get(f"/api/v1/saes/{sae_id}/extractions").json(),
               [e.model_dump() for e in extraction.list_extractions(studio, sae_id)])


def test_feature_routes(extracted) -> None:  # noqa: ANN001
    client, studio, sae_id, started = extracted
    ext_id = started["extraction_id"]
    with studio.sessions() as s:
        _same_json(client.get(f"/api/v1/saes/{sae_id}/features").json(),
                   list_features(s, ext_id).model_dump())
    _, store = extraction.get_store(studio, sae_id, ext_id)
    for index in range(3):
        served = client.get(f"/api/v1/saes/{sae_id}/features/{index}/dashboard").json()
        built = feature_dashboard(store, index, rank_tokens_by="sum", include_intervals=True)
        _same_json(served, {**built, "sae_id": sae_id, "extraction_id": ext_id, "label": None, "category": None,
                            "explanations": []})


def test_export_routes(extracted) -> None:  # noqa: ANN001
    client, studio, sae_id, _ = extracted
    inputs = export_service.gather_inputs(studio, sae_id, None, load_weights=False)
    served = client.post(f"/api/v1/saes/{sae_id}/export/estimate", json={}).json()
    built = export_service.estimate(inputs, ExportConfig()).model_dump()
    # the time is measured on a sample export, so it differs between two calls; everything else is the same
    assert isinstance(served.pop("seconds"), float) and isinstance(built.pop("seconds"), float)
    _same_json(served, built)
    with studio.sessions() as s:
        _same_json(client.get("/api/v1/exports", params={"sae_id": sae_id}).json(),
                   export_service.list_exports(s, sae_id).model_dump())

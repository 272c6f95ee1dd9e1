"""Explanations everywhere in the API: the dashboard carries every explanation with its scores, the feature
listing filters on explained / score and sorts by score, and a search finds features by explanation text across
two SAEs (REST and CLI), all over real extractions of a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mistudio.api.app import create_app
from mistudio.catalog.explanations import add_explanation, add_score
from mistudio.catalog.service import register_sae_from_path
from mistudio.demo import random_sae
from mistudio.extraction.service import extract
from mistudio.extraction.summaries import set_label
from mistudio.saes.formats import write_saelens
from mistudio.settings import reset_settings
from mistudio.studio import Studio
from mistudio.testing.tiny_models import build_tiny_model

D_SAE = 32
EXTRACT = {"n_tokens": 1024, "context_size": 32, "top_k": 5}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A studio with two extracted SAEs and explanations: typed, imported (with a score), generated and scored."""
    root = tmp_path_factory.mktemp("explanations")
    model = build_tiny_model("gpt2", root / "model")
    home = root / "home"
    with pytest.MonkeyPatch.context() as m:
        m.delenv("MISTUDIO_DATABASE_URL", raising=False)  # an earlier module may have left one: use home's
        studio = Studio.open(home=home, database_url=f"sqlite:///{home / 'mistudio.db'}")
    ids = []
    for n, name in enumerate(("alpha", "beta")):
        sae = random_sae(64, D_SAE, "blocks.1.hook_resid_pre", model_name=str(model), context_size=32, seed=n)
        with torch.no_grad():
            sae.b_enc[7] = -1e9  # a dead feature
        ids.append(register_sae_from_path(studio, write_saelens(sae, root / name), name=name, source="trained").id)
        extract(studio, ids[-1], str(model), "builtin:corpus", **EXTRACT)
    alpha, beta = ids
    with studio.sessions.begin() as s:
        set_label(s, alpha, 0, "typed cat label")
        first = add_explanation(s, alpha, 1, "French cities and towns", method="np_max-act-logits", model="fake-llm",
                                source="generated", prompt_version="np-1")
        add_score(s, first, "detection", 0.91, model="judge", n_examples=20, details={"tpr": 0.9, "tnr": 0.92})
        add_score(s, first, "fuzzing", 0.55, model="judge", n_examples=20)
        second = add_explanation(s, alpha, 2, "numbers in dates", method="oai_token-act-pair", model="fake-llm",
                                 source="generated")
        add_score(s, second, "detection", 0.58, model="judge")
        add_explanation(s, alpha, 3, "closing brackets", method="import", score=0.4, source="imported")
        third = add_explanation(s, beta, 4, "cities in France", method="np_max-act-logits", model="fake-llm",
                                source="generated")
        add_score(s, third, "detection", 0.7, model="judge")
    return home, alpha, beta


@pytest.fixture()
def client(home: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.setenv("MISTUDIO_HOME", str(home[0]))
    reset_settings()
    studio = Studio.open(home=home[0])
    with TestClient(create_app(studio, start_worker=False)) as c:
        yield c


def _indices(client: TestClient, sae_id: str, **params: object) -> list[int]:
    res = client.get(f"/api/v1/saes/{sae_id}/features", params={"page_size": 1000, **params})
    assert res.status_code == 200, res.text
    return [it["feature_index"] for it in res.json()["items"]]


def test_dashboard_carries_every_explanation_with_scores(client: TestClient, home: tuple[Path, str, str]) -> None:
    _, alpha, _ = home
    dash = client.get(f"/api/v1/saes/{alpha}/features/1/dashboard").json()
    [exp] = dash["explanations"]
    assert exp["description"] == "French cities and towns" and exp["source"] == "generated"
    assert (exp["method"], exp["model"], exp["prompt_version"]) == ("np_max-act-logits", "fake-llm", "np-1")
    assert [(s["scorer"], s["score"], s["model"], s["n_examples"]) for s in exp["scores"]] == [
        ("detection", 0.91, "judge", 20), ("fuzzing", 0.55, "judge", 20)]
    imported = client.get(f"/api/v1/saes/{alpha}/features/3/dashboard").json()["explanations"]
    assert [(e["source"], e["score"], e["scores"]) for e in imported] == [("imported", 0.4, [])]
    assert client.get(f"/api/v1/saes/{alpha}/features/5/dashboard").json()["explanations"] == []


def test_listing_filters_and_sorts_by_score(client: TestClient, home: tuple[Path, str, str]) -> None:
    _, alpha, _ = home
    assert _indices(client, alpha, explained=True) == [0, 1, 2, 3]  # the typed label counts
    unexplained = _indices(client, alpha, explained=False)
    assert unexplained == [i for i in range(D_SAE) if i not in (0, 1, 2, 3)]
    assert _indices(client, alpha, max_score=0.6) == [2]  # best score of any scorer: 1 → 0.91, 2 → 0.58
    assert _indices(client, alpha, max_score=0.6, scorer="fuzzing") == [1]
    assert _indices(client, alpha, min_score=0.9, scorer="detection") == [1]
    assert _indices(client, alpha, min_score=0.0, scorer="simulation") == []
    by_score = client.get(f"/api/v1/saes/{alpha}/features",
                          params={"sort": "score", "order": "desc", "page_size": 4}).json()
    assert [it["feature_index"] for it in by_score["items"][:2]] == [1, 2]  # unscored features follow
    assert [it["best_score"] for it in by_score["items"]] == [0.91, 0.58, None, None]
    ascending = _indices(client, alpha, sort="score", order="asc")
    assert ascending[:2] == [2, 1] and len(ascending) == D_SAE
    row = by_score["items"][0]
    assert row["explanation"] == "French cities and towns" and row["n_explanations"] == 1
    assert _indices(client, alpha, search="french") == [1]  # the browser's search reads explanations too
    bad = client.get(f"/api/v1/saes/{alpha}/features", params={"scorer": "vibes"})
    assert bad.status_code == 422


def test_search_across_saes_rest_and_cli(client: TestClient, home: tuple[Path, str, str]) -> None:
    _, alpha, beta = home
    page = client.get("/api/v1/explanations/search", params={"q": "FRANCE cities"}).json()
    assert [(h["sae_id"], h["feature_index"]) for h in page["items"]] == [(beta, 4)]
    page = client.get("/api/v1/explanations/search", params={"q": "cities"}).json()
    assert page["total"] == 2
    assert [(h["sae_name"], h["feature_index"], h["scores"][0]["scorer"]) for h in page["items"]] == [
        ("alpha", 1, "detection"), ("beta", 4, "detection")]
    only = client.get("/api/v1/explanations/search", params={"q": "cities", "sae_id": alpha}).json()
    assert [h["sae_id"] for h in only["items"]] == [alpha]
    assert client.get("/api/v1/explanations/search", params={"q": "cities", "sae_id": "nope"}).status_code == 404
    assert client.get("/api/v1/explanations/search", params={"q": "   "}).status_code == 422

    from mistudio.cli.main import app

    result = CliRunner().invoke(app, ["explanations", "search", "cities", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)["items"]
    assert [(h["sae_name"], h["description"]) for h in hits] == [("alpha", "French cities and towns"),
                                                                  ("beta", "cities in France")]
    result = CliRunner().invoke(app, ["explanations", "search", "cities", "--sae", beta[:8]])
    assert result.exit_code == 0 and "matching 'cities' (1)" in result.output and "beta" in result.output

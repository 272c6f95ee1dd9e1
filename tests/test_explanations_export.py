"""Every explanation (typed as a label, imported, generated) with its method, model and scores goes into an
export: `explanations/explanations.json`, the feature JSON and the Neuronpedia rows (type and model names as
Neuronpedia's schema has them, score rows, config rows); importing that explanations.json round-trips the scores.
A real extraction and a real export job of a tiny model."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import pytest
import torch

from mistudio.catalog.explanations import add_explanation, add_score, explanations_by_feature
from mistudio.catalog.labels import import_labels, parse_labels
from mistudio.catalog.service import register_sae_from_path
from mistudio.demo import random_sae
from mistudio.export.config import make_config
from mistudio.export.layout import EXPLANATIONS, NP_CONFIG_DIR
from mistudio.export.service import start_export
from mistudio.export.validate.validator import validate_export
from mistudio.extraction.service import extract, latest_extraction_id
from mistudio.extraction.summaries import list_features, set_label
from mistudio.saes.formats import write_saelens
from mistudio.studio import Studio
from mistudio.testing.tiny_models import build_tiny_model

D_SAE = 32


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("assets")
    model = build_tiny_model("gpt2", root / "model")
    sae = random_sae(64, D_SAE, "blocks.1.hook_resid_pre", model_name=str(model), context_size=32)
    with torch.no_grad():
        sae.b_enc[:8] += 0.3  # features that fire on the tiny model's small activations
        sae.b_enc[3] = -1e9
    return model, write_saelens(sae, root / "sae")


def _rows(archive: zipfile.ZipFile, kind: str) -> list[dict]:
    return [json.loads(line) for name in archive.namelist() if f"/{kind}/batch-" in name
            for line in gzip.decompress(archive.read(name)).splitlines()]


def test_export_carries_every_explanation_with_scores(studio: Studio, assets: tuple[Path, Path]) -> None:
    model, sae_path = assets
    sae_id = register_sae_from_path(studio, sae_path, name="tiny", source="trained").id
    extract(studio, sae_id, str(model), "builtin:corpus", n_tokens=1024, context_size=32, top_k=20)
    with studio.sessions.begin() as s:
        ext_id = latest_extraction_id(studio, sae_id)
        live = [f.feature_index for f in list_features(s, ext_id, dead=False, page_size=1000).items]
        typed, imported, generated = live[:3]
        set_label(s, sae_id, typed, "a typed label")
        rows = parse_labels(json.dumps([{"feature_index": imported, "description": "imported words", "model": "m0",
                                         "score": 0.3}]).encode(), "labels.json")
        import_labels(s, sae_id, rows)
        gen = add_explanation(s, sae_id, generated, "French cities", method="np_max-act-logits", model="fake-llm",
                              source="generated", prompt_version="np-1", details={"prompt_tokens": 100})
        add_score(s, gen, "detection", 0.875, model="judge-llm", n_examples=40, details={"tpr": 0.9, "tnr": 0.85})
        add_score(s, gen, "fuzzing", 0.6, model="judge-llm", n_examples=40)
        add_score(s, gen, "simulation", 0.42, model="judge-llm")

    started = start_export(studio, sae_id, make_config(model_id="tiny-gpt2", batch_size=16))
    state = studio.runner.run_inline(started.job_id)
    assert state.status == "completed", state
    path = studio.settings.home / "exports" / f"{started.job_id}.zip"  # where the export job writes it
    report = validate_export(path)
    assert report.ok, report.to_text()

    with zipfile.ZipFile(path) as archive:
        doc = {e["feature_index"]: e["explanations"] for e in json.loads(archive.read(EXPLANATIONS))["explanations"]}
        assert set(doc) == {typed, imported, generated}
        [t], [i], [g] = doc[typed], doc[imported], doc[generated]
        assert (t["description"], t["method"], t["source"], t["scores"]) == ("a typed label", "manual", "typed", [])
        assert (i["description"], i["method"], i["model"], i["score"], i["source"]) == (
            "imported words", "import", "m0", 0.3, "imported")
        assert (g["method"], g["model"], g["source"], g["prompt_version"]) == (
            "np_max-act-logits", "fake-llm", "generated", "np-1")
        assert [(s["scorer"], s["score"], s["model"], s["n_examples"]) for s in g["scores"]] == [
            ("detection", 0.875, "judge-llm", 40), ("fuzzing", 0.6, "judge-llm", 40), ("simulation", 0.42, "judge-llm", None)]
        assert g["scores"][0]["details"] == {"tpr": 0.9, "tnr": 0.85}

        member = next(n for n in archive.namelist() if n.startswith(f"features/{generated}.json"))
        data = archive.read(member)
        feature_doc = json.loads(gzip.decompress(data) if member.endswith(".gz") else data)
        assert feature_doc["explanations"] == [g]

        explanation_rows = {int(r["index"]): r for r in _rows(archive, "explanations")}
        assert set(explanation_rows) == {typed, imported, generated}
        row = explanation_rows[generated]
        assert (row["typeName"], row["explanationModelName"], row["scoreV1"]) == ("np_max-act-logits", "fake-llm", 0.42)
        assert (explanation_rows[typed]["typeName"], explanation_rows[typed]["explanationModelName"]) == (None, None)
        assert (explanation_rows[imported]["typeName"], explanation_rows[imported]["scoreV1"]) == (None, 0.3)
        score_rows = _rows(archive, "explanation_scores")
        assert sorted((r["explanationScoreTypeName"], r["value"], r["explanationScoreModelName"]) for r in score_rows) == [
            ("eleuther_fuzz", 0.6, "judge-llm"), ("eleuther_recall", 0.875, "judge-llm")]
        assert {r["explanationId"] for r in score_rows} == {row["id"]}
        assert json.loads(next(r for r in score_rows if r["value"] == 0.875)["jsonDetails"]) == {"tpr": 0.9, "tnr": 0.85}

        def config(name: str) -> list[str]:
            return [json.loads(line)["name"] for line in archive.read(f"{NP_CONFIG_DIR}/{name}").splitlines()]

        assert config("explanation_type.jsonl") == ["np_max-act-logits"]
        assert config("explanation_model_type.jsonl") == ["fake-llm"]
        assert config("explanation_score_type.jsonl") == ["eleuther_fuzz", "eleuther_recall"]
        assert config("explanation_score_model.jsonl") == ["judge-llm"]
        readme = archive.read("README.md").decode()
        assert "eleuther_recall" in readme and NP_CONFIG_DIR in readme
        exported = archive.read(EXPLANATIONS)

    broken = path.with_name("without-model-config.zip")  # a row naming a model no config row defines
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            if item.filename != f"{NP_CONFIG_DIR}/explanation_model_type.jsonl":
                dst.writestr(item, src.read(item.filename))
    unknown = [i for i in validate_export(broken).issues if i.code == "unknown_config_name"]
    assert [i.message.split("'")[1] for i in unknown] == ["fake-llm"]

    with studio.sessions.begin() as s:
        result = import_labels(s, sae_id, parse_labels(exported, "explanations.json"))
        assert result.imported == 3
        back = explanations_by_feature(s, sae_id)
    original, again = back[generated]
    assert original.source == "generated"
    assert (again.description, again.method, again.model, again.prompt_version, again.source) == (
        "French cities", "np_max-act-logits", "fake-llm", "np-1", "imported")
    assert [(s.scorer, s.score, s.model, s.n_examples, s.details) for s in again.scores] == [
        (s["scorer"], s["score"], s["model"], s["n_examples"], s["details"]) for s in g["scores"]]
    assert again.details == {"imported_source": "generated"}
    assert [(e.description, e.method) for e in back[typed]] == [("a typed label", "manual")]

"""Neuronpedia's names for explanation types, explanation models and score types, and the config rows
(`ExplanationType`, `ExplanationModelType`, `ExplanationScoreType`, `ExplanationScoreModel`) an instance needs
before it imports explanation rows that name them (its importer upserts `config/*.jsonl` first)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mistudio.export.prepare import ExplanationDoc

# Neuronpedia's explanation types (its `ExplanationType.name`; `batch-autointerp.py` and the webapp's explainers)
EXPLANATION_TYPES = {
    "oai_token-act-pair": "OpenAI's token-activation-pair explainer",
    "oai_attention-head": "OpenAI's explainer for attention heads",
    "np_max-act-logits": "Neuronpedia's explainer from the top activations and the top logits",
    "np_max-act": "Neuronpedia's explainer from the top activations",
    "np_acts-logits-general": "Neuronpedia's general explainer from activations and logits",
    "python-code": "Neuronpedia's explainer for Python code",
    "eleuther_acts_top20": "EleutherAI's explainer from the top 20 activations",
}
# our scorer → Neuronpedia's `ExplanationScoreType.name` (the webapp stores delphi's detection as "recall")
SCORE_TYPES = {"detection": "eleuther_recall", "fuzzing": "eleuther_fuzz"}
# OpenAI's simulation score is Neuronpedia's original explanation score: the `scoreV1` column, not a score row
SIMULATION_SCORER = "simulation"
UNKNOWN_MODEL = "unknown"
CONFIG_FILES = ("explanation_type.jsonl", "explanation_model_type.jsonl", "explanation_score_type.jsonl",
                "explanation_score_model.jsonl")


def type_name(method: str | None) -> str | None:
    """The explanation's `typeName`: its method when that is one of Neuronpedia's types, else None (a person's
    explanation, or a method Neuronpedia does not know)."""
    return method if method in EXPLANATION_TYPES else None


def score_type_name(scorer: str) -> str:
    """The score row's `explanationScoreTypeName` (Neuronpedia's name where it has one)."""
    return SCORE_TYPES.get(scorer, scorer)


def row_scores(explanation: ExplanationDoc) -> list[tuple[str, float, str, dict[str, Any]]]:
    """(score type, value, scorer model, details) of the explanation's scores that become score rows."""
    return [(score_type_name(s["scorer"]), float(s["score"]), s.get("model") or UNKNOWN_MODEL, s.get("details") or {})
            for s in explanation.get("scores") or [] if s["scorer"] != SIMULATION_SCORER]


def score_v1(explanation: ExplanationDoc) -> float:
    """`scoreV1`: the latest simulation score, else the score that came with an imported explanation, else 0."""
    sims = [s["score"] for s in explanation.get("scores") or [] if s["scorer"] == SIMULATION_SCORER]
    if sims:
        return float(sims[-1])
    return float(explanation.get("score") or 0.0)


def config_rows(explanations: Iterable[ExplanationDoc], *, creator_id: str, creator_name: str,
                created_at: str) -> dict[str, list[dict[str, Any]]]:
    """The config rows (per file of `CONFIG_FILES`) naming every type and model the explanation and score rows
    use, with the columns of Neuronpedia's Prisma schema."""
    types: set[str] = set()
    models: set[str] = set()
    score_types: set[str] = set()
    score_models: set[str] = set()
    for exp in explanations:
        name = type_name(exp.get("method"))
        if name is not None:
            types.add(name)
            if exp.get("model"):
                models.add(str(exp["model"]))
        for score_type, _value, model, _details in row_scores(exp):
            score_types.add(score_type)
            score_models.add(model)
    stamp = {"createdAt": created_at, "updatedAt": created_at}
    return {
        "explanation_type.jsonl": [
            {"name": n, "displayName": n, "description": EXPLANATION_TYPES[n], "featured": False, "isAttention":
             n == "oai_attention-head", "url": None, "settings": None, "creatorName": creator_name,
             "creatorId": creator_id, **stamp} for n in sorted(types)],
        "explanation_model_type.jsonl": [
            {"name": n, "displayName": n, "description": f"explanations written by {n}", "featured": False,
             "url": None, "creatorName": creator_name, **stamp} for n in sorted(models)],
        "explanation_score_type.jsonl": [
            {"name": n, "displayName": n, "description": f"{n} score", "featured": False, "isAttention": False,
             "scoreDescription": "balanced accuracy in [0, 1]", "url": None, "settings": None,
             "creatorName": creator_name, "creatorId": creator_id, **stamp} for n in sorted(score_types)],
        "explanation_score_model.jsonl": [
            {"name": n, "displayName": n, "description": f"scores computed with {n}", "featured": False,
             "url": None, "creatorName": creator_name, **stamp} for n in sorted(score_models)],
    }

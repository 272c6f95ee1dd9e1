"""The rows of Neuronpedia's bulk-import layout (`neuronpedia/exports/{model_id}/{source_id}/`): one database row
per JSONL line with the column names of Neuronpedia's Prisma schema (what SAEDashboard's `neuronpedia_export.py`
writes)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mistudio.export.layout import BULK_MODEL, BULK_RELEASE, BULK_SOURCE, BULK_SOURCESET, np_bulk_folder
from mistudio.export.neuronpedia.explanation_names import row_scores, score_v1, type_name
from mistudio.export.neuronpedia.ids import NeuronpediaIds, pseudo_cuid
from mistudio.export.prepare import PreparedFeature


@dataclass(frozen=True)
class SharedRowValues:
    """Values repeated on every row."""

    ids: NeuronpediaIds
    creator_id: str
    created_at: str
    dataset: str

    @property
    def folder(self) -> str:
        """The bulk-import folder inside the archive, `neuronpedia/exports/{model_id}/{source_id}`."""
        return np_bulk_folder(self.ids.model_id, self.ids.source_id)


# SAEDashboard batch keys that are not `Neuron` columns (the converter reads them elsewhere or drops them)
_NOT_FEATURE_COLUMNS = ("feature_index", "activations", "vector", "n_prompts_total", "n_tokens_in_prompt", "dataset")


def max_act_approx(batch_feature: dict[str, Any]) -> float:
    """The largest value over the feature's exported activations (the converter's `maxActApprox`)."""
    return max((max(a["values"]) for a in batch_feature["activations"] if a["values"]), default=0.0)


def feature_row(batch_feature: dict[str, Any], np_feature: Mapping[str, Any],
                shared: SharedRowValues) -> dict[str, Any]:
    """A `Neuron` row built from the SAEDashboard batch feature as Neuronpedia's converter builds it, plus the
    decoder cosine top-k of the Neuronpedia data (`topkCosSim*`, which the converter leaves empty)."""
    top = max_act_approx(batch_feature)
    row: dict[str, Any] = {
        "modelId": shared.ids.model_id, "layer": shared.ids.source_id, "index": int(batch_feature["feature_index"]),
        "creatorId": shared.creator_id, "createdAt": shared.created_at, "maxActApprox": top,
        "hasVector": False, "vector": [], "vectorLabel": None, "vectorDefaultSteerStrength": top,
        "hookName": shared.ids.hook_name, "topkCosSimIndices": [int(i) for i in np_feature["topk_cos_sim_indices"]],
        "topkCosSimValues": list(np_feature["topk_cos_sim_values"]),
    }
    for key, value in batch_feature.items():
        if key not in _NOT_FEATURE_COLUMNS:
            row[key] = value
    row["sourceSetName"] = None
    return row


def activation_rows(batch_feature: dict[str, Any], np_feature: Mapping[str, Any],
                    shared: SharedRowValues) -> list[dict[str, Any]]:
    """`Activation` rows of the feature's batch activations (ids are deterministic pseudo-cuids; `dataIndex` is
    the prompt window the example comes from)."""
    rows = []
    index = int(batch_feature["feature_index"])
    for ordinal, (act, raw) in enumerate(zip(batch_feature["activations"], np_feature["activations"], strict=True)):
        values = act["values"]
        top = max(values)
        window = raw.get("window_index")
        rows.append({
            "id": pseudo_cuid(shared.ids.model_id, shared.ids.source_id, index, ordinal),
            "tokens": act["tokens"], "index": index, "layer": shared.ids.source_id, "modelId": shared.ids.model_id,
            "maxValue": top, "maxValueTokenIndex": values.index(top), "minValue": min(values),
            "values": values, "creatorId": shared.creator_id, "dataSource": shared.dataset,
            "dataIndex": None if window is None else str(int(window)),
            "dfaValues": [], "dfaTargetIndex": None, "dfaMaxValue": None, "createdAt": shared.created_at,
            "lossValues": [], "logitContributions": None, "binMin": act["bin_min"], "binMax": act["bin_max"],
            "binContains": act["bin_contains"], "qualifyingTokenIndex": act["qualifying_token_index"],
        })
    return rows


def explanation_rows(feat: PreparedFeature, shared: SharedRowValues) -> list[dict[str, Any]]:
    """`Explanation` rows: `typeName` is the method when Neuronpedia knows it (`explanation_names.type_name`,
    then `explanationModelName` is the model that wrote it), `scoreV1` the simulation score
    (`explanation_names.score_v1`); `notes` keeps method, model and source for every row."""
    rows = []
    for ordinal, exp in enumerate(feat.explanations):
        noted = {"method": exp.get("method"), "model": exp.get("model"), "source": exp.get("source"),
                 "prompt_version": exp.get("prompt_version")}
        notes = "; ".join(f"{k}={v}" for k, v in noted.items() if v is not None)
        name = type_name(exp.get("method"))
        rows.append({
            "id": explanation_row_id(feat.index, ordinal, shared),
            "modelId": shared.ids.model_id, "layer": shared.ids.source_id, "index": str(feat.index),
            "description": exp["description"][:512], "authorId": shared.creator_id, "typeName": name,
            "explanationModelName": (exp.get("model") or None) if name is not None else None,
            "notes": notes or None, "scoreV1": score_v1(exp),
            "createdAt": exp.get("created_at") or shared.created_at,
        })
    return rows


def explanation_row_id(index: int, ordinal: int, shared: SharedRowValues) -> str:
    """The id of the feature's `ordinal`-th explanation row (deterministic pseudo-cuid)."""
    return pseudo_cuid("explanation", shared.ids.model_id, shared.ids.source_id, index, ordinal)


def explanation_score_rows(feat: PreparedFeature, shared: SharedRowValues) -> list[dict[str, Any]]:
    """`ExplanationScore` rows of the feature's explanations (detection → `eleuther_recall`, fuzzing →
    `eleuther_fuzz`; simulation is `scoreV1` of the explanation row), `jsonDetails` the scorer's details."""
    rows = []
    for ordinal, exp in enumerate(feat.explanations):
        explanation_id = explanation_row_id(feat.index, ordinal, shared)
        for n, (score_type, value, model, details) in enumerate(row_scores(exp)):
            rows.append({
                "id": pseudo_cuid("explanation_score", shared.ids.model_id, shared.ids.source_id, feat.index,
                                  ordinal, n),
                "initiatedByUserId": shared.creator_id, "value": value, "explanationId": explanation_id,
                "explanationScoreTypeName": score_type, "explanationScoreModelName": model,
                "jsonDetails": json.dumps(details, sort_keys=True) if details else "",
                "createdAt": exp.get("created_at") or shared.created_at,
            })
    return rows


def metadata_rows(shared: SharedRowValues, *, release_name: str, release_title: str, release_url: str | None,
                  creator_name: str, description: str, n_prompts: int, n_tokens_in_prompt: int,
                  hf_repo_id: str | None, hf_folder_id: str | None, saelens_release: str,
                  saelens_sae_id: str, n_layers: int, neurons_per_layer: int) -> dict[str, dict[str, Any]]:
    """The one-row files `release.jsonl`, `model.jsonl`, `sourceset.jsonl`, `source.jsonl`; the model row records
    the model's layer count and MLP width, as Neuronpedia's own model rows do (0 when unknown)."""
    ids = shared.ids
    urls = [release_url] if release_url else []
    return {
        BULK_RELEASE: {"name": release_name, "description": release_title, "descriptionShort": release_title,
                          "urls": urls, "creatorNameShort": creator_name, "creatorName": creator_name,
                          "creatorId": shared.creator_id, "defaultSourceSetName": ids.source_set,
                          "createdAt": shared.created_at, "visibility": "PUBLIC", "isNewUi": False,
                          "featured": False},
        BULK_MODEL: {"id": ids.model_id, "displayName": ids.model_id, "displayNameShort": ids.model_id,
                        "creatorId": shared.creator_id, "tlensId": ids.model_id, "layers": int(n_layers),
                        "neuronsPerLayer": int(neurons_per_layer),
                        "owner": "", "instruct": ids.model_id.endswith("-it"), "visibility": "PUBLIC",
                        "createdAt": shared.created_at},
        BULK_SOURCESET: {"modelId": ids.model_id, "name": ids.source_set, "description": description,
                            "type": "sae", "creatorName": creator_name, "creatorId": shared.creator_id,
                            "releaseName": release_name, "urls": urls, "visibility": "PUBLIC",
                            "createdAt": shared.created_at},
        BULK_SOURCE: {"id": ids.source_id, "modelId": ids.model_id, "setName": ids.source_set,
                         "creatorId": shared.creator_id, "hasDashboards": True, "inferenceEnabled": False,
                         "saelensRelease": saelens_release, "saelensSaeId": saelens_sae_id,
                         "hfRepoId": hf_repo_id, "hfFolderId": hf_folder_id, "visibility": "PUBLIC",
                         "num_prompts": int(n_prompts), "num_tokens_in_prompt": int(n_tokens_in_prompt),
                         "dataset": shared.dataset, "createdAt": shared.created_at},
    }

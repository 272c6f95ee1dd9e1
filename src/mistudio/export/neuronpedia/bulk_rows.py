"""The rows of Neuronpedia's bulk-import layout (`neuronpedia/exports/{model_id}/{source_id}/`): one database row
per JSONL line with the column names of Neuronpedia's Prisma schema (what SAEDashboard's `neuronpedia_export.py`
writes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mistudio.export.layout import BULK_MODEL, BULK_RELEASE, BULK_SOURCE, BULK_SOURCESET, np_bulk_folder
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


def feature_row(batch_feature: dict[str, Any], feat: PreparedFeature, shared: SharedRowValues) -> dict[str, Any]:
    """A `Neuron` row built from the SAEDashboard batch feature (as the converter does)."""
    row: dict[str, Any] = {
        "modelId": shared.ids.model_id, "layer": shared.ids.source_id, "index": feat.index,
        "creatorId": shared.creator_id, "createdAt": shared.created_at, "maxActApprox": feat.max_act_approx,
        "hasVector": False, "vector": [], "vectorLabel": None, "vectorDefaultSteerStrength": 10,
        "hookName": shared.ids.hook_name, "topkCosSimIndices": [], "topkCosSimValues": [],
    }
    for key, value in batch_feature.items():
        if key not in ("feature_index", "activations", "vector", "n_prompts_total", "n_tokens_in_prompt",
                       "dataset"):
            row[key] = value
    row["sourceSetName"] = None
    return row


def activation_rows(feat: PreparedFeature, shared: SharedRowValues) -> list[dict[str, Any]]:
    """`Activation` rows for the feature's examples (ids are deterministic pseudo-cuids)."""
    rows = []
    for ordinal, ex in enumerate(feat.examples):
        values = ex["values"]
        source = ex.get("source") or {}
        data_index = source.get("window_index", source.get("document"))
        rows.append({
            "id": pseudo_cuid(shared.ids.model_id, shared.ids.source_id, feat.index, ordinal),
            "tokens": ex["tokens"], "index": feat.index, "layer": shared.ids.source_id, "modelId": shared.ids.model_id,
            "maxValue": ex["max_value"], "maxValueTokenIndex": ex["max_token_index"], "minValue": min(values),
            "values": values, "creatorId": shared.creator_id, "dataSource": shared.dataset,
            "dataIndex": None if data_index is None else str(data_index),
            "dfaValues": [], "dfaTargetIndex": None, "dfaMaxValue": None, "createdAt": shared.created_at,
            "lossValues": [], "logitContributions": None, "binMin": ex["bin_min"], "binMax": ex["bin_max"],
            "binContains": ex["bin_contains"], "qualifyingTokenIndex": ex["qualifying_token_index"],
        })
    return rows


def explanation_rows(feat: PreparedFeature, shared: SharedRowValues) -> list[dict[str, Any]]:
    """`Explanation` rows; method/model/score go into `notes` (Neuronpedia's type tables may lack them)."""
    rows = []
    for ordinal, exp in enumerate(feat.explanations):
        notes = "; ".join(f"{k}={exp[k]}" for k in ("method", "model", "score") if exp.get(k) is not None)
        rows.append({
            "id": pseudo_cuid("explanation", shared.ids.model_id, shared.ids.source_id, feat.index, ordinal),
            "modelId": shared.ids.model_id, "layer": shared.ids.source_id, "index": str(feat.index),
            "description": exp["description"][:512], "authorId": shared.creator_id, "typeName": None,
            "explanationModelName": None, "notes": notes or None, "scoreV1": float(exp.get("score") or 0.0),
            "createdAt": exp.get("created_at") or shared.created_at,
        })
    return rows


def metadata_rows(shared: SharedRowValues, *, release_name: str, release_title: str, release_url: str | None,
                  creator_name: str, description: str, n_prompts: int, n_tokens_in_prompt: int,
                  hf_repo_id: str | None, hf_folder_id: str | None, saelens_release: str,
                  saelens_sae_id: str) -> dict[str, dict[str, Any]]:
    """The one-row files `release.jsonl`, `model.jsonl`, `sourceset.jsonl`, `source.jsonl`."""
    ids = shared.ids
    urls = [release_url] if release_url else []
    return {
        BULK_RELEASE: {"name": release_name, "description": release_title, "descriptionShort": release_title,
                          "urls": urls, "creatorNameShort": creator_name, "creatorName": creator_name,
                          "creatorId": shared.creator_id, "defaultSourceSetName": ids.source_set,
                          "createdAt": shared.created_at, "visibility": "PUBLIC", "isNewUi": False,
                          "featured": False},
        BULK_MODEL: {"id": ids.model_id, "displayName": ids.model_id, "displayNameShort": ids.model_id,
                        "creatorId": shared.creator_id, "tlensId": ids.model_id, "layers": 0, "neuronsPerLayer": 0,
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

"""SAEDashboard's batch files `neuronpedia/batch-{k}.json`, exactly as its `NeuronpediaDashboardBatch.to_dict` writes
them, and `neuronpedia/skipped_indexes.json`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mistudio.export.archive.jsonio import render_tokens, round_list
from mistudio.export.neuronpedia.ids import NeuronpediaIds

# Every key NeuronpediaDashboardFeature.to_dict writes, in its order, with the JSON type of its value.
FEATURE_KEYS: dict[str, str] = {
    "feature_index": "int",
    "neuron_alignment_indices": "int[]", "neuron_alignment_values": "float[]", "neuron_alignment_l1": "float[]",
    "correlated_neurons_indices": "int[]", "correlated_neurons_l1": "float[]",
    "correlated_neurons_pearson": "float[]",
    "correlated_features_indices": "int[]", "correlated_features_l1": "float[]",
    "correlated_features_pearson": "float[]",
    "neg_str": "str[]", "neg_values": "float[]", "pos_str": "str[]", "pos_values": "float[]",
    "frac_nonzero": "float",
    "freq_hist_data_bar_values": "float[]", "freq_hist_data_bar_heights": "number[]",
    "logits_hist_data_bar_heights": "number[]", "logits_hist_data_bar_values": "float[]",
    "n_prompts_total": "int", "n_tokens_in_prompt": "int", "dataset": "str",
    "decoder_weights_dist": "float[]", "activations": "object[]", "vector": "float[]",
}
ACTIVATION_KEYS: dict[str, str] = {
    "bin_min": "number", "bin_max": "number", "bin_contains": "number", "tokens": "str[]", "values": "float[]",
    "qualifying_token_index": "int",
}
BATCH_KEYS: dict[str, str] = {"model_id": "str", "layer": "int", "sae_set": "str", "sae_id_suffix": "str|null",
                              "features": "object[]"}
def bin_centres(edges: Sequence[float]) -> list[float]:
    """n+1 histogram edges → n bin centres (SAEDashboard's `HistogramData.bar_values`)."""
    return round_list([(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=False)])


def batch_activation(act: Mapping[str, Any]) -> dict[str, Any]:
    """One `NeuronpediaDashboardActivation.to_dict()` from an activation of the Neuronpedia data (tokens as
    decoded text)."""
    return {"bin_min": act["bin_min"], "bin_max": act["bin_max"], "bin_contains": act["bin_contains"],
            "tokens": render_tokens(list(act["tokens"])), "values": list(act["values"]),
            "qualifying_token_index": int(act["qualifying_token_index"])}


def batch_feature(np_feature: Mapping[str, Any], *, dataset: str) -> dict[str, Any]:
    """One `NeuronpediaDashboardFeature.to_dict()`, in its key order, from the feature's Neuronpedia data
    (`export.source.NeuronpediaSource`); `dataset` is the archive's public dataset id."""
    out: dict[str, Any] = {}
    for key in FEATURE_KEYS:
        if key == "activations":
            out[key] = [batch_activation(a) for a in np_feature["activations"]]
        elif key == "dataset":
            out[key] = dataset
        elif key in ("pos_str", "neg_str"):
            out[key] = render_tokens(list(np_feature[key]))
        else:
            value = np_feature[key]
            out[key] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def batch_document(ids: NeuronpediaIds, features: list[dict[str, Any]]) -> dict[str, Any]:
    """One `NeuronpediaDashboardBatch.to_dict()`."""
    return {"model_id": ids.model_id, "layer": ids.layer, "sae_set": ids.source_set,
            "sae_id_suffix": ids.sae_id_suffix, "features": features}


def skipped_document(ids: NeuronpediaIds, skipped: list[int], log_sparsity: int = -6) -> dict[str, Any]:
    """`skipped_indexes.json` as the runner writes it (dead features are not in any batch)."""
    return {"model_id": ids.model_id, "layer": str(ids.layer), "sae_set": ids.source_set,
            "log_sparsity": log_sparsity, "skipped_indexes": sorted(skipped)}

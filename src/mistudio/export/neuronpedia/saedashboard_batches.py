"""SAEDashboard's batch files `neuronpedia/batch-{k}.json`, exactly as its `NeuronpediaDashboardBatch.to_dict` writes
them, and `neuronpedia/skipped_indexes.json`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mistudio.export.archive.jsonio import round_list, sig_float
from mistudio.export.neuronpedia.ids import NeuronpediaIds
from mistudio.export.prepare import PreparedFeature

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
_EMPTY_LISTS = ("neuron_alignment_indices", "neuron_alignment_values", "neuron_alignment_l1",
                "correlated_neurons_indices", "correlated_neurons_l1", "correlated_neurons_pearson",
                "correlated_features_indices", "correlated_features_l1", "correlated_features_pearson")


def bin_centres(edges: Sequence[float]) -> list[float]:
    """n+1 histogram edges → n bin centres (SAEDashboard's `HistogramData.bar_values`)."""
    return round_list([(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=False)])


def batch_feature(feat: PreparedFeature, *, n_prompts: int, n_tokens_in_prompt: int,
                  dataset: str) -> dict[str, Any]:
    """One `NeuronpediaDashboardFeature.to_dict()`."""
    out: dict[str, Any] = {"feature_index": feat.index}
    out.update({key: [] for key in _EMPTY_LISTS})
    out.update({
        "neg_str": [t["token"] for t in feat.top_negative], "neg_values": [t["value"] for t in feat.top_negative],
        "pos_str": [t["token"] for t in feat.top_positive], "pos_values": [t["value"] for t in feat.top_positive],
        "frac_nonzero": sig_float(feat.statistics.get("activation_frequency", 0.0)),
        "freq_hist_data_bar_values": bin_centres(feat.histogram.get("bin_edges") or []),
        "freq_hist_data_bar_heights": list(feat.histogram.get("counts") or []),
        "logits_hist_data_bar_heights": list(feat.logits_histogram.get("counts") or []),
        "logits_hist_data_bar_values": bin_centres(feat.logits_histogram.get("bin_edges") or []),
        "n_prompts_total": int(n_prompts),
        "n_tokens_in_prompt": int(n_tokens_in_prompt),
        "dataset": dataset,
        "decoder_weights_dist": [],
        "activations": [{"bin_min": ex["bin_min"], "bin_max": ex["bin_max"], "bin_contains": ex["bin_contains"],
                         "tokens": ex["tokens"], "values": ex["values"],
                         "qualifying_token_index": ex["qualifying_token_index"]} for ex in feat.examples],
        "vector": [],
    })
    return out


def batch_document(ids: NeuronpediaIds, features: list[dict[str, Any]]) -> dict[str, Any]:
    """One `NeuronpediaDashboardBatch.to_dict()`."""
    return {"model_id": ids.model_id, "layer": ids.layer, "sae_set": ids.source_set,
            "sae_id_suffix": ids.sae_id_suffix, "features": features}


def skipped_document(ids: NeuronpediaIds, skipped: list[int], log_sparsity: int = -6) -> dict[str, Any]:
    """`skipped_indexes.json` as the runner writes it (dead features are not in any batch)."""
    return {"model_id": ids.model_id, "layer": str(ids.layer), "sae_set": ids.source_set,
            "log_sparsity": log_sparsity, "skipped_indexes": sorted(skipped)}

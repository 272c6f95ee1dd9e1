"""One feature as SAEDashboard's Neuronpedia runner writes it (`NeuronpediaDashboardFeature.to_dict()`), read from
a feature store: the ONE source of everything an export sends to Neuronpedia.

The activation-dependent fields come from the store's `neuronpedia` part (`extraction.neuronpedia_pass`), the
weight-only ones (neuron alignment, logit lens, decoder cosine top-k) from `neuronpedia_weights`
(`extraction.related_weights`); `logit_lens="folded"` takes the logit lens from our own `logit_lens` part
instead. Values are rounded as `NeuronpediaConverter` rounds them: lists `np.round(…, 3)`, `frac_nonzero` parsed
back from its `:.3%` title, band edges from `.3f`, `bin_contains` from `.3%`; example values are rounded to 4
(`SequenceData`) and then to 3. Every example drops position 0 (its tokens and values are positions 1 … C-1) and
`qualifying_token_index` is the position − 1. Token strings are our decoded display strings (`store.vocab`).
Two deliberate differences from SAEDashboard: the top group holds one example per window (the windows with the
largest max, only those where the feature fires), and tokens are decoded text.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

import numpy as np

from mistudio.errors import NotFoundError
from mistudio.extraction.logit_lens import histc_bar_values
from mistudio.store.feature_store import FeatureStore

NEURONPEDIA_PART = "neuronpedia"
WEIGHTS_PART = "neuronpedia_weights"
LOGIT_ROWS = 10
LogitLens = Literal["neuronpedia", "folded"]


class NeuronpediaActivation(TypedDict):
    """One example: `NeuronpediaDashboardActivation.to_dict()` plus `token_ids` and `window_index`."""

    bin_min: float
    bin_max: float
    bin_contains: float
    tokens: list[str]
    values: list[float]
    qualifying_token_index: int
    token_ids: list[int]
    window_index: int


class NeuronpediaFeature(TypedDict):
    """One feature: the keys of `NeuronpediaDashboardFeature.to_dict()` plus the decoder cosine top-k."""

    feature_index: int
    neuron_alignment_indices: list[int]
    neuron_alignment_values: list[float]
    neuron_alignment_l1: list[float]
    correlated_neurons_indices: list[int]
    correlated_neurons_l1: list[float]
    correlated_neurons_pearson: list[float]
    correlated_features_indices: list[int]
    correlated_features_l1: list[float]
    correlated_features_pearson: list[float]
    neg_str: list[str]
    neg_values: list[float]
    pos_str: list[str]
    pos_values: list[float]
    frac_nonzero: float
    freq_hist_data_bar_values: list[float]
    freq_hist_data_bar_heights: list[int]
    logits_hist_data_bar_heights: list[int]
    logits_hist_data_bar_values: list[float]
    n_prompts_total: int
    n_tokens_in_prompt: int
    dataset: str
    decoder_weights_dist: list[float]
    activations: list[NeuronpediaActivation]
    vector: list[float]
    topk_cos_sim_indices: list[int]
    topk_cos_sim_values: list[float]


def has_neuronpedia_data(store: FeatureStore) -> bool:
    """Whether the store holds the Neuronpedia pass (an extraction made before it existed does not)."""
    return store.has(NEURONPEDIA_PART)


def round_list(values: Any) -> list[float]:
    """`FeatureProcessor.round_list`: `np.round(values, 3)` as Python floats."""
    return np.round(np.asarray(values, dtype=np.float64), 3).tolist()


def example_values(values: np.ndarray) -> list[float]:
    """An example's values as SAEDashboard writes them: Python's `round(v, 4)` (`package_sequences_data`), then
    `np.round(…, 3)` (the converter). Vectorised: `np.round(v, 4)` equals Python's correctly rounded `round` except
    where `v × 10⁴` lies next to a half, and those few values are rounded by Python itself."""
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    out = np.round(a, 4)
    scaled = a * 1e4
    for i in np.flatnonzero(np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6):
        out[i] = round(float(a[i]), 4)
    return round_list(out)


def _ints(values: np.ndarray) -> list[int]:
    return np.asarray(values).reshape(-1).astype(np.int64).tolist()


def _strings(store: FeatureStore, ids: np.ndarray) -> list[str]:
    vocab = store.vocab
    n = len(vocab)
    return [vocab[i] if 0 <= i < n else "" for i in _ints(ids)]


def histogram_bar_values(vmin: float, vmax: float, n_bins: int) -> list[float]:
    """`HistogramData.from_data`'s bar values for data with this min and max (`logit_lens.histc_bar_values`),
    rounded to 5 decimals as it rounds them."""
    return [round(x, 5) for x in histc_bar_values([vmin], [vmax], n_bins)[0].tolist()]


def percent_title_value(fraction: float) -> float:
    """A fraction as SAEDashboard's `:.3%` title shows it, parsed back as the converter parses it."""
    return float(f"{fraction:.3%}".rstrip("%")) / 100


def _activation(store: FeatureStore, window: int, position: int, row: np.ndarray,
                bins: tuple[float, float, float]) -> NeuronpediaActivation:
    ids = store.windows()["tokens"][window].numpy().astype(np.int64)[1:]
    return {"bin_min": bins[0], "bin_max": bins[1], "bin_contains": bins[2], "tokens": _strings(store, ids),
            "values": example_values(row[1:]),
            "qualifying_token_index": position - 1, "token_ids": ids.tolist(), "window_index": window}


_FEATURE_KEYS = ("count", "hist", "min", "max", "neuron_indices", "feature_indices", "neuron_cosine", "neuron_pearson",
                 "feature_cosine", "feature_pearson")
_ACTIVATION_KEYS = ("max", "top_values", "top_windows", "top_positions", "top_rows", "band_edges", "band_counts",
                    "band_windows", "band_positions", "band_rows")


def _activations(store: FeatureStore, index: int, n_positions: int) -> list[NeuronpediaActivation]:
    """The top group (best first) then the quantile bands, highest first; each band's examples in (window,
    position) order."""
    got = {key: value.numpy() for key, value in store.rows(NEURONPEDIA_PART, _ACTIVATION_KEYS, index).items()}

    def row(key: str) -> np.ndarray:
        return got[key]

    vmax = float(row("max"))
    examples: list[NeuronpediaActivation] = []
    top_bins: tuple[float, float, float] = (-1, float(f"{vmax:.3f}"), -1)
    values, windows, positions, rows = row("top_values"), row("top_windows"), row("top_positions"), row("top_rows")
    for k in np.flatnonzero((windows >= 0) & (values > 0)):
        examples.append(_activation(store, int(windows[k]), int(positions[k]), rows[k], top_bins))
    edges, counts = row("band_edges"), row("band_counts")
    b_windows, b_positions, b_rows = row("band_windows"), row("band_positions"), row("band_rows")
    for b in range(len(counts) - 1, -1, -1):
        share = float(np.float32(counts[b]) / np.float32(max(n_positions, 1)))
        bins = (float(f"{float(edges[b]):.3f}"), float(f"{float(edges[b + 1]):.3f}"), percent_title_value(share))
        held = [k for k in range(b_windows.shape[1]) if b_windows[b, k] >= 0]
        held.sort(key=lambda k: (int(b_windows[b, k]), int(b_positions[b, k])))
        examples += [_activation(store, int(b_windows[b, k]), int(b_positions[b, k]), b_rows[b, k], bins)
                     for k in held]
    return examples


def _weights(store: FeatureStore, index: int) -> dict[str, np.ndarray] | None:
    if not store.has(WEIGHTS_PART):
        return None
    keys = ("neuron_alignment_indices", "neuron_alignment_values", "neuron_alignment_l1", "cos_indices",
            "cos_values", "logit_pos_ids", "logit_pos_values", "logit_neg_ids", "logit_neg_values",
            "logit_hist_heights", "logit_hist_values")
    return {key: value.numpy() for key, value in store.rows(WEIGHTS_PART, keys, index).items()}


def _logits(store: FeatureStore, index: int, weights: dict[str, np.ndarray] | None,
            logit_lens: LogitLens) -> dict[str, Any]:
    """pos/neg strings and values and the logits histogram in the chosen convention ([] when not stored)."""
    empty: dict[str, Any] = {"pos_str": [], "pos_values": [], "neg_str": [], "neg_values": [],
                             "logits_hist_data_bar_heights": [], "logits_hist_data_bar_values": []}
    if logit_lens == "folded":
        if not store.has("logit_lens"):
            return empty
        lens = {key: value.numpy() for key, value in store.rows("logit_lens", (
            "pos_ids", "pos_vals", "neg_ids", "neg_vals", "hist_counts", "hist_min", "hist_max"), index).items()}
        counts = lens["hist_counts"]
        if counts.size == 0:  # no logit lens for this SAE's hook
            return empty
        return {"pos_str": _strings(store, lens["pos_ids"][:LOGIT_ROWS]),
                "pos_values": round_list(lens["pos_vals"][:LOGIT_ROWS]),
                "neg_str": _strings(store, lens["neg_ids"][:LOGIT_ROWS]),
                "neg_values": round_list(lens["neg_vals"][:LOGIT_ROWS]),
                "logits_hist_data_bar_heights": _ints(counts),
                "logits_hist_data_bar_values": round_list(histogram_bar_values(
                    float(lens["hist_min"]), float(lens["hist_max"]), len(counts)))}
    if weights is None or weights["logit_hist_heights"].size == 0:
        return empty
    return {"pos_str": _strings(store, weights["logit_pos_ids"]),
            "pos_values": round_list(weights["logit_pos_values"]),
            "neg_str": _strings(store, weights["logit_neg_ids"]),
            "neg_values": round_list(weights["logit_neg_values"]),
            "logits_hist_data_bar_heights": _ints(weights["logit_hist_heights"]),
            "logits_hist_data_bar_values": round_list([round(float(v), 5) for v in weights["logit_hist_values"]])}


def neuronpedia_feature(store: FeatureStore, index: int, *, logit_lens: LogitLens = "neuronpedia",
                        dataset: str | None = None) -> NeuronpediaFeature:
    """Feature `index` as SAEDashboard's Neuronpedia runner writes it (see the module docstring); `dataset`
    (the dataset's hub id) replaces the manifest's.

    Raises:
        NotFoundError: no such feature, or the store has no Neuronpedia pass.
    """
    store.check_index(index)
    if not has_neuronpedia_data(store):
        sae_id = store.manifest.get("sae_id") or "SAE_ID"
        raise NotFoundError(f"the feature store at {store.path} has no Neuronpedia data (it was extracted before "
                            f"the Neuronpedia pass existed, or with --no-neuronpedia); run `mistudio extract "
                            f"{sae_id} …` again with the same settings to add it")
    got = {key: value.numpy() for key, value in store.rows(NEURONPEDIA_PART, _FEATURE_KEYS, index).items()}

    def row(key: str) -> np.ndarray:
        return got[key]

    count = int(row("count"))
    n_positions = int(store.array(NEURONPEDIA_PART, "n_positions"))
    frac = count / n_positions if n_positions else 0.0
    heights: list[int] = []
    bar_values: list[float] = []
    if count:
        heights = _ints(row("hist"))
        bar_values = round_list(histogram_bar_values(float(row("min")), float(row("max")), len(heights)))
    weights = _weights(store, index)
    no_weights: dict[str, list[Any]] = {"neuron_alignment_indices": [], "neuron_alignment_values": [],
                                        "neuron_alignment_l1": [], "topk_cos_sim_indices": [],
                                        "topk_cos_sim_values": []}
    weight_fields: dict[str, list[Any]] = no_weights if weights is None else {
        "neuron_alignment_indices": _ints(weights["neuron_alignment_indices"]),
        "neuron_alignment_values": round_list(weights["neuron_alignment_values"]),
        "neuron_alignment_l1": round_list(weights["neuron_alignment_l1"]),
        "topk_cos_sim_indices": _ints(weights["cos_indices"]),
        "topk_cos_sim_values": [float(v) for v in weights["cos_values"]]}
    neuron_idx, feature_idx = row("neuron_indices"), row("feature_indices")
    keep = feature_idx >= 0
    logits = _logits(store, index, weights, logit_lens)
    return {
        "feature_index": index,
        "neuron_alignment_indices": weight_fields["neuron_alignment_indices"],
        "neuron_alignment_values": weight_fields["neuron_alignment_values"],
        "neuron_alignment_l1": weight_fields["neuron_alignment_l1"],
        "correlated_neurons_indices": _ints(neuron_idx),
        "correlated_neurons_l1": round_list(row("neuron_cosine")),
        "correlated_neurons_pearson": round_list(row("neuron_pearson")),
        "correlated_features_indices": _ints(feature_idx[keep]),
        "correlated_features_l1": round_list(row("feature_cosine")[keep]),
        "correlated_features_pearson": round_list(row("feature_pearson")[keep]),
        "neg_str": logits["neg_str"], "neg_values": logits["neg_values"],
        "pos_str": logits["pos_str"], "pos_values": logits["pos_values"],
        "frac_nonzero": percent_title_value(frac) if count else 0.0,
        "freq_hist_data_bar_values": bar_values, "freq_hist_data_bar_heights": heights,
        "logits_hist_data_bar_heights": logits["logits_hist_data_bar_heights"],
        "logits_hist_data_bar_values": logits["logits_hist_data_bar_values"],
        "n_prompts_total": int(store.manifest.get("n_windows") or len(store.windows()["tokens"])),
        "n_tokens_in_prompt": int(store.manifest.get("context_size") or store.windows()["tokens"].shape[1]),
        "dataset": dataset if dataset is not None else str(store.manifest.get("dataset") or ""),
        "decoder_weights_dist": [],
        "activations": _activations(store, index, n_positions),
        "vector": [],
        "topk_cos_sim_indices": weight_fields["topk_cos_sim_indices"],
        "topk_cos_sim_values": weight_fields["topk_cos_sim_values"],
    }

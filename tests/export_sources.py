"""`InMemorySource`: a `DashboardSource` over dashboards built by brute force from arrays in memory, and
`InMemoryNeuronpedia`: a `NeuronpediaSource` over Neuronpedia features built the same way (SAEDashboard's rules
applied with numpy, decoder rows taken as already folded), for tests of the export's writers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from mistudio.export.source import dataset_name


class InMemorySource:
    """A `DashboardSource` over dashboard dicts held in memory."""

    def __init__(self, dashboards: Sequence[dict[str, Any]], manifest: dict[str, Any]) -> None:
        self._dashboards = list(dashboards)
        self._manifest = dict(manifest)

    @property
    def n_features(self) -> int:
        """Number of features."""
        return len(self._dashboards)

    @property
    def manifest(self) -> dict[str, Any]:
        """The extraction manifest."""
        return self._manifest

    def feature_dashboard(self, index: int, *, n_examples: int | None = None, logit_k: int | None = None,
                          n_bins: int | None = None, include_intervals: bool = True) -> dict[str, Any]:
        """Feature `index`'s dashboard, cut to `n_examples` top examples and `logit_k` logits."""
        dash = dict(self._dashboards[index])
        top = [a for a in dash["activations"] if a.get("bin_min", -1) == -1]
        intervals = [a for a in dash["activations"] if a.get("bin_min", -1) != -1] if include_intervals else []
        dash["activations"] = (top if n_examples is None else top[:n_examples]) + intervals
        if logit_k is not None:
            logits = dict(dash["logits"])
            logits["top_positive"] = logits["top_positive"][:logit_k]
            logits["top_negative"] = logits["top_negative"][:logit_k]
            dash["logits"] = logits
        return dash

    def iter_dashboards(self, indices: Iterable[int], *, n_examples: int | None = None,
                        logit_k: int | None = None, n_bins: int | None = None,
                        include_intervals: bool = True) -> Iterator[dict[str, Any]]:
        """Dashboards of `indices`, in order."""
        for index in indices:
            yield self.feature_dashboard(index, n_examples=n_examples, logit_k=logit_k, n_bins=n_bins,
                                         include_intervals=include_intervals)

    def summary_arrays(self) -> dict[str, np.ndarray]:
        """frequency, max, mean and dead per feature."""
        stats = [d["statistics"] for d in self._dashboards]
        return {
            "frequency": np.array([s["activation_frequency"] for s in stats], dtype=np.float64),
            "max": np.array([s["max_activation"] for s in stats], dtype=np.float64),
            "mean": np.array([s["mean_activation"] for s in stats], dtype=np.float64),
            "dead": np.array([bool(s["dead"]) for s in stats]),
        }

    @classmethod
    def from_activations(cls, acts: np.ndarray, token_ids: np.ndarray, vocab: Sequence[str],
                         logit_weights: np.ndarray, manifest: dict[str, Any], *, max_examples: int = 100,
                         n_bins: int = 50, logit_k: int = 50) -> InMemorySource:
        """Brute-force dashboards from encoded activations `[windows, context_size, d_sae]`, window token ids
        `[windows, context_size]`, rendered vocabulary strings and per-feature logit weights `[d_sae, vocab]` (W_dec·W_U)."""
        dashboards = [_dashboard(f, acts[..., f], token_ids, vocab, logit_weights[f], manifest,
                                 max_examples, n_bins, logit_k) for f in range(acts.shape[-1])]
        return cls(dashboards, manifest)


def _histogram(values: np.ndarray, n_bins: int) -> tuple[list[float], list[int]]:
    top = float(values.max()) if values.size else 1.0
    low = float(values.min()) if values.size and values.min() < 0 else 0.0
    counts, edges = np.histogram(values, bins=n_bins, range=(low, top if top > low else low + 1.0))
    return edges.tolist(), counts.astype(int).tolist()


def _dashboard(index: int, acts: np.ndarray, token_ids: np.ndarray, vocab: Sequence[str], logits: np.ndarray,
               manifest: dict[str, Any], max_examples: int, n_bins: int, logit_k: int) -> dict[str, Any]:
    active = acts[acts > 0]
    n_tokens = int(acts.size)
    window_max = acts.max(axis=1)
    order = [int(w) for w in np.lexsort((np.arange(len(window_max)), -window_max)) if window_max[w] > 0]
    examples = []
    for w in order[:max_examples]:
        values = acts[w].astype(np.float64)
        peak = int(values.argmax())
        examples.append({
            "tokens": [vocab[t] for t in token_ids[w]], "token_ids": [int(t) for t in token_ids[w]],
            "values": values.tolist(), "max_value": float(values[peak]), "max_token_index": peak,
            "qualifying_token_index": peak, "bin_min": -1.0, "bin_max": -1.0, "bin_contains": -1.0,
            "source": {"dataset": dataset_name(manifest), "document": w, "offset": 0, "window_index": w},
        })
    q = np.quantile(active, [0.25, 0.5, 0.75, 0.95, 0.99]) if active.size else np.zeros(5)
    edges, counts = _histogram(active.astype(np.float64), n_bins)
    pos = np.argsort(-logits, kind="stable")[:logit_k]
    neg = np.argsort(logits, kind="stable")[:logit_k]
    l_edges, l_counts = _histogram(logits.astype(np.float64), n_bins)
    totals: dict[int, list[float]] = {}
    for ex in examples:
        for tid, value in zip(ex["token_ids"], ex["values"], strict=False):
            if value > 0:
                totals.setdefault(tid, []).append(value)
    ranked = sorted(totals.items(), key=lambda kv: (-sum(kv[1]), kv[0]))
    return {
        "feature_index": index,
        "statistics": {
            "activation_frequency": active.size / n_tokens, "n_active": int(active.size), "n_tokens": n_tokens,
            "max_activation": float(active.max()) if active.size else 0.0,
            "min_activation": float(active.min()) if active.size else 0.0,
            "mean_activation": float(active.mean()) if active.size else 0.0,
            "std_activation": float(active.std()) if active.size else 0.0,
            "l0_contribution": active.size / max(1, acts.shape[0] * acts.shape[1]),
            "dead": not active.size,
            "quantiles": dict(zip(("p25", "p50", "p75", "p95", "p99"), (float(v) for v in q), strict=False)),
            "quantile_error_bound": 0.0,
        },
        "activations": examples,
        "histogram": {"bin_edges": edges, "counts": counts, "total_count": n_tokens,
                      "nonzero_count": int(active.size), "log_scale": False},
        "logits": {
            "top_positive": [{"token": vocab[t], "token_id": int(t), "value": float(logits[t]), "rank": r}
                             for r, t in enumerate(pos)],
            "top_negative": [{"token": vocab[t], "token_id": int(t), "value": float(logits[t]), "rank": r}
                             for r, t in enumerate(neg)],
            "histogram": {"bin_edges": l_edges, "counts": l_counts},
        },
        "top_tokens": [{"token": vocab[t], "token_id": t, "total_activation": float(sum(v)), "count": len(v),
                        "mean_activation": float(sum(v) / len(v)), "max_activation": float(max(v))}
                       for t, v in ranked],
    }


class InMemoryNeuronpedia:
    """A `NeuronpediaSource` over features computed by brute force from arrays in memory."""

    def __init__(self, features: Sequence[dict[str, Any]]) -> None:
        self._features = list(features)

    def has_neuronpedia_data(self) -> bool:
        """Always: the features are computed up front."""
        return True

    def neuronpedia_feature(self, index: int, *, logit_lens: str = "neuronpedia") -> dict[str, Any]:
        """Feature `index`; the `folded` lens halves the logits (a different, recognisable table)."""
        feat = self._features[index]
        if logit_lens == "folded":
            feat = {**feat, "pos_values": [round(v / 2, 3) for v in feat["pos_values"]],
                    "neg_values": [round(v / 2, 3) for v in feat["neg_values"]]}
        return feat

    @classmethod
    def from_activations(cls, acts: np.ndarray, inputs: np.ndarray, token_ids: np.ndarray, vocab: Sequence[str],
                         logit_weights: np.ndarray, decoder: np.ndarray, manifest: dict[str, Any],
                         seed: int = 0) -> InMemoryNeuronpedia:
        """Features from encoded activations `[windows, context, d_sae]`, the SAE inputs `[windows, context, d_in]`,
        window token ids, vocabulary strings, logit weights `[d_sae, vocab]` and decoder rows `[d_sae, d_in]`."""
        rng = np.random.default_rng(seed)
        flat = acts.reshape(-1, acts.shape[-1]).astype(np.float64)
        x = inputs.reshape(-1, inputs.shape[-1]).astype(np.float64)
        unit = decoder / np.linalg.norm(decoder, axis=1, keepdims=True)
        cos = unit @ unit.T
        return cls([_np_feature(f, acts[..., f], flat, x, token_ids, vocab, logit_weights[f], decoder[f], cos[f],
                                manifest, rng) for f in range(acts.shape[-1])])


def _r3(values: Any) -> list[float]:
    return np.round(np.asarray(values, dtype=np.float64), 3).tolist()


def _hist50(values: np.ndarray) -> tuple[list[float], list[int]]:
    if not values.size:
        return [], []
    lo, hi = float(values.min()), float(values.max())
    counts, edges = np.histogram(values, bins=50, range=(lo, hi if hi > lo else lo + 1e-6))
    return _r3((edges[:-1] + edges[1:]) / 2), counts.astype(int).tolist()


def _top3(scores: np.ndarray, exclude: int | None = None) -> list[int]:
    order = [int(i) for i in np.argsort(-scores, kind="stable") if i != exclude]
    return order[:3]


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a - a.mean(), b - b.mean(axis=0)
    denom = np.linalg.norm(a) * np.linalg.norm(b, axis=0)
    return np.where(denom > 0, a @ b / np.where(denom > 0, denom, 1.0), 0.0)


def _np_example(window: int, position: int, acts: np.ndarray, token_ids: np.ndarray, vocab: Sequence[str],
                bins: tuple[float, float, float]) -> dict[str, Any]:
    ids = [int(t) for t in token_ids[window][1:]]
    return {"bin_min": bins[0], "bin_max": bins[1], "bin_contains": bins[2], "tokens": [vocab[t] for t in ids],
            "values": _r3(acts[window][1:]), "qualifying_token_index": position - 1, "token_ids": ids,
            "window_index": window}


def _np_feature(index: int, acts: np.ndarray, flat: np.ndarray, x: np.ndarray, token_ids: np.ndarray,
                vocab: Sequence[str], logits: np.ndarray, row: np.ndarray, cos: np.ndarray,
                manifest: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    acts = acts.astype(np.float64)
    mine = flat[:, index]
    top_value = float(acts[:, 1:].max()) if acts.size else 0.0
    activations: list[dict[str, Any]] = []
    if top_value > 0:
        window_max = acts[:, 1:].max(axis=1)
        order = [int(w) for w in np.lexsort((np.arange(len(window_max)), -window_max)) if window_max[w] > 0][:20]
        activations = [_np_example(w, 1 + int(acts[w, 1:].argmax()), acts, token_ids, vocab,
                                   (-1, round(top_value, 3), -1)) for w in order]
        edges = np.linspace(0, top_value, 6)
        for lo, hi in reversed(list(zip(edges[:-1], edges[1:], strict=True))):
            inside = np.argwhere((acts[:, 1:] >= lo) & (acts[:, 1:] <= hi))
            picks = rng.choice(len(inside), size=min(5, len(inside)), replace=False) if len(inside) else []
            share = float(((acts >= lo) & (acts <= hi)).mean())
            activations += [_np_example(int(inside[k][0]), 1 + int(inside[k][1]), acts, token_ids, vocab,
                                        (round(float(lo), 3), round(float(hi), 3), round(share, 5)))
                            for k in picks]
    freq_values, freq_heights = _hist50(mine[mine > 0])
    logit_values, logit_heights = _hist50(logits)
    pos, neg = np.argsort(-logits, kind="stable")[:10], np.argsort(logits, kind="stable")[:10]
    align = _top3(row)
    corr_neurons = _pearson(mine, x)
    corr_features = _pearson(mine, flat)
    neuron_idx, feature_idx = _top3(corr_neurons), _top3(corr_features, exclude=index)
    cos_idx = [int(i) for i in np.argsort(-cos, kind="stable")[:10]]
    return {
        "feature_index": index,
        "neuron_alignment_indices": align, "neuron_alignment_values": _r3(row[align]),
        "neuron_alignment_l1": _r3(np.abs(row[align]) / np.abs(row).sum()),
        "correlated_neurons_indices": neuron_idx, "correlated_neurons_l1": _r3(corr_neurons[neuron_idx]),
        "correlated_neurons_pearson": _r3(corr_neurons[neuron_idx]),
        "correlated_features_indices": feature_idx, "correlated_features_l1": _r3(corr_features[feature_idx]),
        "correlated_features_pearson": _r3(corr_features[feature_idx]),
        "neg_str": [vocab[int(t)] for t in neg], "neg_values": _r3(logits[neg]),
        "pos_str": [vocab[int(t)] for t in pos], "pos_values": _r3(logits[pos]),
        "frac_nonzero": float((mine > 0).sum() / mine.size),
        "freq_hist_data_bar_values": freq_values, "freq_hist_data_bar_heights": freq_heights,
        "logits_hist_data_bar_heights": logit_heights, "logits_hist_data_bar_values": logit_values,
        "n_prompts_total": int(acts.shape[0]), "n_tokens_in_prompt": int(acts.shape[1]),
        "dataset": dataset_name(manifest), "decoder_weights_dist": [], "activations": activations, "vector": [],
        "topk_cos_sim_indices": cos_idx, "topk_cos_sim_values": _r3(cos[cos_idx]),
    }

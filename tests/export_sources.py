"""`InMemorySource`: a `DashboardSource` over dashboards built by brute force from arrays in memory, for tests."""

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

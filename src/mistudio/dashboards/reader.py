"""Read one feature's dashboard (`dashboards.schemas.FeatureDashboard`) out of a feature store, lazily, from the
stored arrays.

`feature_dashboard(store, index)` assembles one dashboard, `iter_dashboards(store, indices)` yields them one at a
time (bounded memory), and `StoreDashboards(store)` offers both as methods next to the store's manifest and
summary arrays, for readers (export) that take any source of dashboards.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from mistudio.dashboards.schemas import ActivationExample, FeatureDashboard, LogitEntry, Logits, Statistics
from mistudio.dashboards.top_tokens import aggregate_tokens
from mistudio.store.feature_store import FeatureStore
from mistudio.store.fine_grid import linear_histogram, log_histogram

DEFAULT_BINS = 50


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else 0.0


def _finite_statistics(stats: Statistics) -> Statistics:
    """The statistics with every non-finite float replaced by 0.0 (JSON has no inf/nan)."""
    return {**stats, "activation_frequency": _finite(stats["activation_frequency"]),
            "max_activation": _finite(stats["max_activation"]), "min_activation": _finite(stats["min_activation"]),
            "mean_activation": _finite(stats["mean_activation"]), "std_activation": _finite(stats["std_activation"]),
            "l0_contribution": _finite(stats["l0_contribution"]),
            "quantile_error_bound": _finite(stats["quantile_error_bound"])}


def _window_example(store: FeatureStore, w: int, p: int, vals: np.ndarray, max_value: float,
                    context: tuple[int, int] | None, bins: tuple[float, float, float]) -> ActivationExample:
    """One example: window `w`, qualifying position `p`, activation row `vals`, (bin_min, bin_max, contains)."""
    win = store.windows()
    vocab = store.vocab
    ids = win["tokens"][w].numpy().astype(np.int64)
    lo, hi = 0, len(ids)
    if context is not None:
        lo, hi = max(0, p - context[0]), min(len(ids), p + context[1] + 1)
    return {
        "tokens": [vocab[i] if i < len(vocab) else "" for i in ids[lo:hi]],
        "token_ids": [int(i) for i in ids[lo:hi]],
        "values": [float(v) for v in vals[lo:hi]],
        "max_value": float(max_value), "max_token_index": p - lo, "qualifying_token_index": p - lo,
        "bin_min": bins[0], "bin_max": bins[1], "bin_contains": bins[2],
        "source": {"dataset": store.manifest.get("dataset"), "document": int(win["document"][w]),
                   "offset": int(win["offset"][w]), "window_index": w, "start": lo},
    }


def _examples(store: FeatureStore, index: int, n_examples: int | None,
              context: tuple[int, int] | None) -> tuple[list[ActivationExample], np.ndarray, np.ndarray]:
    """Top examples (best first) plus the token ids and values of their windows for top-token aggregation."""
    values = store.row("top_examples", "values", index).numpy()
    windows = store.row("top_examples", "windows", index).numpy()
    positions = store.row("top_examples", "positions", index).numpy()
    rows = store.row("top_examples", "rows", index).numpy()
    keep = np.flatnonzero((values > 0) & (windows >= 0))
    if n_examples is not None:
        keep = keep[:n_examples]
    examples = [_window_example(store, int(windows[k]), int(positions[k]), rows[k], values[k], context,
                                (-1, -1, -1)) for k in keep]
    if not examples:
        return examples, np.zeros(0, np.int64), np.zeros(0, np.float32)
    tokens = store.windows()["tokens"]
    return (examples, np.concatenate([tokens[int(windows[k])].numpy().astype(np.int64) for k in keep]),
            np.concatenate([rows[k] for k in keep]))


def _interval_examples(store: FeatureStore, index: int, counts: np.ndarray, vmax: float,
                       context: tuple[int, int] | None) -> list[ActivationExample]:
    """Neuronpedia-style interval examples, highest interval first: the feature's sampled windows bucketed by
    their max into `n_intervals` equal-width intervals of [0, max] (inner edges snapped up to the fine grid, so
    `bin_contains` is exact), the first `interval_examples` of each by sampling key."""
    settings = store.manifest.get("settings", {})
    n_intervals, per_interval = int(settings.get("n_intervals", 0)), int(settings.get("interval_examples", 0))
    if not store.has("interval_examples") or n_intervals <= 0 or per_interval <= 0 or counts.sum() == 0:
        return []
    keys = store.row("interval_examples", "keys", index).numpy()
    windows = store.row("interval_examples", "windows", index).numpy()
    values = store.row("interval_examples", "values", index).numpy()
    positions = store.row("interval_examples", "positions", index).numpy()
    # float16 rows: cap at the exact window max and put the exact max back at the qualifying position
    rows = np.minimum(store.row("interval_examples", "rows", index).numpy().astype(np.float32), values[:, None])
    rows[np.arange(len(rows)), positions] = values
    edges, interval_counts = linear_histogram(counts, 0.0, vmax, n_intervals)
    total = sum(interval_counts)
    valid = np.flatnonzero(windows >= 0)
    valid = valid[np.argsort(-keys[valid], kind="stable")]  # slots are unordered: highest sampling key first
    bucket = np.searchsorted(np.asarray(edges[1:-1], dtype=np.float64), values[valid].astype(np.float64),
                             side="right")
    examples: list[ActivationExample] = []
    for b in range(len(interval_counts) - 1, -1, -1):
        bins = (float(edges[b]), float(edges[b + 1]), interval_counts[b] / total)
        examples += [_window_example(store, int(windows[k]), int(positions[k]), rows[k], values[k], context, bins)
                     for k in valid[bucket == b][:per_interval]]
    return examples


def logit_entries(ids: list[int], values: list[float], strings: list[str]) -> list[LogitEntry]:
    """Dashboard rows `{token, token_id, value, rank}` (rank 1 = strongest)."""
    return [{"token": strings[i] if 0 <= i < len(strings) else "", "token_id": int(i), "value": float(v),
             "rank": r + 1} for r, (i, v) in enumerate(zip(ids, values, strict=True))]


def _logits(store: FeatureStore, index: int, logit_k: int | None) -> Logits:
    if not store.has("logit_lens"):
        return {"top_positive": [], "top_negative": [], "histogram": {"bin_edges": [], "counts": []}}
    vocab = store.vocab
    k = logit_k
    pos_ids = store.row("logit_lens", "pos_ids", index).tolist()[:k]
    pos_vals = store.row("logit_lens", "pos_vals", index).tolist()[:k]
    neg_ids = store.row("logit_lens", "neg_ids", index).tolist()[:k]
    neg_vals = store.row("logit_lens", "neg_vals", index).tolist()[:k]
    counts = store.row("logit_lens", "hist_counts", index).tolist()
    if not counts:  # no logit lens for this SAE's hook (see the manifest's `logit_lens`)
        return {"top_positive": [], "top_negative": [], "histogram": {"bin_edges": [], "counts": []}}
    lmin = float(store.row("logit_lens", "hist_min", index))
    lmax = float(store.row("logit_lens", "hist_max", index))
    edges = np.linspace(lmin, lmax, len(counts) + 1).tolist()
    return {"top_positive": logit_entries(pos_ids, pos_vals, vocab),
            "top_negative": logit_entries(neg_ids, neg_vals, vocab),
            "histogram": {"bin_edges": [_finite(e) for e in edges], "counts": [int(c) for c in counts]}}


def feature_dashboard(store: FeatureStore, index: int, *, n_examples: int | None = None,
                      top_examples: int | None = None, logit_k: int | None = None, n_bins: int | None = None,
                      context: tuple[int, int] | None = None, rank_tokens_by: str = "sum",
                      include_intervals: bool = True) -> FeatureDashboard:
    """The JSON-ready dashboard of feature `index`: the top examples (at most `top_examples`; all stored when
    None), then, with `include_intervals`, the interval (quantile-band) examples; `n_examples` caps the whole
    list (top examples first, the intervals fill what is left, highest interval first).

    Raises:
        NotFoundError: no such feature, or the store lacks a part the dashboard needs.
    """
    store.check_index(index)
    stats = store.statistics(index)
    n_bins = n_bins or DEFAULT_BINS
    counts = store.fine_counts(index)
    vmin, vmax = stats["min_activation"], stats["max_activation"]
    h_edges, h_counts = log_histogram(counts, vmin, vmax, n_bins)
    f_edges, f_counts = linear_histogram(counts, vmin, vmax, n_bins)
    caps = [cap for cap in (n_examples, top_examples) if cap is not None]
    top_cap = min(caps) if caps else None
    examples, ids, vals = _examples(store, index, top_cap, context)
    if include_intervals and (n_examples is None or len(examples) < n_examples):
        intervals = _interval_examples(store, index, counts, vmax, context)
        examples += intervals if n_examples is None else intervals[:n_examples - len(examples)]
    return {
        "feature_index": index,
        "statistics": _finite_statistics(stats),
        "activations": examples,
        "histogram": {"bin_edges": h_edges, "counts": h_counts, "total_count": stats["n_tokens"],
                      "nonzero_count": stats["n_active"], "log_scale": True},
        "frequency_histogram": {"bin_edges": f_edges, "counts": f_counts, "log_scale": False},
        "logits": _logits(store, index, logit_k),
        "top_tokens": aggregate_tokens(ids, vals, store.vocab, rank_by=rank_tokens_by),
    }


def iter_dashboards(store: FeatureStore, indices: Iterable[int], **options: Any) -> Iterator[FeatureDashboard]:
    """Dashboards of `indices`, one at a time (bounded memory); `options` as for `feature_dashboard`.

    Raises:
        NotFoundError: no such feature, or the store lacks a part the dashboard needs.
    """
    for index in indices:
        yield feature_dashboard(store, int(index), **options)


class StoreDashboards:
    """The dashboards of one feature store, next to its manifest and summary arrays: the export's dashboard
    source (`export.source.DashboardSource`). There `n_examples` is the export's own setting, the number of
    TOP examples per feature, with the interval examples after them: it is passed on as `top_examples`."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store

    @property
    def n_features(self) -> int:
        """Number of SAE features."""
        return self.store.n_features

    @property
    def manifest(self) -> dict[str, Any]:
        """The extraction manifest."""
        return self.store.manifest

    def has(self, part: str) -> bool:
        """Whether the store's `part` is complete."""
        return self.store.has(part)

    def summary_arrays(self) -> dict[str, np.ndarray]:
        """Per-feature frequency, max, mean, dead flag and top token id."""
        return self.store.summary_arrays()

    def feature_dashboard(self, index: int, *, n_examples: int | None = None, **options: Any) -> FeatureDashboard:
        """The dashboard of feature `index` with at most `n_examples` top examples (see `feature_dashboard`).

        Raises:
            NotFoundError: no such feature, or the store lacks a part the dashboard needs.
        """
        return feature_dashboard(self.store, index, top_examples=n_examples, **options)

    def iter_dashboards(self, indices: Iterable[int], *, n_examples: int | None = None,
                        **options: Any) -> Iterator[FeatureDashboard]:
        """Dashboards of `indices`, one at a time, with at most `n_examples` top examples each.

        Raises:
            NotFoundError: no such feature, or the store lacks a part the dashboard needs.
        """
        return iter_dashboards(self.store, indices, top_examples=n_examples, **options)

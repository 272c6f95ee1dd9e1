"""The fixed fine log-spaced grid every non-zero activation is counted on, and what is read back from it.

The grid has `FINE_BINS` bins with edges `10**linspace(LOG_MIN, LOG_MAX, FINE_BINS + 1)`; bin j holds
`edges[j] <= v < edges[j+1]` (bin 0 also holds `0 < v < edges[0]`, the last bin also `v >= edges[-1]`). From the
per-feature counts:
* the log histogram with `n_bins` bins has inner edges on the fine grid and outer edges at the exact min / max,
  so its counts are exact;
* quantiles (nearest rank, `v_(ceil(p·n))`) are the geometric centre of the fine bin holding that rank, clipped to
  [min, max]; for values inside [10**LOG_MIN, 10**LOG_MAX] the relative error is at most `QUANTILE_REL_ERROR`;
* the Neuronpedia-style linear histogram over [min, max] has its inner edges snapped to the nearest fine edge,
  so its counts are exact for the edges it reports (neighbouring
  edges can coincide when the range spans few fine bins).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mistudio.store.schemas import Quantiles

LOG_MIN = -5.0
LOG_MAX = 5.0
FINE_BINS = 2000
QUANTILE_REL_ERROR = 10 ** ((LOG_MAX - LOG_MIN) / FINE_BINS / 2) - 1


def fine_edges() -> np.ndarray:
    """The FINE_BINS + 1 fine-grid edges (float64)."""
    return 10.0 ** np.linspace(LOG_MIN, LOG_MAX, FINE_BINS + 1)


def fine_bin_index(values: torch.Tensor, inner_edges: torch.Tensor) -> torch.Tensor:
    """Fine-grid bin of each positive value; `inner_edges` = `fine_edges()[1:-1]` as a tensor (float64, or
    float32 on a device without float64), compared in the edges' dtype."""
    return torch.bucketize(values.to(inner_edges.dtype), inner_edges, right=True)


def log_histogram(counts: np.ndarray, vmin: float, vmax: float, n_bins: int) -> tuple[list[float], list[int]]:
    """Exact log histogram of one feature's fine counts: `min(n_bins, fine bins spanned)` bins, each a run of
    consecutive fine bins (as equal as whole fine bins allow), inner edges on the fine grid, outer edges the
    exact `vmin` and `vmax` (no value lies outside them, so the counts stay exact)."""
    nz = np.flatnonzero(counts)
    if nz.size == 0:
        return [], []
    edges = fine_edges()
    lo, hi = int(nz[0]), int(nz[-1]) + 1
    n_out = max(1, min(int(n_bins), hi - lo))
    bounds = np.rint(np.linspace(lo, hi, n_out + 1)).astype(np.int64)
    sums = np.add.reduceat(counts[lo:hi], bounds[:-1] - lo)
    out_edges = [float(vmin)] + [float(edges[b]) for b in bounds[1:-1]] + [float(vmax)]
    return out_edges, [int(c) for c in sums]


def linear_histogram(counts: np.ndarray, vmin: float, vmax: float, n_bins: int) -> tuple[list[float], list[int]]:
    """Neuronpedia-style linear histogram over [vmin, vmax] with inner edges snapped to the fine grid (exact)."""
    if counts.sum() == 0:
        return [], []
    edges = fine_edges()
    first = int(np.searchsorted(edges, vmin, side="right"))  # first fine edge above vmin
    last = int(np.searchsorted(edges, vmax, side="right")) - 1  # last fine edge not above vmax
    first, last = max(first, 1), min(last, FINE_BINS - 1)
    if first > last:  # the whole range lies inside one fine bin
        return [float(vmin), float(vmax)], [int(counts.sum())]
    targets = np.linspace(vmin, vmax, n_bins + 1)[1:-1]
    snapped = np.clip(np.searchsorted(edges, targets), first, last)
    bounds = np.concatenate([[0], snapped, [FINE_BINS]])
    cum = np.concatenate([[0], np.cumsum(counts)])
    out_counts = cum[bounds[1:]] - cum[bounds[:-1]]
    out_edges = [float(vmin)] + [float(edges[s]) for s in snapped] + [float(vmax)]
    return out_edges, [int(c) for c in out_counts]


def quantiles(counts: np.ndarray, vmin: float, vmax: float) -> Quantiles:
    """Nearest-rank quantiles of the non-zero values from their fine counts (0.0 for a never-active feature)."""
    n = int(counts.sum())
    if n == 0:
        return Quantiles(p25=0.0, p50=0.0, p75=0.0, p95=0.0, p99=0.0)
    edges = fine_edges()
    cum = np.cumsum(counts)

    def at(p: float) -> float:
        j = int(np.searchsorted(cum, max(1, math.ceil(p * n))))
        centre = math.sqrt(edges[j] * edges[j + 1])
        return float(min(max(centre, vmin), vmax))

    return Quantiles(p25=at(0.25), p50=at(0.50), p75=at(0.75), p95=at(0.95), p99=at(0.99))

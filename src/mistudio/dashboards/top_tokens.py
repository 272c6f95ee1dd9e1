"""Top tokens of a feature: its activations aggregated per token id over the feature's example windows.

Every position with a positive activation counts (a subword token is aggregated by its id and shown as its
rendered piece). Ranking: `sum` (total activation), `count` (occurrences) or `mean` (total / count); ties are
broken by ascending token id.
"""

from __future__ import annotations

import numpy as np

from mistudio.dashboards.schemas import TopToken

RANKINGS = ("sum", "count", "mean")


def aggregate_tokens(token_ids: np.ndarray, values: np.ndarray, strings: list[str], *, rank_by: str = "sum",
                     limit: int = 20) -> list[TopToken]:
    """Aggregate `values` over `token_ids` (same shape) where values > 0 and return the ranked rows."""
    if rank_by not in RANKINGS:
        raise ValueError(f"rank_by must be one of {RANKINGS}")
    mask = values > 0
    ids, vals = token_ids[mask].astype(np.int64), values[mask].astype(np.float64)
    if ids.size == 0:
        return []
    uniq, inverse = np.unique(ids, return_inverse=True)
    total = np.bincount(inverse, weights=vals)
    count = np.bincount(inverse)
    vmax = np.full(uniq.size, -np.inf)
    np.maximum.at(vmax, inverse, vals)
    mean = total / count
    key = {"sum": total, "count": count.astype(np.float64), "mean": mean}[rank_by]
    order = np.lexsort((uniq, -key))[:limit]
    return [{"token": strings[int(uniq[i])] if uniq[i] < len(strings) else "", "token_id": int(uniq[i]),
             "total_activation": float(total[i]), "count": int(count[i]), "mean_activation": float(mean[i]),
             "max_activation": float(vmax[i])} for i in order]

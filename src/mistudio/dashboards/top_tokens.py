"""Top tokens of a feature: its activations aggregated per token id over the feature's example windows.

Every position with a positive activation counts (a subword token is aggregated by its id and shown as its
rendered piece). Ranking: `sum` (total activation), `count` (occurrences) or `mean` (total / count); ties are
broken by ascending token id.
"""

from __future__ import annotations

import numpy as np
import torch

RANKINGS = ("sum", "count", "mean")


def aggregate_tokens(token_ids: np.ndarray, values: np.ndarray, strings: list[str], *, rank_by: str = "sum",
                     limit: int = 20) -> list[dict]:
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


@torch.no_grad()
def top_token_per_feature(rows: torch.Tensor, row_tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """For rows `[F, K, C]` and their token ids `[F, K, C]`, the token id with the largest total activation per
    feature (ties: smallest id; -1 where a feature never fires), vectorised over features."""
    n_f = rows.shape[0]
    feat = torch.arange(n_f).view(-1, 1, 1).expand_as(rows)
    mask = rows > 0
    keys = feat[mask] * vocab_size + row_tokens[mask].long()
    out = torch.full((n_f,), -1, dtype=torch.int64)
    if keys.numel() == 0:
        return out
    uniq, inverse = torch.unique(keys, return_inverse=True)
    totals = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inverse, rows[mask].double())
    u_feat, u_tok = uniq // vocab_size, uniq % vocab_size
    # sort by (feature, -total, token) and keep the first entry of each feature
    order = np.lexsort((u_tok.numpy(), -totals.numpy(), u_feat.numpy()))
    sorted_feat = u_feat.numpy()[order]
    first = np.concatenate([[True], sorted_feat[1:] != sorted_feat[:-1]])
    out[torch.from_numpy(sorted_feat[first])] = torch.from_numpy(u_tok.numpy()[order][first])
    return out

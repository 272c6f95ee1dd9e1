"""Logit lens: each feature's decoder direction through the (final-norm-folded) unembedding, `W_dec @ W_U`.

Computed `chunk` features at a time on the device, so memory is O(chunk × vocab). Per feature: the top-k positive
and negative logits (ties broken by ascending token id among the `k + TIE_MARGIN` best candidates) and a
histogram of all vocabulary logits with `n_bins` equal bins over the feature's [min, max].
"""

from __future__ import annotations

import torch

TIE_MARGIN = 16


def _ranked(values: torch.Tensor, k: int, largest: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k (values, ids) per row (largest or smallest first), equal values ordered by ascending id."""
    vals, ids = torch.topk(values, min(values.shape[1], k + TIE_MARGIN), dim=1, largest=largest)
    ids, order = torch.sort(ids, dim=1, stable=True)
    vals = vals.gather(1, order)
    vals, order = torch.sort(vals, dim=1, descending=largest, stable=True)
    return vals[:, :k], ids.gather(1, order)[:, :k]


@torch.no_grad()
def compute_logit_lens(W_dec: torch.Tensor, W_U: torch.Tensor, k: int = 50, n_bins: int = 50,
                       chunk: int = 1024) -> dict[str, torch.Tensor]:
    """Top-k positive/negative logits and a logit histogram for every feature (CPU tensors)."""
    W_U = W_U.float()
    parts: dict[str, list[torch.Tensor]] = {key: [] for key in (
        "pos_vals", "pos_ids", "neg_vals", "neg_ids", "hist_counts", "hist_min", "hist_max")}
    for lo in range(0, W_dec.shape[0], chunk):
        logits = W_dec[lo:lo + chunk].to(W_U.device, torch.float32) @ W_U  # [F, V]
        n_f = logits.shape[0]
        pos_vals, pos_ids = _ranked(logits, k)
        neg_vals, neg_ids = _ranked(logits, k, largest=False)
        lmin, lmax = logits.amin(1), logits.amax(1)
        scale = (n_bins / (lmax - lmin).clamp(min=1e-12)).unsqueeze(1)
        keys = logits.sub_(lmin.unsqueeze(1)).mul_(scale).to(torch.int32).clamp_(0, n_bins - 1)  # in place
        keys += (torch.arange(n_f, device=keys.device, dtype=torch.int32) * n_bins).unsqueeze(1)
        counts = torch.bincount(keys.view(-1), minlength=n_f * n_bins).view(n_f, n_bins)
        for key, value in (("pos_vals", pos_vals), ("pos_ids", pos_ids), ("neg_vals", neg_vals),
                           ("neg_ids", neg_ids), ("hist_counts", counts.int()), ("hist_min", lmin),
                           ("hist_max", lmax)):
            parts[key].append(value.cpu())
    return {key: torch.cat(value) for key, value in parts.items()}

"""The Neuronpedia pass: a second streaming pass over an extraction's windows that computes, exactly, every
activation-dependent field SAEDashboard's Neuronpedia runner writes (`SaeVisRunner` with the runner's defaults),
in its units and with its conventions.

The first pass gives each feature's max and min non-zero activation; with them known, this pass bins and samples
exactly in one more sweep. Per feature, in folded units (activations × `related_weights.decoder_fold_factors`),
with SAEDashboard's mask (positions holding a pad/bos/eos token id count as 0):

* `count`: non-zero masked activations (`frac_nonzero` = count / all positions of all windows);
* the activation-density histogram exactly as `HistogramData.from_data` builds it: `torch.histc` over
  [min, max] of the non-zero masked values, 50 bins (`logit_lens.histc_bins`: histc's bin rule, vectorised);
* the quantile bands: edges `torch.linspace(0, max, 6)` (float32, `band_edges`), per band the number of positions
  in [lo, hi] (both ends inclusive; zeros and masked positions included) and 5 positions drawn uniformly without
  replacement among them (the 5 largest `accumulator.position_keys` of the band: seeded, deterministic,
  independent of batching) with the feature's masked row over the window in float32;
* the top group: the 20 windows with the largest masked max (one example per window) and their rows;
* the rolling correlations of `RollingCorrCoef`: sums of the folded UNmasked activations x and of the SAE's input
  activations y at the hook (every position) give the Pearson and cosine of each feature against every input
  dimension (`correlated_neurons`, top 3 by Pearson) and against the features of its SAEDashboard feature batch
  (`np.array_split(range(d_sae), ceil(d_sae / 128))`, the diagonal set to 0 as SAEDashboard does,
  `correlated_features`). Each batch's products are formed in float32 and added to float64 running sums (more
  accurate than SAEDashboard's float32 sums; the rounded values agree).

The model runs through the engine's `BatchEncoder.inputs` and the SAE through `SAE.encode_chunks`, feature chunk by
feature chunk, so memory per batch is O(batch × context × feature_chunk) plus the state, which lives on the
accumulator's device (float64 sums on the CPU where the device has no float64): per feature 45 rows of C float32
(20 top windows, 5 × 5 band samples), d_in + 128 float64 correlation sums and a few scalars — for C = 128,
d_in = 2304: about 43 KB, i.e. 0.7 GB for 16k features, 11 GB for 262k. A checkpoint (one atomic file) is written
every `checkpoint_every` batches and when `check` stops the run; a resumed run ends with the same arrays as an
uninterrupted one. A CUDA out-of-memory error halves the batch and retries from the feature chunk that failed.
When the first pass masked tokens SAEDashboard does not (special tokens other than pad/bos/eos occur in the
windows), its max/min are not SAEDashboard's, and a range sweep over the windows (not checkpointed) comes first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from mistudio.errors import InvalidInputError
from mistudio.extraction.accumulator import (
    StatePlacement,
    feature_key_parts,
    position_key_parts,
    state_placement,
)
from mistudio.extraction.logit_lens import histc_bins, histc_range
from mistudio.extraction.related_weights import decoder_fold_factors
from mistudio.extraction.window_loop import ProgressFn, halve_after_oom, run_window_loop
from mistudio.store.feature_store import FeatureStore

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from mistudio.extraction.engine import BatchEncoder, ExtractionSettings
    from mistudio.saes.model import SAE

NEURONPEDIA_PART = "neuronpedia"
CHECKPOINT_NAME = "neuronpedia"
STAGE = "neuronpedia pass"
TOP_GROUP_SIZE = 20
N_QUANTILES = 5
QUANTILE_GROUP_SIZE = 5
HIST_BINS = 50
CORRELATION_ROWS = 3
FEATURE_BATCH = 128
STATE_KEYS = ("count", "hist", "out_of_range", "band_counts", "band_keys", "band_windows", "band_positions",
              "band_rows", "top_values", "top_windows", "top_positions", "top_rows", "n_positions", "y_sum",
              "y2_sum", "x_sum", "x2_sum", "xy_sum", "ff_sum")
_EMPTY_KEY = -1
_OUTSIDE_KEY = -2




def neuronpedia_ignore_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The token ids SAEDashboard's Neuronpedia runner masks (`ignore_tokens`): pad, bos and eos."""
    ids = {getattr(tokenizer, attr, None) for attr in ("pad_token_id", "bos_token_id", "eos_token_id")}
    return sorted(int(i) for i in ids if i is not None)


def feature_batch_bounds(d_sae: int, size: int = FEATURE_BATCH) -> list[int]:
    """Boundaries `[0, …, d_sae]` of SAEDashboard's feature batches, `np.array_split(range(d_sae),
    ceil(d_sae / size))`: the first `d_sae % n` batches hold one feature more."""
    n = max(1, math.ceil(d_sae / size))
    q, r = divmod(d_sae, n)
    bounds = [0]
    for j in range(n):
        bounds.append(bounds[-1] + q + (1 if j < r else 0))
    return bounds


def band_edges(vmax: torch.Tensor, n_quantiles: int = N_QUANTILES) -> torch.Tensor:
    """`torch.linspace(0, vmax[i], n_quantiles + 1)` (float32) for every feature at once `[F, n+1]`: linspace's own
    arithmetic (step = end / n; the first half start + step × i, the second half end − step × (n − i))."""
    end = vmax.float().unsqueeze(1)
    step = end / n_quantiles
    i = torch.arange(n_quantiles + 1, device=vmax.device, dtype=torch.float32)
    first = step * i
    second = end - step * (n_quantiles - i)
    return torch.where(i < (n_quantiles + 1) // 2, first, second)


def _segment_topk(segments: torch.Tensor, keys: torch.Tensor, n_segments: int,
                  k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per segment id in `[0, n_segments)` the `k` largest of `keys [E]` (`[n_segments, k]`, largest first,
    -2 where a segment has fewer) and their entry indices (-1 there)."""
    out_keys = torch.full((n_segments, k), _OUTSIDE_KEY, dtype=keys.dtype, device=keys.device)
    out_idx = torch.full((n_segments, k), -1, dtype=torch.int64, device=keys.device)
    if keys.numel() == 0:
        return out_keys, out_idx
    order = torch.argsort(keys, descending=True, stable=True)
    order = order[torch.argsort(segments[order], stable=True)]
    seg = segments[order]
    rank = torch.arange(len(seg), device=seg.device) - torch.searchsorted(seg, seg)
    keep = rank < k
    out_keys[seg[keep], rank[keep]] = keys[order[keep]]
    out_idx[seg[keep], rank[keep]] = order[keep]
    return out_keys, out_idx


def _slots(held: torch.Tensor, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the `S` largest of the held keys `[..., S]` and the candidates `[..., M]`: (new keys, selection
    `[..., S]` (< S: a held slot, else S + candidate), mask `[...]` of the rows whose selection changed)."""
    n_slots = held.shape[-1]
    new_keys, sel = torch.topk(torch.cat([held, candidates], dim=-1), n_slots, dim=-1)
    changed = (sel != torch.arange(n_slots, device=sel.device)).any(-1)
    return new_keys, sel, changed


class NeuronpediaState:
    """Running per-feature state of the Neuronpedia pass for `d_sae` features, updated one (batch, feature chunk)
    at a time. `fold [d_sae]` are the fold factors; `vmin`/`vmax` each feature's min non-zero (inf when it never
    fires) and max masked activation, folded: they fix the histogram's range and the bands' edges."""

    def __init__(self, d_sae: int, d_in: int, context_size: int, fold: torch.Tensor, vmin: torch.Tensor,
                 vmax: torch.Tensor, device: torch.device, *, seed: int = 0, feature_batch: int = FEATURE_BATCH,
                 placement: StatePlacement | None = None) -> None:
        self.d_sae, self.d_in, self.context_size, self.device, self.seed = d_sae, d_in, context_size, device, seed
        self.placement = placement or state_placement(device)
        wide = self.placement.sum_device
        vmin = vmin.to(device, torch.float32)
        alive = torch.isfinite(vmin)
        self.fold = fold.to(device, torch.float32)
        self.max = torch.where(alive, vmax.to(device, torch.float32), 0.0)
        self.min = torch.where(alive, vmin, 0.0)
        self.hist_lo, self.hist_hi = histc_range(self.min, self.max)
        self.edges = band_edges(self.max)
        self.bounds = feature_batch_bounds(d_sae, feature_batch)
        sizes = torch.tensor([b - a for a, b in zip(self.bounds[:-1], self.bounds[1:], strict=True)])
        self.block_width = int(sizes.max())
        self.block_start = torch.repeat_interleave(torch.tensor(self.bounds[:-1]), sizes).to(device)
        self.block_len = torch.repeat_interleave(sizes, sizes).to(device)

        s, q, k, c = TOP_GROUP_SIZE, N_QUANTILES, QUANTILE_GROUP_SIZE, context_size
        self.count = torch.zeros(d_sae, dtype=torch.int64, device=device)
        self.hist = torch.zeros(d_sae, HIST_BINS, dtype=torch.int64, device=device)
        self.out_of_range = torch.zeros(d_sae, dtype=torch.int64, device=device)
        self.band_counts = torch.zeros(d_sae, q, dtype=torch.int64, device=device)
        self.band_keys = torch.full((d_sae, q, k), _EMPTY_KEY, dtype=torch.int64, device=device)
        self.band_windows = torch.full((d_sae, q, k), -1, dtype=torch.int64, device=device)
        self.band_positions = torch.zeros(d_sae, q, k, dtype=torch.int64, device=device)
        self.band_rows = torch.zeros(d_sae, q, k, c, dtype=torch.float32, device=device)
        self.top_values = torch.full((d_sae, s), float("-inf"), dtype=torch.float32, device=device)
        self.top_windows = torch.full((d_sae, s), -1, dtype=torch.int64, device=device)
        self.top_positions = torch.zeros(d_sae, s, dtype=torch.int64, device=device)
        self.top_rows = torch.zeros(d_sae, s, c, dtype=torch.float32, device=device)
        self.n_positions = torch.zeros((), dtype=torch.int64, device=device)
        self.y_sum = torch.zeros(d_in, dtype=torch.float64, device=wide)
        self.y2_sum = torch.zeros(d_in, dtype=torch.float64, device=wide)
        self.x_sum = torch.zeros(d_sae, dtype=torch.float64, device=wide)
        self.x2_sum = torch.zeros(d_sae, dtype=torch.float64, device=wide)
        self.xy_sum = torch.zeros(d_sae, d_in, dtype=torch.float64, device=wide)
        self.ff_sum = torch.zeros(d_sae, self.block_width, dtype=torch.float64, device=wide)

    # ----- updates -----------------------------------------------------------------------------------------
    def input_sums(self, y: torch.Tensor) -> Callable[[], None]:
        """A batch's SAE inputs `y [N, d_in]` (every position) summed for the correlations; returns the commit
        that adds them to the state (nothing is allocated there)."""
        wide = self.placement.sum_device
        y_wide = y.to(self.placement.batch_dtype)
        y_sum = y_wide.sum(0).to(wide, torch.float64)
        y2_sum = (y_wide * y_wide).sum(0).to(wide, torch.float64)

        def commit() -> None:
            self.y_sum += y_sum
            self.y2_sum += y2_sum
            self.n_positions += y.shape[0]

        return commit

    @torch.no_grad()
    def update(self, acts: torch.Tensor, start: int, window_ids: torch.Tensor, valid: torch.Tensor,
               y: torch.Tensor, pending: torch.Tensor | None) -> torch.Tensor | None:
        """Fold `acts [B, C, F]` (features `[start, start+F)`, unfolded, as the SAE encodes them) of windows
        `window_ids [B]` into the state; `valid [B, C]` is False at masked positions, `y [B*C, d_in]` the SAE's
        inputs (float32). `pending` holds the folded activations `[B*C, t]` of the features `[start − t, start)`
        whose feature batch the previous chunk left incomplete; the call returns the new one (None when this
        chunk ends on a batch boundary). All-or-nothing: an error leaves the state untouched."""
        n_b, n_c, n_f = acts.shape
        stop, n = start + n_f, n_b * n_c
        dev, wide, batch_dtype = self.device, self.placement.sum_device, self.placement.batch_dtype
        x = (acts.float() * self.fold[start:stop]).reshape(n, n_f)  # folded, unmasked
        m = x.masked_fill(~valid.reshape(n, 1).to(x.device), 0.0)  # folded, masked
        m3 = m.view(n_b, n_c, n_f)
        window_ids = window_ids.to(dev)
        positions = (window_ids.unsqueeze(1) * n_c + torch.arange(n_c, device=dev)).reshape(n)
        features = torch.arange(start, stop, device=dev)

        # counts and the activation-density histogram, from the non-zero masked values
        nz_pos, nz_feat = (m > 0).nonzero(as_tuple=True)
        values = m[nz_pos, nz_feat]
        lo, hi = self.hist_lo[start + nz_feat], self.hist_hi[start + nz_feat]
        count = torch.bincount(nz_feat, minlength=n_f)
        bins = histc_bins(values, lo, hi)
        hist = torch.bincount(nz_feat * HIST_BINS + bins, minlength=n_f * HIST_BINS).view(n_f, HIST_BINS)
        outside = torch.bincount(nz_feat[(values < lo) | (values > hi)], minlength=n_f)

        # quantile bands: the lowest holds the zeros (every position, dense), the others only non-zero values
        edges = self.edges[start:stop]
        take = min(QUANTILE_GROUP_SIZE, n)
        in_lowest = (m >= 0) & (m <= edges[:, 1])
        position_part = position_key_parts(positions, self.seed)
        feature_part = feature_key_parts(features, self.seed)
        keys = (position_part.unsqueeze(1) ^ feature_part).masked_fill_(~in_lowest, _OUTSIDE_KEY)
        lowest_keys, lowest_pos = torch.topk(keys, take, dim=0)
        del keys
        counts, cand_keys, cand_pos = [in_lowest.sum(0)], [lowest_keys.T], [lowest_pos.T]
        nz_keys = position_part[nz_pos] ^ feature_part[nz_feat]
        nz_edges = edges[nz_feat]
        for b in range(1, N_QUANTILES):
            inside = (values >= nz_edges[:, b]) & (values <= nz_edges[:, b + 1])
            counts.append(torch.bincount(nz_feat[inside], minlength=n_f))
            band_keys, entry = _segment_topk(nz_feat[inside], nz_keys[inside], n_f, take)
            cand_keys.append(band_keys)
            in_band = nz_pos[inside]
            cand_pos.append(in_band[entry.clamp(min=0)].masked_fill_(entry < 0, 0) if in_band.numel()
                            else torch.zeros_like(entry))
        dead = (self.max[start:stop] == 0).unsqueeze(1)  # every band is [0, 0]: all positions, as the lowest
        band_counts = torch.stack([torch.where(dead[:, 0], counts[0], c) for c in counts], 1)
        cand_k = torch.stack([torch.where(dead, cand_keys[0], c) for c in cand_keys], 1)  # [F, Q, take]
        cand_p = torch.stack([torch.where(dead, cand_pos[0], c) for c in cand_pos], 1)
        band_new, band_sel, band_changed = _slots(self.band_keys[start:stop], cand_k)
        fi, bi = band_changed.nonzero(as_tuple=True)
        sel = band_sel[fi, bi]  # [E, K]
        from_held = sel < QUANTILE_GROUP_SIZE
        held_idx, cand_idx = sel.clamp(max=QUANTILE_GROUP_SIZE - 1), (sel - QUANTILE_GROUP_SIZE).clamp(min=0)
        picked = cand_p[fi, bi].gather(1, cand_idx)  # positions in the batch
        in_batch = picked // n_c
        band_win = torch.where(from_held, self.band_windows[start + fi, bi].gather(1, held_idx),
                               window_ids[in_batch])
        band_win = torch.where(band_new[fi, bi] >= 0, band_win, -1)
        band_pos = torch.where(from_held, self.band_positions[start + fi, bi].gather(1, held_idx), picked % n_c)
        band_rows = torch.where(
            from_held.unsqueeze(-1),
            self.band_rows[start + fi, bi].gather(1, held_idx.unsqueeze(-1).expand(-1, -1, n_c)),
            m3[in_batch, :, fi.unsqueeze(1)])

        # top group: the windows with the largest masked max
        win_max, win_pos = m3.max(dim=1)  # [B, F]
        win_max, win_pos = win_max.T, win_pos.T
        top_new, top_sel, top_changed = _slots(self.top_values[start:stop],
                                               win_max.masked_fill(~(win_max > 0), float("-inf")))
        (ti,) = top_changed.nonzero(as_tuple=True)
        sel = top_sel[ti]
        from_held = sel < TOP_GROUP_SIZE
        held_idx, in_batch = sel.clamp(max=TOP_GROUP_SIZE - 1), (sel - TOP_GROUP_SIZE).clamp(min=0)
        top_win = torch.where(from_held, self.top_windows[start + ti].gather(1, held_idx), window_ids[in_batch])
        top_win = torch.where(torch.isfinite(top_new[ti]), top_win, -1)
        top_pos = torch.where(from_held, self.top_positions[start + ti].gather(1, held_idx),
                              win_pos[ti].gather(1, in_batch))
        top_rows = torch.where(
            from_held.unsqueeze(-1),
            self.top_rows[start + ti].gather(1, held_idx.unsqueeze(-1).expand(-1, -1, n_c)),
            m3[in_batch, :, ti.unsqueeze(1)])

        # rolling correlation sums (x folded and unmasked; y the SAE's inputs at every position)
        x_wide = x.to(batch_dtype)
        x_sum = x_wide.sum(0).to(wide, torch.float64)
        x2_sum = (x_wide * x_wide).sum(0).to(wide, torch.float64)
        xy = (x.T @ y.to(x.device, torch.float32)).to(wide, torch.float64)
        ff, new_pending = self._block_products(x, start, stop, pending)

        # every allocation is done: commit
        self.count[start:stop] += count
        self.hist[start:stop] += hist
        self.out_of_range[start:stop] += outside
        self.band_counts[start:stop] += band_counts
        self.band_keys[start:stop] = band_new
        self.band_windows[start + fi, bi] = band_win
        self.band_positions[start + fi, bi] = band_pos
        self.band_rows[start + fi, bi] = band_rows
        self.top_values[start:stop] = top_new
        self.top_windows[start + ti] = top_win
        self.top_positions[start + ti] = top_pos
        self.top_rows[start + ti] = top_rows
        self.x_sum[start:stop] += x_sum
        self.x2_sum[start:stop] += x2_sum
        self.xy_sum[start:stop] += xy
        for lo_f, block in ff:
            self.ff_sum[lo_f:lo_f + block.shape[0], :block.shape[1]] += block
        return new_pending

    def _block_products(self, x: torch.Tensor, start: int, stop: int, pending: torch.Tensor | None
                        ) -> tuple[list[tuple[int, torch.Tensor]], torch.Tensor | None]:
        """The products `Σ x_f x_g` of the feature batches complete in `[start − pending, stop)` (as (first
        feature, `[rows, width]` float64 block) pieces, one per run of equal-sized batches) and the folded
        activations of the features after the last complete batch (the next `pending`)."""
        if pending is not None:
            x = torch.cat([pending, x], dim=1)
            start -= pending.shape[1]
        last = max(b for b in self.bounds if b <= stop)
        pieces: list[tuple[int, torch.Tensor]] = []
        j = self.bounds.index(start)
        while self.bounds[j] < last:
            size = self.bounds[j + 1] - self.bounds[j]
            k = 0
            while self.bounds[j + k] < last and self.bounds[j + k + 1] - self.bounds[j + k] == size:
                k += 1
            lo_f = self.bounds[j]
            z = x[:, lo_f - start:lo_f - start + k * size].reshape(x.shape[0], k, size)
            prod = torch.einsum("nks,nkt->kst", z, z).to(self.placement.batch_dtype)
            pieces.append((lo_f, prod.reshape(k * size, size).to(self.placement.sum_device, torch.float64)))
            j += k
        return pieces, (x[:, last - start:] if last < stop else None)

    # ----- checkpoints and results -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The state as CPU tensors (for checkpoints)."""
        return {key: getattr(self, key).detach().cpu().contiguous() for key in STATE_KEYS}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore a state saved by `state_dict()`."""
        for key in STATE_KEYS:
            target = getattr(self, key)
            target.copy_(state[key].to(target.device))

    @torch.no_grad()
    def result(self, chunk: int = 4096) -> dict[str, torch.Tensor]:
        """The tensors of the `neuronpedia` part (CPU)."""
        state = self.state_dict()
        out = {k: state[k] for k in ("count", "hist", "band_counts", "band_windows", "band_positions", "band_rows",
                                     "top_values", "top_windows", "top_positions", "top_rows", "n_positions")}
        out["band_keys"] = state["band_keys"]
        out.update(fold=self.fold.cpu(), max=self.max.cpu(), min=self.min.cpu(), hist_lo=self.hist_lo.cpu(), hist_hi=self.hist_hi.cpu(),
                   band_edges=self.edges.cpu())
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in (
            "neuron_indices", "neuron_pearson", "neuron_cosine", "feature_indices", "feature_pearson",
            "feature_cosine")}
        n = float(self.n_positions)
        for lo in range(0, self.d_sae, chunk):
            hi = min(lo + chunk, self.d_sae)
            xs, x2 = self.x_sum[lo:hi], self.x2_sum[lo:hi]
            pearson, cosine = _corrcoef(n, self.xy_sum[lo:hi], xs, x2, self.y_sum, self.y2_sum)
            k = min(CORRELATION_ROWS, self.d_in)
            values, idx = torch.topk(pearson, k, dim=1)
            parts["neuron_indices"].append(idx.cpu())
            parts["neuron_pearson"].append(values.float().cpu())
            parts["neuron_cosine"].append(cosine.gather(1, idx).float().cpu())

            block_start = self.block_start[lo:hi].to(self.x_sum.device)
            block_len = self.block_len[lo:hi].to(self.x_sum.device)
            cols = torch.arange(self.block_width, device=self.x_sum.device)
            other = (block_start.unsqueeze(1) + cols).clamp(max=self.d_sae - 1)
            pearson_f, cosine_f = _corrcoef(n, self.ff_sum[lo:hi], xs, x2, self.x_sum[other], self.x2_sum[other])
            own = other == torch.arange(lo, hi, device=other.device).unsqueeze(1)
            pearson_f, cosine_f = pearson_f.masked_fill(own, 0.0), cosine_f.masked_fill(own, 0.0)
            padding = cols.unsqueeze(0) >= block_len.unsqueeze(1)
            pearson_f = pearson_f.masked_fill(padding, float("-inf"))
            k = min(CORRELATION_ROWS, self.block_width)
            values, idx = torch.topk(pearson_f, k, dim=1)
            feature_idx = torch.where(torch.isfinite(values), other.gather(1, idx), -1)
            parts["feature_indices"].append(feature_idx.cpu())
            parts["feature_pearson"].append(values.float().cpu())
            parts["feature_cosine"].append(cosine_f.gather(1, idx).float().cpu())
        out.update({key: torch.cat(value) for key, value in parts.items()})
        return out


def _corrcoef(n: float, xy: torch.Tensor, x_sum: torch.Tensor, x2_sum: torch.Tensor, y_sum: torch.Tensor,
              y2_sum: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`RollingCorrCoef.corrcoef` from the sums, in float64: (Pearson, cosine) `[X, Y]`; `y_sum`/`y2_sum` are
    `[Y]` or, per row, `[X, Y]`. Variances that round below zero count as zero."""
    y_sum = y_sum if y_sum.ndim == 2 else y_sum.unsqueeze(0)
    y2_sum = y2_sum if y2_sum.ndim == 2 else y2_sum.unsqueeze(0)
    cosine = xy / (torch.sqrt(x2_sum.unsqueeze(1) * y2_sum) + 1e-6)
    x_var = (n * x2_sum - x_sum**2).clamp(min=0).unsqueeze(1)
    y_var = (n * y2_sum - y_sum**2).clamp(min=0)
    pearson = (n * xy - x_sum.unsqueeze(1) * y_sum) / (torch.sqrt(x_var * y_var) + 1e-6)
    return pearson, cosine


Consume = Callable[[torch.Tensor, int, torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None"],
                   "torch.Tensor | None"]


class NeuronpediaPass:
    """Runs batches of windows through `encoder.inputs` and `SAE.encode_chunks` into a consumer with the
    signature of `NeuronpediaState.update` (OOM-safe: halves the batch and retries from the failed feature
    chunk), with SAEDashboard's mask (`ignore_ids`)."""

    def __init__(self, encoder: BatchEncoder, ignore_ids: list[int], feature_chunk: int,
                 device: torch.device) -> None:
        self.encoder, self.feature_chunk, self.device = encoder, feature_chunk, device
        self.ignore = torch.tensor(ignore_ids, dtype=torch.int64, device=device)
        self.batch_size = encoder.batch_size

    def process(self, idx: torch.Tensor, consume: Consume,
                input_sums: Callable[[torch.Tensor], Callable[[], None]] | None, first_chunk: int = 0,
                pending: torch.Tensor | None = None) -> None:
        """Fold windows `idx` into `consume` from feature chunk `first_chunk` on; `input_sums` gets the batch's
        SAE inputs `[B*C, d_in]` and its commit runs together with the first chunk's."""

        chunk, done = self.feature_chunk, first_chunk
        try:
            with torch.no_grad():
                x, _ = self.encoder.inputs(idx)
                tokens = self.encoder.windows.tokens[idx].to(self.device)
                valid = ~torch.isin(tokens, self.ignore)
                y = x.reshape(-1, x.shape[-1]).float()
                commit_inputs = input_sums(y) if done == 0 and input_sums is not None else None
                for start, acts in self.encoder.sae.encode_chunks(x, chunk, start=done * chunk):
                    pending = consume(acts.to(self.device), start, idx, valid, y, pending)
                    if commit_inputs is not None:
                        commit_inputs()
                        commit_inputs = None
                    done += 1
                if pending is not None:
                    raise RuntimeError("internal error: a feature batch was left incomplete")
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            half = halve_after_oom(exc, idx)
            self.batch_size = max(1, half)
            rows = half * self.encoder.windows.context_size
            self.process(idx[:half], consume, input_sums, done, pending[:rows] if pending is not None else None)
            self.process(idx[half:], consume, input_sums, done, pending[rows:] if pending is not None else None)


class MaskedRange:
    """Each feature's folded max masked activation and min non-zero one under SAEDashboard's mask (a consumer
    for `NeuronpediaPass.process`), for stores whose first pass masked more tokens than SAEDashboard does."""

    def __init__(self, fold: torch.Tensor, device: torch.device) -> None:
        self.fold = fold.to(device, torch.float32)
        self.max = torch.zeros(fold.shape[0], dtype=torch.float32, device=device)
        self.min = torch.full((fold.shape[0],), float("inf"), dtype=torch.float32, device=device)

    def update(self, acts: torch.Tensor, start: int, window_ids: torch.Tensor, valid: torch.Tensor,
               y: torch.Tensor, pending: torch.Tensor | None) -> None:
        """Fold a chunk's activations `[B, C, F]` into the range."""
        stop = start + acts.shape[2]
        m = (acts.float() * self.fold[start:stop]).masked_fill(~valid.unsqueeze(-1), 0.0).flatten(0, 1)
        torch.maximum(self.max[start:stop], m.amax(0), out=self.max[start:stop])
        nonzero_min = m.masked_fill(~(m > 0), float("inf")).amin(0)
        torch.minimum(self.min[start:stop], nonzero_min, out=self.min[start:stop])


def _feature_range(store: FeatureStore, runner: NeuronpediaPass, fold: torch.Tensor, ignore_ids: list[int],
                   progress: ProgressFn | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each feature's folded (min non-zero, max) masked activation under SAEDashboard's mask: from the first
    pass's statistics, exact when no window holds a token the first pass masked beyond pad/bos/eos; else from a
    sweep over the windows."""
    stats = store.read_part("statistics")
    windows = runner.encoder.windows
    extra = sorted(set(store.manifest.get("special_token_ids") or []) - set(ignore_ids))
    if not extra or not bool(torch.isin(windows.tokens, torch.tensor(extra, dtype=windows.tokens.dtype)).any()):
        alive = stats["count"] > 0
        fold_cpu = fold.cpu()
        return (torch.where(alive, fold_cpu * stats["min"], float("inf")),
                torch.where(alive, fold_cpu * stats["max"], 0.0))
    scan = MaskedRange(fold, runner.device)
    n = len(windows)
    pos = 0
    while pos < n:
        idx = torch.arange(pos, min(pos + runner.batch_size, n))
        runner.process(idx, scan.update, None)
        pos += len(idx)
        if progress is not None:
            progress({"stage": f"{STAGE} (activation range)", "windows_done": pos, "n_windows": n,
                      "fraction": pos / n, "tokens_per_s": None, "eta_s": None, "batch_size": runner.batch_size})
    return scan.min.cpu(), scan.max.cpu()


def run_neuronpedia_pass(store: FeatureStore, encoder: BatchEncoder, sae: SAE, settings: ExtractionSettings,
                         ignore_ids: list[int], *, progress: ProgressFn | None = None,
                         check: Callable[[], None] | None = None, device: torch.device | None = None,
                         feature_batch: int = FEATURE_BATCH) -> None:
    """Run (or resume) the Neuronpedia pass over the encoder's windows and write the store's `neuronpedia`
    part. Needs the first pass's `statistics`; `sae` must be prepared as the first pass had it (normalisation
    folded in). A run stopped by `check` leaves a checkpoint and `manifest["neuronpedia_pass"]["status"]`
    `interrupted` (the first pass's parts and status stay as they are); any other error `failed` with the error.

    Raises:
        InvalidInputError: too many positions for the sampling keys (n_windows × context_size ≥ 2**31).
    """
    windows = encoder.windows
    n, context_size = len(windows), windows.context_size
    dev = torch.device(device) if device is not None else encoder.device
    fold = decoder_fold_factors(sae).to(dev)
    entry: dict[str, Any] = {"feature_batch": feature_batch, "ignore_token_ids": ignore_ids,
                             "fold": "none" if bool((fold == 1).all()) else "decoder_norm",
                             "correlation_sums": "float64"}
    interrupted = False
    store.update_manifest(neuronpedia_pass={**entry, "status": "running"})
    try:
        if n * context_size >= 2**31:
            raise InvalidInputError(f"{n} windows × {context_size} positions is too many for the Neuronpedia pass "
                                    "(at most 2**31 - 1 positions); extract fewer tokens, or pass --no-neuronpedia")
        runner = NeuronpediaPass(encoder, ignore_ids, settings.feature_chunk, dev)
        vmin, vmax = _feature_range(store, runner, fold, ignore_ids, progress)
        state = NeuronpediaState(sae.cfg.d_sae, int(sae.cfg.d_in), context_size, fold, vmin, vmax, dev,
                                 seed=settings.interval_seed, feature_batch=feature_batch)
        pos = 0
        checkpoint = store.load_checkpoint(CHECKPOINT_NAME)
        if checkpoint is not None:
            state.load_state_dict(checkpoint[0])
            pos = checkpoint[1]

        def stopped(at: int) -> None:
            nonlocal interrupted
            interrupted = True
            store.update_manifest(neuronpedia_pass={**entry, "status": "interrupted", "windows_done": at})

        loop = run_window_loop(
            n, context_size, pos, batch_size=lambda: runner.batch_size,
            process=lambda idx: runner.process(idx, state.update, state.input_sums),
            save=lambda at: store.save_checkpoint(state.state_dict(), at, CHECKPOINT_NAME), stopped=stopped,
            checkpoint_every=settings.checkpoint_every, check=check, progress=progress, stage=STAGE)
        elapsed = loop.elapsed_s
        store.write_part(NEURONPEDIA_PART, state.result())
        store.clear_checkpoint(CHECKPOINT_NAME)
        store.update_manifest(neuronpedia_pass={
            **entry, "status": "completed", "pass_s": round(elapsed, 3),
            "values_outside_range": int(state.out_of_range.sum())})
    except BaseException as exc:
        if not interrupted:
            store.update_manifest(neuronpedia_pass={**entry, "status": "failed",
                                                    "error": f"{type(exc).__name__}: {exc}"})
        raise

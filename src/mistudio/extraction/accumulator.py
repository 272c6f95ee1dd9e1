"""Running per-feature state of one extraction, updated on the device one (batch, feature chunk) at a time.

All updates are vectorised over features, windows and positions. For a chunk of features `[a, b)` and a batch of
windows it keeps: exact count / sum / sum of squares / max / min-non-zero over every selectable token, fine-grid
histogram counts of the non-zero values, and the running top-K windows per feature (by the window's max
activation) with the feature's full activation row over the window and the argmax position. Positions holding a
special token (BOS/EOS/PAD) are excluded: they are zeroed before anything is counted or selected.
"""

from __future__ import annotations

import torch

from mistudio.extraction.histogram import FINE_BINS, fine_bin_index, fine_edges

STATE_KEYS = ("count", "sum", "sumsq", "max", "min", "hist", "top_vals", "top_win", "top_pos", "top_rows",
              "n_tokens")


class Accumulator:
    """Per-feature running statistics, histograms and top-K examples for `d_sae` features."""

    def __init__(self, d_sae: int, top_k: int, context_size: int, device: torch.device) -> None:
        self.d_sae, self.top_k, self.context_size, self.device = d_sae, top_k, context_size, device
        f = dict(device=device)
        self.count = torch.zeros(d_sae, dtype=torch.int64, **f)
        self.sum = torch.zeros(d_sae, dtype=torch.float64, **f)
        self.sumsq = torch.zeros(d_sae, dtype=torch.float64, **f)
        self.max = torch.zeros(d_sae, dtype=torch.float32, **f)
        self.min = torch.full((d_sae,), float("inf"), dtype=torch.float32, **f)
        self.hist = torch.zeros(d_sae, FINE_BINS, dtype=torch.int32, **f)
        self.top_vals = torch.zeros(d_sae, top_k, dtype=torch.float32, **f)
        self.top_win = torch.full((d_sae, top_k), -1, dtype=torch.int64, **f)
        self.top_pos = torch.zeros(d_sae, top_k, dtype=torch.int64, **f)
        self.top_rows = torch.zeros(d_sae, top_k, context_size, dtype=torch.float32, **f)
        self.n_tokens = torch.zeros((), dtype=torch.int64, **f)
        self._inner_edges = torch.from_numpy(fine_edges()[1:-1]).to(device)

    def count_tokens(self, valid: torch.Tensor) -> None:
        """Add the number of selectable (non-special) positions of a batch to the token total."""
        self.n_tokens += valid.sum()

    @torch.no_grad()
    def update(self, acts: torch.Tensor, start: int, window_ids: torch.Tensor, valid: torch.Tensor) -> None:
        """Fold `acts [B, C, F]` (features `[start, start+F)`) of windows `window_ids [B]` into the state."""
        n_b, n_c, n_f = acts.shape
        stop = start + n_f
        acts = acts.float() * valid.unsqueeze(-1)
        active = acts > 0
        count = active.sum((0, 1))
        vmax = acts.amax((0, 1))
        vmin = torch.where(active, acts, torch.full_like(acts, float("inf"))).amin((0, 1))

        flat = acts.view(-1, n_f)
        nz = active.view(-1, n_f).nonzero()
        values = flat[nz[:, 0], nz[:, 1]].to(torch.float64)
        bins = fine_bin_index(values, self._inner_edges)
        total = torch.zeros(n_f, dtype=torch.float64, device=acts.device).index_add_(0, nz[:, 1], values)
        total_sq = torch.zeros(n_f, dtype=torch.float64, device=acts.device).index_add_(0, nz[:, 1], values * values)
        hist = torch.bincount(nz[:, 1] * FINE_BINS + bins, minlength=n_f * FINE_BINS).view(n_f, FINE_BINS)

        win_max, win_pos = acts.max(dim=1)  # [B, F]
        k = self.top_k
        cand_vals = torch.cat([self.top_vals[start:stop], win_max.T], dim=1)
        new_vals, sel = torch.topk(cand_vals, k, dim=1)
        cand_win = torch.cat([self.top_win[start:stop], window_ids.to(self.device).expand(n_f, n_b)], dim=1)
        cand_pos = torch.cat([self.top_pos[start:stop], win_pos.T], dim=1)
        new_win = cand_win.gather(1, sel)
        new_pos = cand_pos.gather(1, sel)
        from_old = (sel < k).unsqueeze(-1)
        row_index = (sel.clamp(max=k - 1)).unsqueeze(-1).expand(n_f, k, n_c)
        old_rows = self.top_rows[start:stop].gather(1, row_index)
        batch_index = (sel - k).clamp(min=0).unsqueeze(-1).expand(n_f, k, n_c)
        batch_rows = acts.permute(2, 0, 1).gather(1, batch_index)
        new_rows = torch.where(from_old, old_rows, batch_rows)

        # every allocation is done: now commit (an out-of-memory error above leaves the state untouched)
        self.count[start:stop] += count
        self.sum[start:stop] += total
        self.sumsq[start:stop] += total_sq
        torch.maximum(self.max[start:stop], vmax, out=self.max[start:stop])
        torch.minimum(self.min[start:stop], vmin, out=self.min[start:stop])
        self.hist[start:stop] += hist.to(torch.int32)
        self.top_vals[start:stop] = new_vals
        self.top_win[start:stop] = new_win
        self.top_pos[start:stop] = new_pos
        self.top_rows[start:stop] = new_rows

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The state as CPU tensors (for checkpoints)."""
        return {key: getattr(self, key).detach().cpu().contiguous() for key in STATE_KEYS}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore a state saved by `state_dict()`."""
        for key in STATE_KEYS:
            getattr(self, key).copy_(state[key].to(self.device))

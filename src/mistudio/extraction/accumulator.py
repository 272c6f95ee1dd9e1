"""Running per-feature state of one extraction, updated on the device one (batch, feature chunk) at a time.

All updates are vectorised over features, windows and positions. For a chunk of features `[a, b)` and a batch of
windows it keeps: exact count / sum / sum of squares / max / min-non-zero over every selectable token, fine-grid
histogram counts of the non-zero values, and the running top-K windows per feature (by the window's max
activation) with the feature's full activation row over the window and the argmax position. With `reservoir` R > 0
it also keeps, per feature, a uniform random sample of R of the windows where the feature is active (the R largest
of a deterministic pseudo-random key per (window, feature)), with the window's max, its argmax and the activation
row in float16 — the candidates for the interval ("quantile-band") examples. Positions holding a special token
(BOS/EOS/PAD) are excluded: they are zeroed before anything is counted or selected.

The exact sums are float64. On a device without float64 (Apple MPS) `state_placement` keeps those two sums on the
CPU and each batch's partial sums are formed in float32 on the device, then added in float64 on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mistudio.store.fine_grid import FINE_BINS, fine_bin_index, fine_edges

STATE_KEYS = ("count", "sum", "sumsq", "max", "min", "hist", "top_vals", "top_win", "top_pos", "top_rows",
              "n_tokens")
RESERVOIR_KEYS = ("res_key", "res_win", "res_pos", "res_max", "res_rows")
_MASK32 = 0xFFFFFFFF
_FP16_MAX = 65504.0


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xorshift-multiply), on int64 tensors holding values in [0, 2**32)."""
    x = ((x >> 16) ^ x) * 0x45D9F3B & _MASK32
    x = ((x >> 16) ^ x) * 0x45D9F3B & _MASK32
    return (x >> 16) ^ x


def window_keys(window_ids: torch.Tensor, start: int, stop: int, seed: int) -> torch.Tensor:
    """Deterministic pseudo-random sampling keys `[stop-start, B]` of windows `window_ids [B]` for features
    `[start, stop)`: a 32-bit hash of (seed, feature, window) in the high bits and the window id (< 2**31) in
    the low bits, so keys are distinct per feature and ties never occur."""
    w = window_ids.to(torch.int64)
    f = torch.arange(start, stop, dtype=torch.int64, device=w.device)
    h = _mix32((_mix32(w & _MASK32).unsqueeze(0) ^ (f.unsqueeze(1) * 0x9E3779B1 & _MASK32)) ^ (seed & _MASK32))
    return (h << 31) | w.unsqueeze(0)


def position_key_parts(positions: torch.Tensor, seed: int) -> torch.Tensor:
    """The position half of `position_keys` (int64, any shape): a 31-bit hash of (seed, position) in the high
    bits and the position (< 2**31) in the low bits."""
    p = positions.to(torch.int64)
    return ((_mix32(((p * 0x9E3779B1) ^ seed) & _MASK32) >> 1) << 31) | p


def feature_key_parts(features: torch.Tensor, seed: int) -> torch.Tensor:
    """The feature half of `position_keys` (int64, any shape): a 31-bit hash of (seed, feature) in the high
    bits, zero low bits."""
    f = features.to(torch.int64)
    return (_mix32(((f * 0x85EBCA77) ^ (seed * 0x27D4EB2F)) & _MASK32) >> 1) << 31


def position_keys(features: torch.Tensor, positions: torch.Tensor, seed: int) -> torch.Tensor:
    """Deterministic pseudo-random sampling keys of (feature, global position) pairs (int64 tensors that
    broadcast; positions `window * context_size + offset` < 2**31): the position's hash XOR the feature's in the
    high bits, the position in the low bits. For one feature the keys of its positions are a random order (the
    XOR with a constant permutes uniform hashes into uniform hashes), distinct, non-negative and independent of
    how positions are batched; `position_key_parts(p) ^ feature_key_parts(f)` computes them without forming
    every pair's hash."""
    return position_key_parts(positions, seed) ^ feature_key_parts(features, seed)


# device types whose kernels have no float64 (MPS rejects float64 tensors outright)
_NO_FLOAT64 = frozenset({"mps"})


@dataclass(frozen=True)
class StatePlacement:
    """Where the float64 sums live (`sum_device`) and in which dtype a batch's values are summed and binned on
    the accumulator's device (`batch_dtype`)."""

    sum_device: torch.device
    batch_dtype: torch.dtype


def state_placement(device: torch.device | str) -> StatePlacement:
    """float64 on `device` where it supports float64; otherwise float64 sums on the CPU, float32 batch sums."""
    device = torch.device(device)
    if device.type in _NO_FLOAT64:
        return StatePlacement(sum_device=torch.device("cpu"), batch_dtype=torch.float32)
    return StatePlacement(sum_device=device, batch_dtype=torch.float64)


class Accumulator:
    """Per-feature running statistics, histograms and top-K examples for `d_sae` features."""

    def __init__(self, d_sae: int, top_k: int, context_size: int, device: torch.device, *, reservoir: int = 0,
                 seed: int = 0, placement: StatePlacement | None = None) -> None:
        self.d_sae, self.top_k, self.context_size, self.device = d_sae, top_k, context_size, device
        self.reservoir, self.seed = reservoir, seed
        self.placement = placement or state_placement(device)
        sum_device = self.placement.sum_device
        self.count = torch.zeros(d_sae, dtype=torch.int64, device=device)
        self.sum = torch.zeros(d_sae, dtype=torch.float64, device=sum_device)
        self.sumsq = torch.zeros(d_sae, dtype=torch.float64, device=sum_device)
        self.max = torch.zeros(d_sae, dtype=torch.float32, device=device)
        self.min = torch.full((d_sae,), float("inf"), dtype=torch.float32, device=device)
        self.hist = torch.zeros(d_sae, FINE_BINS, dtype=torch.int32, device=device)
        self.top_vals = torch.zeros(d_sae, top_k, dtype=torch.float32, device=device)
        self.top_win = torch.full((d_sae, top_k), -1, dtype=torch.int64, device=device)
        self.top_pos = torch.zeros(d_sae, top_k, dtype=torch.int64, device=device)
        self.top_rows = torch.zeros(d_sae, top_k, context_size, dtype=torch.float32, device=device)
        self.n_tokens = torch.zeros((), dtype=torch.int64, device=device)
        self._inner_edges = torch.from_numpy(fine_edges()[1:-1]).to(self.placement.batch_dtype).to(device)
        r = reservoir
        self.res_key = torch.full((d_sae, r), -1, dtype=torch.int64, device=device)
        self.res_win = torch.full((d_sae, r), -1, dtype=torch.int64, device=device)
        self.res_pos = torch.zeros(d_sae, r, dtype=torch.int64, device=device)
        self.res_max = torch.zeros(d_sae, r, dtype=torch.float32, device=device)
        self.res_rows = torch.zeros(d_sae, r, context_size, dtype=torch.float16, device=device)

    @property
    def state_keys(self) -> tuple[str, ...]:
        """Names of the state tensors (the reservoir's only when it is kept)."""
        return STATE_KEYS + (RESERVOIR_KEYS if self.reservoir else ())

    def count_tokens(self, valid: torch.Tensor) -> None:
        """Add the number of selectable (non-special) positions of a batch to the token total."""
        self.n_tokens += valid.sum()

    @torch.no_grad()
    def update(self, acts: torch.Tensor, start: int, window_ids: torch.Tensor, valid: torch.Tensor) -> None:
        """Fold `acts [B, C, F]` (features `[start, start+F)`) of windows `window_ids [B]` into the state.

        `acts` is modified in place (special positions zeroed)."""
        n_b, n_c, n_f = acts.shape
        stop = start + n_f
        acts = acts.float().masked_fill_(~valid.unsqueeze(-1), 0.0)

        # exact statistics and fine histogram, from the non-zero entries only
        nz = (acts > 0).view(-1, n_f).nonzero()
        feat = nz[:, 1]
        values = acts.view(-1, n_f)[nz[:, 0], feat]
        wide = self.placement.batch_dtype
        values_wide = values.to(wide)
        count = torch.bincount(feat, minlength=n_f)
        total = torch.zeros(n_f, dtype=wide, device=acts.device).index_add_(0, feat, values_wide)
        total_sq = torch.zeros(n_f, dtype=wide, device=acts.device).index_add_(0, feat, values_wide * values_wide)
        vmax = torch.zeros(n_f, dtype=torch.float32, device=acts.device).scatter_reduce_(0, feat, values, "amax")
        vmin = torch.full((n_f,), float("inf"), device=acts.device).scatter_reduce_(0, feat, values, "amin")
        bins = fine_bin_index(values_wide, self._inner_edges)
        hist = torch.bincount(feat * FINE_BINS + bins, minlength=n_f * FINE_BINS).view(n_f, FINE_BINS)

        # running top-k windows: merge the batch's per-window maxima with the current top-k
        win_max, win_pos = acts.max(dim=1)  # [B, F]
        k = self.top_k
        cand_vals = torch.cat([self.top_vals[start:stop], win_max.T], dim=1)
        new_vals, sel = torch.topk(cand_vals, k, dim=1)
        cand_win = torch.cat([self.top_win[start:stop], window_ids.to(self.device).expand(n_f, n_b)], dim=1)
        cand_pos = torch.cat([self.top_pos[start:stop], win_pos.T], dim=1)
        new_win, new_pos = cand_win.gather(1, sel), cand_pos.gather(1, sel)
        # activation rows move only for features whose top-k changed (rarely, once the run is under way)
        changed = (sel != torch.arange(k, device=sel.device)).any(1).nonzero().squeeze(1)
        rows = None
        if changed.numel():
            sel_c = sel[changed]
            rows = self.top_rows[start + changed].gather(
                1, sel_c.clamp(max=k - 1).unsqueeze(-1).expand(-1, -1, n_c))
            ci, ki = (sel_c >= k).nonzero(as_tuple=True)
            rows[ci, ki] = acts[sel_c[ci, ki] - k, :, changed[ci]]

        res = self._reservoir_update(acts, start, window_ids, win_max, win_pos) if self.reservoir else None

        # every allocation is done: now commit (an out-of-memory error above leaves the state untouched)
        self.count[start:stop] += count
        self.sum[start:stop] += total.to(self.sum.device, torch.float64)
        self.sumsq[start:stop] += total_sq.to(self.sum.device, torch.float64)
        torch.maximum(self.max[start:stop], vmax, out=self.max[start:stop])
        torch.minimum(self.min[start:stop], vmin, out=self.min[start:stop])
        self.hist[start:stop] += hist.to(torch.int32)
        self.top_vals[start:stop] = new_vals
        self.top_win[start:stop] = new_win
        self.top_pos[start:stop] = new_pos
        if rows is not None:
            self.top_rows[start + changed] = rows
        if res is not None:
            fi, slot = start + res[0], res[1]
            for name, value in zip(RESERVOIR_KEYS, res[2:], strict=True):
                getattr(self, name)[fi, slot] = value

    def _reservoir_update(self, acts: torch.Tensor, start: int, window_ids: torch.Tensor, win_max: torch.Tensor,
                          win_pos: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The reservoir entries that change for features `[start, start+F)`: (feature offset, slot, key, window,
        position, max, float16 row) of every entering window; nothing is committed here.

        The reservoir keeps the R largest keys. Entries live in fixed slots (unordered): an entering window takes
        the slot of an evicted one, so only the entering rows are written, never the whole [R, context] block."""
        n_f, r = acts.shape[2], self.reservoir
        active = (win_max > 0).T  # [F, B]
        wins = window_ids.to(self.device)
        # inactive windows get -2, below an empty slot's -1, so they never enter
        keys = window_keys(wins, start, start + n_f, self.seed).masked_fill_(~active, -2)
        _, sel = torch.topk(torch.cat([self.res_key[start:start + n_f], keys], dim=1), r, dim=1, sorted=False)
        kept = torch.zeros(n_f, r + keys.shape[1], dtype=torch.bool, device=self.device).scatter_(1, sel, True)
        # per feature as many windows enter as slots are freed; nonzero() lists both in row-major order, so the
        # i-th entering window of a feature takes the i-th freed slot of that feature
        fi, bi = kept[:, r:].nonzero(as_tuple=True)
        slot = (~kept[:, :r]).nonzero(as_tuple=True)[1]
        rows = acts[bi, :, fi].clamp(-_FP16_MAX, _FP16_MAX).to(torch.float16)
        return fi, slot, keys[fi, bi], wins[bi], win_pos[bi, fi], win_max[bi, fi], rows

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The state as CPU tensors (for checkpoints)."""
        return {key: getattr(self, key).detach().cpu().contiguous() for key in self.state_keys}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore a state saved by `state_dict()`."""
        for key in self.state_keys:
            target = getattr(self, key)
            target.copy_(state[key].to(target.device))

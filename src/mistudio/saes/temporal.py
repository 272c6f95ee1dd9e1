"""Temporal SAEs (SAELens architecture `temporal`): each token's activation is split into a part predicted from
the EARLIER tokens of the same sequence (causal attention over their codes) and a novel part, whose sparse codes
are the features.

So encoding needs whole sequences: inputs are `[..., seq, d_in]` (a 2-D input is one sequence), and position t's
features depend on positions 0..t of its own row — exactly what SAELens computes on the same windows.  The settings
live in `cfg.extra["temporal"]` (`n_heads`, `n_attn_layers`, `bottleneck_factor`, `sae_diff_type` relu|topk,
`kval_topk`, `tied_weights`, `activation_normalization_factor`); `normalize_activations` is
`constant_scalar_rescale` (x × factor in, ÷ factor out).  Parameters: `W_dec [d_sae, d_in]`, `b_dec [d_in]`,
`W_enc [d_in, d_sae]` unless tied (then W_dec.T), and per attention layer `attn_layers.{i}.{k_ctx,q_target,v_ctx,
c_proj}.{weight,bias}` (nn.Linear over the d_sae codes).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mistudio.errors import InvalidInputError
from mistudio.saes.model import DEFAULT_CHUNK, SAE, SAEConfig

SETTINGS = ("n_heads", "n_attn_layers", "bottleneck_factor", "sae_diff_type", "kval_topk", "tied_weights",
            "activation_normalization_factor")


def _frozen_linear(d_in: int, d_out: int, dtype: torch.dtype) -> nn.Linear:
    layer = nn.Linear(d_in, d_out, bias=True, dtype=dtype)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer.requires_grad_(False)


class _ContextAttention(nn.Module):
    """Causal attention from each position's codes to the (shifted) codes of the positions before it."""

    def __init__(self, dim: int, n_heads: int, bottleneck_factor: int, dtype: torch.dtype) -> None:
        super().__init__()
        if dim % (bottleneck_factor * n_heads):
            raise InvalidInputError(
                f"a temporal SAE needs d_sae divisible by bottleneck_factor × n_heads ({dim} vs "
                f"{bottleneck_factor} × {n_heads})"
            )
        self.n_heads, self.dim, self.n_embds = n_heads, dim, dim // bottleneck_factor
        self.k_ctx = _frozen_linear(dim, self.n_embds, dtype)
        self.q_target = _frozen_linear(dim, self.n_embds, dtype)
        self.v_ctx = _frozen_linear(dim, dim, dtype)
        self.c_proj = _frozen_linear(dim, dim, dtype)

    def forward(self, ctx: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        batch, length, _ = ctx.shape
        heads = self.n_heads
        k = self.k_ctx(ctx).view(batch, length, heads, self.n_embds // heads).transpose(1, 2)
        q = self.q_target(target).view(batch, length, heads, self.n_embds // heads).transpose(1, 2)
        v = self.v_ctx(ctx).view(batch, length, heads, self.dim // heads).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0, is_causal=True)
        return self.c_proj(out.transpose(1, 2).contiguous().view(batch, length, self.dim))


class TemporalSAE(SAE):
    """A temporal SAE for inference (SAELens `TemporalSAE` semantics); see the module docstring."""

    TEMPORAL = True
    eps = 1e-6

    def _init_parameters(self, cfg: SAEConfig, dt: torch.dtype) -> None:
        settings = temporal_settings(cfg)
        self.W_dec = nn.Parameter(torch.zeros(cfg.d_sae, cfg.d_in, dtype=dt), requires_grad=False)
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in, dtype=dt), requires_grad=False)
        if not settings["tied_weights"]:
            self.W_enc = nn.Parameter(torch.zeros(cfg.d_in, cfg.d_sae, dtype=dt), requires_grad=False)
        self.attn_layers = nn.ModuleList(
            _ContextAttention(cfg.d_sae, int(settings["n_heads"]), int(settings["bottleneck_factor"]), dt)
            for _ in range(int(settings["n_attn_layers"]))
        )
        self.lam = 1 / (4 * cfg.d_in)

    @property
    def settings(self) -> dict[str, Any]:
        """The temporal settings (`cfg.extra["temporal"]`)."""
        return temporal_settings(self.cfg)

    @property
    def dtype(self) -> torch.dtype:
        return self.W_dec.dtype

    @property
    def device(self) -> torch.device:
        return self.W_dec.device

    def _apply(self, fn: Any, recurse: bool = True) -> TemporalSAE:
        out = nn.Module._apply(self, fn, recurse)
        self.cfg.dtype = str(self.W_dec.dtype).removeprefix("torch.")
        return out

    def _factor(self) -> float:
        if self.cfg.normalize_activations == "constant_scalar_rescale":
            return float(self.settings["activation_normalization_factor"])
        return 1.0

    def process_input(self, x: torch.Tensor) -> torch.Tensor:
        """Cast, rescale by the constant factor and subtract b_dec (if `apply_b_dec_to_input`)."""
        if self.cfg.normalize_activations not in ("none", "constant_scalar_rescale"):
            raise InvalidInputError(f"temporal SAEs support normalize_activations none or constant_scalar_rescale, "
                                    f"not {self.cfg.normalize_activations!r}")
        x = x.to(self.dtype) * self._factor()
        return x - self.b_dec if self.cfg.apply_b_dec_to_input else x

    def _encoder(self) -> torch.Tensor:
        return self.W_dec.T if self.settings["tied_weights"] else self.W_enc

    @staticmethod
    def _as_sequences(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        if x.ndim < 2:
            raise InvalidInputError(
                "a temporal SAE encodes whole sequences: give inputs [..., seq, d_in] (each position's features "
                "depend on the earlier positions of its sequence)"
            )
        return x.reshape(-1, *x.shape[-2:]), tuple(x.shape[:-1])

    def encode_with_predictions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(novel codes — the features —, codes predicted from context), each `[..., seq, d_sae]`."""
        seqs, lead = self._as_sequences(x)
        sae_in = self.process_input(seqs)
        W_enc = self._encoder()
        residual = sae_in
        pred = torch.zeros(*sae_in.shape[:-1], self.cfg.d_sae, dtype=sae_in.dtype, device=sae_in.device)
        for layer in self.attn_layers:
            codes = F.relu((residual * self.lam) @ W_enc)
            ctx = torch.cat((torch.zeros_like(codes[:, :1, :]), codes[:, :-1, :]), dim=1)
            layer_pred = F.relu(layer(ctx, codes))
            back = layer_pred @ self.W_dec
            scale = (back * residual).sum(dim=-1, keepdim=True) / (back.norm(dim=-1, keepdim=True) + self.eps).pow(2)
            pred = pred + layer_pred * scale
            residual = residual - scale * back
        novel = F.relu((residual * self.lam) @ W_enc)
        k = self.settings.get("kval_topk")
        if self.settings["sae_diff_type"] == "topk" and k is not None:
            _, idx = torch.topk(novel, int(k), dim=-1)
            novel = novel * torch.zeros_like(novel).scatter_(-1, idx, 1)
        return novel.reshape(*lead, -1), pred.reshape(*lead, -1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The novel codes `[..., seq, d_sae]` of inputs `[..., seq, d_in]`."""
        return self.encode_with_predictions(x)[0]

    def encode_range(self, x: torch.Tensor, start: int, stop: int, chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
        """`encode(x)[..., start:stop]` (the whole code is computed: the context attention mixes all features)."""
        if not 0 <= start <= stop <= self.cfg.d_sae:
            raise InvalidInputError(f"feature range [{start}, {stop}) is outside [0, {self.cfg.d_sae})")
        return self.encode(x)[..., start:stop]

    def encode_chunks(self, x: torch.Tensor, chunk_size: int = DEFAULT_CHUNK,
                      start: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
        """`encode(x)` in feature chunks from `start` on (computed once)."""
        acts = self.encode(x)
        chunk = max(1, chunk_size)
        for lo in range(start, self.cfg.d_sae, chunk):
            yield lo, acts[..., lo:min(lo + chunk, self.cfg.d_sae)]

    def _bias(self) -> torch.Tensor | float:
        return self.b_dec if (not self.settings["tied_weights"] or self.cfg.apply_b_dec_to_input) else 0.0

    def decode(self, feature_acts: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """The novel codes' part of the reconstruction (SAELens `decode`: without the predicted codes)."""
        return (feature_acts.to(self.dtype) @ self.W_dec + self._bias()) / self._factor()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The full reconstruction from predicted plus novel codes."""
        novel, pred = self.encode_with_predictions(x)
        return ((novel + pred) @ self.W_dec + self._bias()) / self._factor()

    @torch.no_grad()
    def fold_activation_norm_scaling_factor(self, scaling_factor: float) -> None:
        """Refused, as SAELens refuses it.

        Raises:
            InvalidInputError: always.
        """
        raise InvalidInputError("a temporal SAE cannot fold an activation scaling factor into its weights")


def temporal_settings(cfg: SAEConfig) -> dict[str, Any]:
    """`cfg.extra["temporal"]`, checked.

    Raises:
        InvalidInputError: a setting is missing.
    """
    settings = cfg.extra.get("temporal")
    if not isinstance(settings, dict):
        raise InvalidInputError('a temporal SAE config needs extra["temporal"] with ' + ", ".join(SETTINGS))
    missing = [k for k in SETTINGS if k not in settings]
    if missing:
        raise InvalidInputError(f'a temporal SAE config lacks extra["temporal"] settings: {", ".join(missing)}')
    return settings

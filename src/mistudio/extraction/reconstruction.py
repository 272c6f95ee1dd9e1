"""Reconstruction quality of an SAE (or a transcoder) over the extraction's selectable tokens, accumulated in the
same pass, feature chunk by feature chunk.

The reconstruction `ŷ = Σ_chunks f[:, chunk] @ W_dec[chunk] + b_dec (+ x @ W_skip)` is built from the chunks the
engine encodes anyway (a topk SAE with `rescale_acts_by_decoder_norm` divides f by the decoder row norms first,
as `SAE.decode` does), so memory stays O(tokens × d_out). The target `y` is the SAE's input, or a transcoder's
output hook. Over the selectable (non-special) tokens it keeps the squared error, Σy and Σ‖y‖² in float64:

* `mse` = Σ‖y - ŷ‖² / (n_tokens · d_out);
* `explained_variance` = 1 - Σ‖y - ŷ‖² / Σ‖y - ȳ‖² (ȳ the mean target over the tokens read);
* `mean_target_sq_norm` = mean ‖y‖².

SAEs with a run-time normalisation (`constant_norm_rescale`, `layer_norm`; their decoder output is rescaled per
token) and temporal SAEs (their reconstruction adds codes predicted from the context) are not measured; the
result says so.
"""

from __future__ import annotations

from typing import Any

import torch

from mistudio.extraction.accumulator import StatePlacement, state_placement
from mistudio.saes.model import SAE

RECONSTRUCTION_KEYS = ("rec_sse", "rec_sum", "rec_sumsq", "rec_tokens")
_RUNTIME_NORMALISATIONS = ("constant_norm_rescale", "layer_norm")


def measurable(sae: SAE) -> str | None:
    """None when the reconstruction can be measured in the pass, else why not."""
    if sae.cfg.architecture == "temporal":
        return "a temporal SAE's reconstruction adds codes predicted from the context; not measured"
    if sae.cfg.normalize_activations in _RUNTIME_NORMALISATIONS:
        return (f"normalize_activations={sae.cfg.normalize_activations} rescales each token's reconstruction; "
                "not measured")
    return None


class Reconstruction:
    """Running squared error and target moments of one extraction (state saved with the checkpoint)."""

    def __init__(self, d_out: int, device: torch.device, placement: StatePlacement | None = None) -> None:
        self.placement = placement or state_placement(device)
        self.device = device
        wide = self.placement.sum_device
        self.rec_sse = torch.zeros((), dtype=torch.float64, device=wide)
        self.rec_sum = torch.zeros(d_out, dtype=torch.float64, device=wide)
        self.rec_sumsq = torch.zeros((), dtype=torch.float64, device=wide)
        self.rec_tokens = torch.zeros((), dtype=torch.int64, device=wide)

    @torch.no_grad()
    def partial(self, sae: SAE, acts: torch.Tensor, start: int) -> torch.Tensor:
        """The decoder's share of features `[start, start + F)`: `acts [..., F] @ W_dec[start:start+F]`."""
        stop = start + acts.shape[-1]
        W = sae.W_dec[start:stop]
        f = acts.to(W.dtype)
        if sae.cfg.architecture == "topk" and sae.cfg.rescale_acts_by_decoder_norm:
            f = f / W.norm(dim=-1)
        return f @ W

    @torch.no_grad()
    def update(self, sae: SAE, decoded: torch.Tensor, sae_input: torch.Tensor, target: torch.Tensor,
               valid: torch.Tensor) -> None:
        """Fold one batch: `decoded` = the sum of `partial` over all chunks, `sae_input` the SAE's input (for a
        transcoder's skip connection), `target` what the reconstruction is judged against, `valid [B, C]`."""
        recon = decoded + sae.b_dec
        if sae.cfg.skip_connection:
            recon = recon + sae_input.to(sae.W_skip.dtype) @ sae.W_skip
        self.add(recon, target, valid)

    @torch.no_grad()
    def add(self, recon: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> None:
        """Fold one batch of finished reconstructions `recon [..., d_out]` judged against `target` at the
        `valid` tokens (a mask of recon's leading shape)."""
        wide = self.placement.batch_dtype
        mask = valid.reshape(-1).to(recon.device)
        y = target.reshape(-1, target.shape[-1]).to(recon.device)[mask].to(wide)
        y_hat = recon.reshape(-1, recon.shape[-1])[mask].to(wide)
        home = self.rec_sum.device
        self.rec_sse += (y - y_hat).square().sum().to(home, torch.float64)
        self.rec_sum += y.sum(0).to(home, torch.float64)
        self.rec_sumsq += y.square().sum().to(home, torch.float64)
        self.rec_tokens += int(mask.sum())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The state as CPU tensors (for checkpoints)."""
        return {key: getattr(self, key).detach().cpu().contiguous() for key in RECONSTRUCTION_KEYS}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore a state saved by `state_dict()`."""
        for key in RECONSTRUCTION_KEYS:
            target = getattr(self, key)
            target.copy_(state[key].to(target.device))

    def result(self) -> dict[str, Any]:
        """`mse`, `explained_variance`, `mean_target_sq_norm` and the token count (JSON-ready)."""
        n = int(self.rec_tokens)
        if n == 0:
            return {"n_tokens": 0, "mse": None, "explained_variance": None}
        d_out = self.rec_sum.numel()
        sse = float(self.rec_sse)
        total = float(self.rec_sumsq) - float(self.rec_sum.square().sum()) / n
        return {"n_tokens": n, "mse": sse / (n * d_out),
                "explained_variance": 1.0 - sse / total if total > 0 else None,
                "mean_target_sq_norm": float(self.rec_sumsq) / n}

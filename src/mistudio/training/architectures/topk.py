"""TopK SAE with the auxiliary-k loss for dead latents (SAELens `topk`, the OpenAI recipe)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from mistudio.training.architectures.base import LossInput, TrainingArchitecture, TrainOutput, mse


def topk_acts(hidden: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest entries of each row, relu'd; zeros elsewhere."""
    values, indices = torch.topk(hidden, k, dim=-1, sorted=False)
    return torch.zeros_like(hidden).scatter(-1, indices, values.relu())


class TopKTraining(TrainingArchitecture):
    """The top k pre-activations of each row (times the decoder row norms with `rescale_acts_by_decoder_norm`,
    so the decoder behaves as if normalised); loss = MSE + `aux_loss_coefficient` · AuxK, where the top
    `aux_k` (default d_out/2) dead latents reconstruct the live latents' residual (scaled down while fewer
    latents than that are dead)."""

    name = "topk"
    inference_architecture = "topk"
    sparse_decode = True
    """Decode from the k selected decoder rows (`F.embedding_bag`) instead of a dense `f @ W_dec`: the same sums in
    another order, three of the five `[B, d_sae] × [d_sae, d]` products of a step saved. Subclasses whose activation
    is not a per-row top k (batchtopk) turn it off."""

    def _rescale(self) -> bool:
        return bool(self.spec.rescale_acts_by_decoder_norm)

    def scaled_hidden_pre(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations, times the decoder row norms when `rescale_acts_by_decoder_norm`."""
        hidden_pre = self.hidden_pre(x)
        if self._rescale():
            hidden_pre = hidden_pre * self.W_dec.norm(dim=-1)
        return hidden_pre

    def activate(self, hidden_pre: torch.Tensor) -> torch.Tensor:
        """The sparse activation of (scaled) pre-activations."""
        return topk_acts(hidden_pre, int(self.spec.k))  # type: ignore[arg-type]

    def encode_with_hidden_pre(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden_pre = self.scaled_hidden_pre(x)
        return self.activate(hidden_pre), hidden_pre

    def times_w_dec(self, feature_acts: torch.Tensor, w_dec: torch.Tensor | None = None) -> torch.Tensor:
        """f @ W_dec, dividing f by the decoder row norms first when `rescale_acts_by_decoder_norm`."""
        w = self.W_dec if w_dec is None else w_dec
        if self._rescale():
            feature_acts = feature_acts * (1 / w.norm(dim=-1))
        return feature_acts @ w

    def decode(self, feature_acts: torch.Tensor) -> torch.Tensor:
        return self.times_w_dec(feature_acts) + self.b_dec

    def sparse_times_w_dec(self, indices: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """`times_w_dec` of the activations `values [B, k]` at latents `indices [B, k]` (zeros elsewhere), reading
        only those decoder rows."""
        if self._rescale():
            values = values / self.W_dec.norm(dim=-1)[indices]
        return F.embedding_bag(indices, self.W_dec, per_sample_weights=values.to(self.W_dec.dtype), mode="sum")

    def training_forward(self, batch: LossInput) -> TrainOutput:
        """As the base (MSE + AuxK), decoding sparsely when `sparse_decode`."""
        if not self.sparse_decode:
            return super().training_forward(batch)
        hidden_pre = self.scaled_hidden_pre(batch.x)
        values, indices = torch.topk(hidden_pre, int(self.spec.k), dim=-1, sorted=False)  # type: ignore[arg-type]
        values = values.relu()
        out = self.sparse_times_w_dec(indices, values) + self.b_dec
        if self.spec.skip_connection:
            out = out + batch.x.to(self.W_skip.dtype) @ self.W_skip
        feature_acts = torch.zeros_like(hidden_pre).scatter(-1, indices, values.detach())
        mse_loss = mse(out, batch.target.to(out.dtype))
        losses = {"mse_loss": mse_loss, **self.aux_losses(batch, feature_acts, hidden_pre, out)}
        return TrainOutput(mse_loss + losses["auxiliary_reconstruction_loss"], losses, feature_acts, hidden_pre, out)

    def aux_k_loss(self, batch: LossInput, out: torch.Tensor, hidden_pre: torch.Tensor) -> torch.Tensor:
        """SAELens's `calculate_topk_aux_loss` (0 while no latent is dead)."""
        dead = batch.dead_mask
        if dead is None or (num_dead := int(dead.sum())) == 0:
            return out.new_tensor(0.0)
        residual = (batch.target.to(out.dtype) - out).detach()
        k_aux = self.spec.aux_k or batch.target.shape[-1] // 2
        scale = min(num_dead / k_aux, 1.0)
        k_aux = min(k_aux, num_dead)
        if self.sparse_decode:
            top = torch.where(dead[None], hidden_pre, -torch.inf).topk(k_aux, sorted=False)
            recons = self.sparse_times_w_dec(top.indices, top.values)
        else:
            recons = self.times_w_dec(dead_topk_acts(hidden_pre, dead, k_aux))
        return self.spec.aux_loss_coefficient * scale * (recons - residual).pow(2).sum(dim=-1).mean()

    def aux_losses(self, batch: LossInput, feature_acts: torch.Tensor, hidden_pre: torch.Tensor,
                   out: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"auxiliary_reconstruction_loss": self.aux_k_loss(batch, out, hidden_pre)}

    def inference_fields(self) -> dict[str, Any]:
        return {"architecture": "topk", "k": int(self.spec.k),  # type: ignore[arg-type]
                "rescale_acts_by_decoder_norm": self._rescale()}

    @torch.no_grad()
    def inference_tensors(self, scale_in: float = 1.0, scale_out: float = 1.0) -> dict[str, torch.Tensor]:
        """As the base, then the decoder norms folded into the encoder (SAELens's `_fold_norm_topk`, applied
        when it saves a TopK SAE trained with `rescale_acts_by_decoder_norm`)."""
        tensors = super().inference_tensors(scale_in, scale_out)
        if self._rescale():
            fold_decoder_norms(tensors)
        return tensors


def dead_topk_acts(hidden_pre: torch.Tensor, dead_mask: torch.Tensor, k_aux: int) -> torch.Tensor:
    """The top `k_aux` dead latents' pre-activations of each row (SAELens's `calculate_topk_aux_acts`)."""
    candidates = torch.where(dead_mask[None], hidden_pre, -torch.inf)
    top = candidates.topk(k_aux, sorted=False)
    return torch.zeros_like(hidden_pre).scatter(-1, top.indices, top.values)


def fold_decoder_norms(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """Unit decoder rows, the norms moved into W_enc and b_enc — in place; returns the norms."""
    norms = tensors["W_dec"].norm(dim=-1).clamp(min=1e-8)
    tensors["W_dec"] = tensors["W_dec"] / norms[:, None]
    tensors["W_enc"] = tensors["W_enc"] * norms[None, :]
    tensors["b_enc"] = tensors["b_enc"] * norms
    return norms

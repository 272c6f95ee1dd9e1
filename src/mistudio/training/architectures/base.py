"""The training module every architecture extends: SAELens's `TrainingSAE` initialisation and forward pass,
generalised to transcoders (read `x`, predict `target`, `d_out` wide, optional skip connection)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from mistudio.training.config import SAESpec


@dataclass
class LossInput:
    """What one training forward pass needs besides the weights (SAELens's `TrainStepInput`)."""

    x: torch.Tensor
    target: torch.Tensor
    sparsity_coefficient: float
    dead_mask: torch.Tensor | None


@dataclass
class TrainOutput:
    """One forward pass: the total loss, its terms, the feature activations and the prediction."""

    loss: torch.Tensor
    losses: dict[str, torch.Tensor]
    feature_acts: torch.Tensor
    hidden_pre: torch.Tensor
    out: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


def mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SAELens's MSE loss: squared error summed over the feature dimension, averaged over the batch."""
    return (out - target).pow(2).sum(dim=-1).mean()


class TrainingArchitecture(nn.Module):
    """Parameters `W_enc [d_in, d_sae]`, `b_enc [d_sae]`, `W_dec [d_sae, d_out]`, `b_dec [d_out]` (+ `W_skip
    [d_in, d_out]` for a skip transcoder), initialised as SAELens's `TrainingSAE`: W_dec Kaiming-uniform with its
    rows scaled to `decoder_init_norm`, W_enc = W_dec.T (a transcoder whose widths differ gets its own
    Kaiming-uniform W_enc, as SAELens's `Transcoder`), zero biases, zero W_skip."""

    name: ClassVar[str]
    inference_architecture: ClassVar[str]

    def __init__(self, spec: SAESpec, *, generator: torch.Generator) -> None:
        super().__init__()
        self.spec = spec
        d_in, d_sae, d_out = spec.d_in, spec.d_sae, spec.output_width
        self.apply_b_dec_to_input = not spec.is_transcoder
        w_dec = torch.empty(d_sae, d_out)
        nn.init.kaiming_uniform_(w_dec, generator=generator)
        if spec.decoder_init_norm is not None:
            w_dec = w_dec / w_dec.norm(dim=-1, keepdim=True) * spec.decoder_init_norm
        if d_out == d_in:
            w_enc = w_dec.T.clone().contiguous()
        else:
            w_enc = torch.empty(d_in, d_sae)
            nn.init.kaiming_uniform_(w_enc, generator=generator)
        self.W_enc = nn.Parameter(w_enc)
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(w_dec)
        self.b_dec = nn.Parameter(torch.zeros(d_out))
        if spec.skip_connection:
            self.W_skip = nn.Parameter(torch.zeros(d_in, d_out))

    # ----- forward -----------------------------------------------------------------------------------------
    def sae_input(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's input: x − b_dec for an SAE (`apply_b_dec_to_input`), x for a transcoder."""
        x = x.to(self.W_enc.dtype)
        return x - self.b_dec if self.apply_b_dec_to_input else x

    def hidden_pre(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations x' @ W_enc + b_enc."""
        return self.sae_input(x) @ self.W_enc + self.b_enc

    def encode_with_hidden_pre(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(feature activations, pre-activations) of a batch."""
        raise NotImplementedError

    def decode(self, feature_acts: torch.Tensor) -> torch.Tensor:
        """f @ W_dec + b_dec."""
        return feature_acts @ self.W_dec + self.b_dec

    def predict(self, x: torch.Tensor, feature_acts: torch.Tensor) -> torch.Tensor:
        """The reconstruction (an SAE) or the prediction of the output hook (a transcoder, plus x @ W_skip)."""
        out = self.decode(feature_acts)
        if self.spec.skip_connection:
            out = out + x.to(self.W_skip.dtype) @ self.W_skip
        return out

    def aux_losses(self, batch: LossInput, feature_acts: torch.Tensor, hidden_pre: torch.Tensor,
                   out: torch.Tensor) -> dict[str, torch.Tensor]:
        """The architecture's terms besides the MSE (SAELens's `calculate_aux_loss`)."""
        raise NotImplementedError

    def training_forward(self, batch: LossInput) -> TrainOutput:
        """MSE plus the architecture's terms (SAELens's `training_forward_pass`)."""
        feature_acts, hidden_pre = self.encode_with_hidden_pre(batch.x)
        out = self.predict(batch.x, feature_acts)
        mse_loss = mse(out, batch.target.to(out.dtype))
        losses = {"mse_loss": mse_loss, **self.aux_losses(batch, feature_acts, hidden_pre, out)}
        total = mse_loss
        for name, value in losses.items():
            if name != "mse_loss":
                total = total + value
        return TrainOutput(total, losses, feature_acts, hidden_pre, out)

    # ----- distributed -------------------------------------------------------------------------------------
    def synchronise(self, dist: Any) -> None:
        """Make rank-local non-gradient state equal on every rank (nothing for most architectures)."""

    # ----- export ------------------------------------------------------------------------------------------
    def inference_fields(self) -> dict[str, Any]:
        """`SAEConfig` fields of the inference SAE (architecture, k, rescale flag)."""
        return {"architecture": self.inference_architecture}

    @torch.no_grad()
    def inference_tensors(self, scale_in: float = 1.0, scale_out: float = 1.0) -> dict[str, torch.Tensor]:
        """The weights of the inference SAE under our SAE module's names (float32, CPU), with the inputs' scale
        (x_train = x · scale_in, target_train = target · scale_out) folded in as SAELens's
        `fold_activation_norm_scaling_factor` folds it."""
        tensors = {name: p.detach().to("cpu", torch.float32).clone() for name, p in self.named_parameters()}
        tensors["W_enc"] = tensors["W_enc"] * scale_in
        tensors["W_dec"] = tensors["W_dec"] / scale_out
        tensors["b_dec"] = tensors["b_dec"] / scale_out
        if "W_skip" in tensors:
            tensors["W_skip"] = tensors["W_skip"] * (scale_in / scale_out)
        return tensors

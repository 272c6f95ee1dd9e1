"""JumpReLU SAE (SAELens `jumprelu`): a learned per-latent threshold trained through straight-through
estimators with a rectangle kernel, and an L0 penalty (`step`, DeepMind's, SAELens's default; or `tanh`,
Anthropic's)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mistudio.training.architectures.base import LossInput, TrainingArchitecture, TrainOutput
from mistudio.training.config import SAESpec


def rectangle(x: torch.Tensor) -> torch.Tensor:
    """1 on (−½, ½), else 0: the kernel of the straight-through estimators."""
    return ((x > -0.5) & (x < 0.5)).to(x)


class StepFunction(torch.autograd.Function):
    """H(x − θ) forward; d/dθ = −(1/ε) K((x − θ)/ε) backward (and to x too with `ste_to_input`)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, threshold: torch.Tensor, bandwidth: float,
                ste_to_input: bool) -> torch.Tensor:
        ctx.save_for_backward(x, threshold)
        ctx.bandwidth = bandwidth
        ctx.ste_to_input = ste_to_input
        return (x > threshold).to(x)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, None, None]:
        x, threshold = ctx.saved_tensors
        ste = (1.0 / ctx.bandwidth) * rectangle((x - threshold) / ctx.bandwidth) * grads[0]
        return (ste if ctx.ste_to_input else None), torch.sum(-ste, dim=0), None, None


class JumpReLUFunction(torch.autograd.Function):
    """x · H(x − θ) forward; d/dx = H(x − θ), d/dθ = −(θ/ε) K((x − θ)/ε) backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, threshold: torch.Tensor, bandwidth: float,
                ste_to_input: bool) -> torch.Tensor:
        ctx.save_for_backward(x, threshold)
        ctx.bandwidth = bandwidth
        ctx.ste_to_input = ste_to_input
        return (x * (x > threshold)).to(x)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None]:
        x, threshold = ctx.saved_tensors
        grad = grads[0]
        ste = (threshold / ctx.bandwidth) * rectangle((x - threshold) / ctx.bandwidth) * grad
        x_grad = (x > threshold) * grad
        if ctx.ste_to_input:
            x_grad = x_grad + ste
        return x_grad, torch.sum(-ste, dim=0), None, None


class JumpReLUTraining(TrainingArchitecture):
    """f = h · (h > θ), h = x' @ W_enc + b_enc, θ a float32 parameter (initialised to
    `jumprelu_init_threshold`, projected to θ ≥ 0 before each step: SAELens trains θ directly, not log θ, since
    Adam's ~lr steps barely move a log-parameterised small threshold); loss = MSE + λ · mean L0 (step) or
    λ · mean Σ tanh(c · f · ‖W_dec‖) (tanh), plus Anthropic's pre-activation loss on dead latents when
    `pre_act_loss_coefficient` is set."""

    name = "jumprelu"
    inference_architecture = "jumprelu"

    def __init__(self, spec: SAESpec, *, generator: torch.Generator) -> None:
        super().__init__(spec, generator=generator)
        self.threshold = nn.Parameter(torch.full((spec.d_sae,), float(spec.jumprelu_init_threshold)))

    def _apply(self, fn: Any, recurse: bool = True) -> JumpReLUTraining:  # the threshold stays float32
        out = super()._apply(fn, recurse)
        if self.threshold.dtype != torch.float32:
            self.threshold.data = self.threshold.data.float()
        return out

    def encode_with_hidden_pre(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden_pre = self.hidden_pre(x)
        acts = JumpReLUFunction.apply(hidden_pre, self.threshold.to(hidden_pre.dtype), self.spec.jumprelu_bandwidth,
                                      self.spec.jumprelu_ste_to_input)
        return acts, hidden_pre

    def training_forward(self, batch: LossInput) -> TrainOutput:
        with torch.no_grad():
            self.threshold.data.clamp_(min=0.0)
        return super().training_forward(batch)

    def aux_losses(self, batch: LossInput, feature_acts: torch.Tensor, hidden_pre: torch.Tensor,
                   out: torch.Tensor) -> dict[str, torch.Tensor]:
        threshold = self.threshold.to(hidden_pre.dtype)
        w_dec_norm = self.W_dec.norm(dim=1)
        if self.spec.jumprelu_sparsity_loss_mode == "step":
            per_item = torch.sum(StepFunction.apply(hidden_pre, threshold, self.spec.jumprelu_bandwidth,
                                                    self.spec.jumprelu_ste_to_input), dim=-1)
        else:
            per_item = torch.tanh(self.spec.jumprelu_tanh_scale * feature_acts * w_dec_norm).sum(dim=-1)
        losses = {"l0_loss": (batch.sparsity_coefficient * per_item).mean()}
        if self.spec.pre_act_loss_coefficient is not None:
            losses["pre_act_loss"] = pre_act_loss(self.spec.pre_act_loss_coefficient, threshold, hidden_pre,
                                                  batch.dead_mask, w_dec_norm)
        return losses


def pre_act_loss(coefficient: float, threshold: torch.Tensor, hidden_pre: torch.Tensor,
                 dead_mask: torch.Tensor | None, w_dec_norm: torch.Tensor) -> torch.Tensor:
    """Anthropic's pre-activation loss, on dead latents only (SAELens's `calculate_pre_act_loss`)."""
    if dead_mask is None or not dead_mask.any():
        return hidden_pre.new_tensor(0.0)
    per_item = ((threshold - hidden_pre).relu() * dead_mask * w_dec_norm).sum(dim=-1)
    return coefficient * per_item.mean()

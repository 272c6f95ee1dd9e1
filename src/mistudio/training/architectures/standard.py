"""Standard (ReLU) SAE trained with an L1 penalty weighted by the decoder row norms (SAELens `standard`)."""

from __future__ import annotations

import torch

from mistudio.training.architectures.base import LossInput, TrainingArchitecture


class StandardTraining(TrainingArchitecture):
    """f = relu(x' @ W_enc + b_enc); loss = MSE + λ · mean ‖f ⊙ ‖W_dec‖‖₁ (λ warmed up by the schedule)."""

    name = "standard"
    inference_architecture = "standard"

    def encode_with_hidden_pre(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden_pre = self.hidden_pre(x)
        return hidden_pre.relu(), hidden_pre

    def aux_losses(self, batch: LossInput, feature_acts: torch.Tensor, hidden_pre: torch.Tensor,
                   out: torch.Tensor) -> dict[str, torch.Tensor]:
        weighted = feature_acts * self.W_dec.norm(dim=1)
        sparsity = weighted.norm(p=1, dim=-1)
        return {"l1_loss": (batch.sparsity_coefficient * sparsity).mean()}

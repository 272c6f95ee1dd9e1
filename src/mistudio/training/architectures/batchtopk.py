"""BatchTopK SAE (SAELens `batchtopk`): k active latents on average over the batch; saved as JumpReLU with the
learned global threshold."""

from __future__ import annotations

from typing import Any

import torch

from mistudio.training.architectures.base import LossInput, TrainOutput
from mistudio.training.architectures.topk import TopKTraining
from mistudio.training.config import SAESpec


def batch_topk_acts(hidden_pre: torch.Tensor, k: float) -> torch.Tensor:
    """relu, then keep the int(k · rows) largest entries of the whole batch (SAELens's `BatchTopK`)."""
    acts = hidden_pre.relu()
    flat = acts.flatten()
    top = torch.topk(flat, int(k * acts.shape[:-1].numel()), dim=-1)
    return torch.zeros_like(flat).scatter(-1, top.indices, top.values).reshape(acts.shape)


class BatchTopKTraining(TopKTraining):
    """TopK's pre-activations, the auxiliary-k loss and the decoder-norm rescaling; the batch-wide top-k, and a
    running threshold (float64) moved by `topk_threshold_lr` towards each batch's smallest positive activation.
    At inference the SAE is a JumpReLU SAE with that threshold for every latent."""

    name = "batchtopk"
    inference_architecture = "jumprelu"
    topk_threshold: torch.Tensor

    def __init__(self, spec: SAESpec, *, generator: torch.Generator) -> None:
        super().__init__(spec, generator=generator)
        self.register_buffer("topk_threshold", torch.tensor(0.0, dtype=torch.float64))
        self._previous_threshold: torch.Tensor | None = None
        self._batch_min: torch.Tensor | None = None

    def _apply(self, fn: Any, recurse: bool = True) -> BatchTopKTraining:  # the threshold stays float64
        out = super()._apply(fn, recurse)
        if self.topk_threshold.dtype != torch.float64:
            self.topk_threshold = self.topk_threshold.to(torch.float64)
        return out

    sparse_decode = False  # k·B latents over the whole batch, not k per row

    def activate(self, hidden_pre: torch.Tensor) -> torch.Tensor:
        return batch_topk_acts(hidden_pre, float(self.spec.k))  # type: ignore[arg-type]

    def training_forward(self, batch: LossInput) -> TrainOutput:
        output = super().training_forward(batch)
        self.update_threshold(output.feature_acts)
        output.metrics["topk_threshold"] = self.topk_threshold
        return output

    @torch.no_grad()
    def update_threshold(self, acts: torch.Tensor) -> None:
        """EMA of the smallest positive activation (SAELens's `update_topk_threshold`)."""
        positive = acts > 0
        self._previous_threshold = self.topk_threshold.clone()
        self._batch_min = acts[positive].min().to(torch.float64) if positive.any() else None
        if self._batch_min is not None:
            lr = self.spec.topk_threshold_lr
            self.topk_threshold = (1 - lr) * self.topk_threshold + lr * self._batch_min

    @torch.no_grad()
    def synchronise(self, dist: Any) -> None:
        """Every rank redoes the step's threshold update with the smallest positive activation over all ranks'
        batches (the one a single process would see on the combined batch), so the ranks stay identical."""
        if self._previous_threshold is None:
            return
        local = self._batch_min if self._batch_min is not None else torch.tensor(torch.inf, dtype=torch.float64)
        smallest = -dist.max_((-local).to(self.topk_threshold.device).reshape(1))[0]
        if torch.isfinite(smallest):
            lr = self.spec.topk_threshold_lr
            self.topk_threshold = (1 - lr) * self._previous_threshold + lr * smallest
        else:
            self.topk_threshold = self._previous_threshold

    def inference_fields(self) -> dict[str, Any]:
        return {"architecture": "batchtopk", "k": float(self.spec.k)}  # type: ignore[arg-type]

    @torch.no_grad()
    def inference_tensors(self, scale_in: float = 1.0, scale_out: float = 1.0) -> dict[str, torch.Tensor]:
        """TopK's folded weights plus `threshold` = the running threshold for every latent (divided by the
        output scale when the threshold is in decoder-norm units, as SAELens's fold does)."""
        tensors = super().inference_tensors(scale_in, scale_out)
        threshold = float(self.topk_threshold)
        if self._rescale():
            threshold /= scale_out
        tensors["threshold"] = torch.full_like(tensors["b_enc"], threshold)
        return tensors

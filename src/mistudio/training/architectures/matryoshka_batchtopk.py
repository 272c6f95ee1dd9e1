"""Matryoshka BatchTopK SAE (SAELens `matryoshka_batchtopk`): BatchTopK plus a reconstruction loss for every
nested prefix of latents; saved as JumpReLU."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from mistudio.training.architectures.base import LossInput, TrainOutput, mse
from mistudio.training.architectures.batchtopk import BatchTopKTraining


class MatryoshkaBatchTopKTraining(BatchTopKTraining):
    """The loss adds, for each inner width w of `matryoshka_widths` (the last, d_sae, is the BatchTopK loss
    itself), the MSE of the reconstruction from latents [0, w) alone."""

    name = "matryoshka_batchtopk"

    def inner_predictions(self, x: torch.Tensor, feature_acts: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """(width, prediction from the first `width` latents) for each inner level (SAELens's
        `_iterable_decode` without the outer level)."""
        if self._rescale():
            feature_acts = feature_acts * (1 / self.W_dec.norm(dim=-1))
        widths = list(self.spec.matryoshka_widths or [])[:-1]
        decoded: torch.Tensor = self.b_dec
        if self.spec.skip_connection:
            decoded = decoded + x.to(self.W_skip.dtype) @ self.W_skip
        previous = 0
        for width in widths:
            decoded = feature_acts[:, previous:width] @ self.W_dec[previous:width] + decoded
            previous = width
            yield width, decoded

    def training_forward(self, batch: LossInput) -> TrainOutput:
        output = super().training_forward(batch)
        target = batch.target.to(output.out.dtype)
        for width, inner in self.inner_predictions(batch.x, output.feature_acts):
            inner_loss = mse(inner, target)
            output.losses[f"inner_mse_loss_{width}"] = inner_loss
            output.loss = output.loss + inner_loss
        return output

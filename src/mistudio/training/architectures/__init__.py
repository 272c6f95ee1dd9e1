"""One training module per architecture (as SAELens's `sae_lens/saes/`), and the registry that builds them.

Transcoders are the same modules with a target other than the input (`SAESpec.hook_name_out`, `d_out`,
`skip_connection`): the MSE is against the target, b_dec is never subtracted from the input, and the AuxK
residual is the target's."""

from __future__ import annotations

import torch

from mistudio.errors import InvalidInputError
from mistudio.training.architectures.base import LossInput, TrainingArchitecture, TrainOutput
from mistudio.training.architectures.batchtopk import BatchTopKTraining
from mistudio.training.architectures.jumprelu import JumpReLUTraining
from mistudio.training.architectures.matryoshka_batchtopk import MatryoshkaBatchTopKTraining
from mistudio.training.architectures.standard import StandardTraining
from mistudio.training.architectures.topk import TopKTraining
from mistudio.training.config import SAESpec

REGISTRY: dict[str, type[TrainingArchitecture]] = {
    cls.name: cls
    for cls in (StandardTraining, TopKTraining, BatchTopKTraining, JumpReLUTraining, MatryoshkaBatchTopKTraining)
}


def build_architecture(spec: SAESpec, *, generator: torch.Generator) -> TrainingArchitecture:
    """The training module of `spec` (defaults resolved), initialised from `generator`.

    Raises:
        InvalidInputError: an architecture with no training module.
    """
    spec = spec.resolved()
    cls = REGISTRY.get(spec.architecture)
    if cls is None:
        raise InvalidInputError(f"no training module for architecture {spec.architecture!r}; "
                                f"use one of {', '.join(REGISTRY)}")
    return cls(spec, generator=generator)


__all__ = ["REGISTRY", "LossInput", "TrainOutput", "TrainingArchitecture", "build_architecture"]

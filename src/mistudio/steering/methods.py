"""The steering methods of Neuronpedia's inference server, applied to the activations at one hook.

For each feature, `coeff = strength × strength_multiplier` and `v = W_dec[index]` (`v / ‖v‖` when
`normalize_steering`). At every position the mask lets through (positions whose token is not a special token,
or every position with `steer_special_tokens`), the activation h becomes:

* `SIMPLE_ADDITIVE`:   h + Σ coeff × v
* `ORTHOGONAL_DECOMP`: (I − P) h + coeff × P h with P = v vᵀ / ‖v‖² (Neuronpedia's `OrthogonalProjector`):
  the component along v is scaled by coeff, the rest kept; features are applied one after the other.
* `PROJECTION_CAP`:    h + (min(h·u, coeff) − h·u) u with u = v / ‖v‖ (Neuronpedia's chatspace
  `ProjectionCapSpec(vector=v, min=None, max=coeff)`): the component along u is capped above at coeff.

Masked positions keep h exactly. The arithmetic runs in float32 and the result is cast back to h's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch

from mistudio.errors import InvalidInputError

SteerMethod = Literal["SIMPLE_ADDITIVE", "ORTHOGONAL_DECOMP", "PROJECTION_CAP"]
STEER_METHODS: tuple[str, ...] = get_args(SteerMethod)


@dataclass(frozen=True)
class SteeringTerm:
    """One feature's steering: its direction `vector` [d] (already normalised if asked) and `coeff`."""

    vector: torch.Tensor
    coeff: float


def steering_terms(W_dec: torch.Tensor, features: list[tuple[int, float]], *, strength_multiplier: float,
                   normalize_steering: bool) -> list[SteeringTerm]:
    """The terms for `(index, strength)` pairs: `W_dec[index]` (unit length with `normalize_steering`) and
    `strength × strength_multiplier`.

    Raises:
        InvalidInputError: an index is outside the SAE, or a direction is zero or not finite.
    """
    d_sae = W_dec.shape[0]
    terms = []
    for index, strength in features:
        if not 0 <= index < d_sae:
            raise InvalidInputError(f"feature {index} does not exist: the SAE has features 0..{d_sae - 1}")
        vector = W_dec[index].detach().float()
        if not bool(torch.isfinite(vector).all()):
            raise InvalidInputError(f"feature {index}'s decoder direction contains inf or nan values")
        norm = torch.linalg.vector_norm(vector)
        if normalize_steering:
            if float(norm) == 0:
                raise InvalidInputError(f"feature {index} has a zero decoder direction; it cannot steer")
            vector = vector / norm
        terms.append(SteeringTerm(vector, float(strength) * float(strength_multiplier)))
    return terms


def check_method(method: str) -> SteerMethod:
    """`method` if it is a known steering method.

    Raises:
        InvalidInputError: it is not one of SIMPLE_ADDITIVE, ORTHOGONAL_DECOMP, PROJECTION_CAP.
    """
    if method not in STEER_METHODS:
        raise InvalidInputError(f"unknown steering method {method!r}; use one of {', '.join(STEER_METHODS)}")
    return method  # type: ignore[return-value]


def steering_delta(h: torch.Tensor, terms: list[SteeringTerm], method: SteerMethod,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """What steering adds to `h` [..., d], in float32; zero where `mask` [...] (bool; None: steer all) is False.

    Raises:
        InvalidInputError: a projection method gets a zero direction.
    """
    x = h.float()
    if method == "SIMPLE_ADDITIVE":
        total = torch.zeros(x.shape[-1], dtype=torch.float32, device=x.device)
        for term in terms:
            total = total + term.coeff * term.vector.to(x.device)
        delta = total.expand_as(x)
    else:
        out = x
        for term in terms:
            v = term.vector.to(x.device)
            norm_sq = torch.dot(v, v)
            if float(norm_sq) == 0:
                raise InvalidInputError(f"{method} needs a non-zero steering direction")
            if method == "ORTHOGONAL_DECOMP":
                parallel = (out @ v).unsqueeze(-1) * v / norm_sq  # P h
                out = out - parallel + term.coeff * parallel
            else:
                u = v / norm_sq.sqrt()
                proj = out @ u
                out = out + (proj.clamp(max=term.coeff) - proj).unsqueeze(-1) * u
        delta = out - x
    if mask is not None:
        delta = torch.where(mask.to(x.device).unsqueeze(-1), delta, torch.zeros_like(delta))
    return delta


"""Weight statistics of an SAE (no data needed): decoder/encoder norms, dead rows, size."""

from __future__ import annotations

from typing import Any

import torch

from mistudio.saes.model import SAE

ZERO_ROW_TOL = 1e-8


def _summary(values: torch.Tensor) -> dict[str, float]:
    v = values.double()
    return {
        "min": float(v.min()),
        "mean": float(v.mean()),
        "max": float(v.max()),
        "std": float(v.std(correction=0)),
    }


@torch.no_grad()
def weight_statistics(sae: SAE) -> dict[str, Any]:
    """Decoder row-norm and encoder column-norm summaries, zero decoder rows, parameter count and bytes."""
    dec_norms = sae.W_dec.float().norm(dim=-1)
    encoder = sae.W_enc if hasattr(sae, "W_enc") else sae.W_dec.T  # a tied temporal SAE encodes with W_dec.T
    enc_norms = encoder.float().norm(dim=0)
    stats: dict[str, Any] = {
        "architecture": sae.cfg.architecture,
        "d_in": sae.cfg.d_in,
        "d_sae": sae.cfg.d_sae,
        "decoder_norm": _summary(dec_norms),
        "encoder_norm": _summary(enc_norms),
        "zero_decoder_rows": int((dec_norms <= ZERO_ROW_TOL).sum()),
        "zero_encoder_columns": int((enc_norms <= ZERO_ROW_TOL).sum()),
        "num_parameters": sae.num_parameters(),
        "weights_nbytes": sae.weights_nbytes(),
        "dtype": sae.cfg.dtype,
    }
    if sae.cfg.d_out is not None:
        stats["d_out"] = sae.cfg.d_out
    if hasattr(sae, "threshold"):
        stats["threshold"] = _summary(sae.threshold.float())
    return stats

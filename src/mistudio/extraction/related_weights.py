"""The weight-only Neuronpedia fields of every feature, computed as SAEDashboard and Neuronpedia compute them.

* `decoder_fold_factors`: the per-feature factor SAELens's `fold_W_dec_norm` multiplies activations by (the
  decoder row's L2 norm, clamped at 1e-8 as SAELens clamps it); 1 for topk and temporal SAEs, whose activations
  folding leaves as they are (SAELens refuses to fold a temporal SAE or a topk SAE without
  `rescale_acts_by_decoder_norm`; folding a topk SAE with it normalises the decoder but not the activations).
* `neuron_alignment`: the 3 largest entries of the folded decoder row and their share of the row's L1 norm
  (`sae_dashboard.data_parsing_fns.add_neuron_alignment_data`).
* `decoder_cosine_topk`: the 10 decoder rows most cosine-similar to each row, itself included (Neuronpedia's
  `util/sae-topk-by-decoder-cossim`), in chunks of rows against column blocks of the decoder, so memory is
  O(chunk × block) and it streams for a million features.
* the Neuronpedia logit lens (`extraction.logit_lens`, convention "neuronpedia"): the folded decoder row through
  `to_resid_direction` and the model's unembedding as SAEDashboard's NeuronpediaRunner loads the model
  (TransformerLens's default processing with the SAE's `model_from_pretrained_kwargs`).

`write_neuronpedia_weights` stores them all as the feature store's `neuronpedia_weights` part.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mistudio.extraction.logit_lens import (
    decoder_as_extracted,
    empty_neuronpedia_logits,
    lens_basis,
    lens_unembedding,
    neuronpedia_logit_rows,
    neuronpedia_projection,
)
from mistudio.saes.model import SAE

if TYPE_CHECKING:
    from mistudio.lm.loading import LoadedModel
    from mistudio.store.feature_store import FeatureStore

PART = "neuronpedia_weights"
UNFOLDED_ARCHITECTURES = ("topk", "temporal")
NORM_EPS = 1e-8  # SAELens's clamp of the decoder norms, and Neuronpedia's cosine denominator
ALIGNMENT_K = 3  # NeuronpediaRunner: FeatureTablesConfig(n_rows=3)
COSINE_K = 10  # the 10 similar features Neuronpedia's feature page asks for
LOGIT_K = 10  # LogitsTableConfig().n_rows
LOGIT_BINS = 50  # LogitsHistogramConfig().n_bins
MATRIX_BUDGET = 2**26  # floats per [rows, columns] block (256 MiB)


@torch.no_grad()
def decoder_fold_factors(sae: SAE, W_dec: torch.Tensor | None = None) -> torch.Tensor:
    """The factor `[d_sae]` (float32, on the SAE's device) SAEDashboard's folding multiplies each feature's
    activations by: the decoder row's L2 norm clamped at 1e-8 (SAELens `get_W_dec_norm`), or 1 for the
    architectures it leaves unfolded (topk, temporal). `W_dec` overrides the SAE's decoder (e.g. one with an
    input normalisation factor divided out)."""
    weights = (sae.W_dec if W_dec is None else W_dec).detach()
    if sae.cfg.architecture in UNFOLDED_ARCHITECTURES:
        return torch.ones(weights.shape[0], dtype=torch.float32, device=weights.device)
    return torch.linalg.vector_norm(weights, dim=-1, dtype=torch.float32).clamp(min=NORM_EPS)


@torch.no_grad()
def folded_decoder(sae: SAE, W_dec: torch.Tensor | None = None) -> torch.Tensor:
    """The decoder after SAELens's `fold_W_dec_norm` (float32): rows divided by their clamped L2 norm, except
    where SAELens cannot fold (temporal, topk without `rescale_acts_by_decoder_norm`: the decoder as it is)."""
    weights = (sae.W_dec if W_dec is None else W_dec).detach().float()
    arch = sae.cfg.architecture
    if arch == "temporal" or (arch == "topk" and not sae.cfg.rescale_acts_by_decoder_norm):
        return weights
    return weights / weights.norm(dim=-1, keepdim=True).clamp(min=NORM_EPS)


@torch.no_grad()
def neuron_alignment(folded_rows: torch.Tensor, k: int = ALIGNMENT_K) -> dict[str, torch.Tensor]:
    """`add_neuron_alignment_data` for folded decoder rows `[F, width]`: the `k` largest entries
    (`torch.topk`, largest first: indices int64, values float32) and |value| / the row's L1 norm."""
    rows = folded_rows.float()
    top = torch.topk(rows, min(k, rows.shape[1]), dim=1, largest=True)
    l1 = top.values.abs() / rows.abs().sum(dim=1, keepdim=True)
    return {"neuron_alignment_indices": top.indices, "neuron_alignment_values": top.values,
            "neuron_alignment_l1": l1}


@torch.no_grad()
def decoder_cosine_topk(W_dec: torch.Tensor, k: int = COSINE_K, *, chunk: int = 1024,
                        block: int | None = None, rows: slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each decoder row (of `rows`, default all), the `k` rows with the largest cosine similarity, itself
    included, as Neuronpedia's `util/sae-topk-by-decoder-cossim` computes it: `dot / max(‖w‖·‖q‖, 1e-8)` in
    float32, NaN demoted to -inf for the ranking and reported as 0.0 (as the endpoint reports every non-finite
    value). Computed on `W_dec`'s device, `chunk` rows against `block` columns at a time with a running top-k,
    so memory is O(chunk × block) whatever d_sae is. Returns CPU (values float32, indices int64) `[n, k]`."""
    n = W_dec.shape[0]
    k = min(k, n)
    block = block or max(k, MATRIX_BUDGET // max(chunk, 1))
    norms = torch.linalg.vector_norm(W_dec, dim=1, dtype=torch.float32)
    selected = range(n)[rows] if rows is not None else range(n)
    out_values, out_indices = [], []
    for lo in range(selected.start, selected.stop, chunk):
        hi = min(lo + chunk, selected.stop)
        query = W_dec[lo:hi].float()
        best_v: torch.Tensor | None = None
        best_i: torch.Tensor | None = None
        for c_lo in range(0, n, block):
            c_hi = min(c_lo + block, n)
            dots = query @ W_dec[c_lo:c_hi].float().T
            cos = dots / (norms[lo:hi, None] * norms[None, c_lo:c_hi]).clamp_min(NORM_EPS)
            cos = torch.nan_to_num(cos, nan=float("-inf"))
            ids = torch.arange(c_lo, c_hi, device=cos.device).expand_as(cos)
            if best_v is not None and best_i is not None:
                cos, ids = torch.cat([best_v, cos], dim=1), torch.cat([best_i, ids], dim=1)
            best_v, pos = torch.topk(cos, min(k, cos.shape[1]), dim=1)
            best_i = ids.gather(1, pos)
        assert best_v is not None and best_i is not None
        out_values.append(torch.where(best_v.isfinite(), best_v, torch.zeros_like(best_v)).cpu())
        out_indices.append(best_i.cpu())
    if not out_values:
        return torch.zeros(0, k), torch.zeros(0, k, dtype=torch.int64)
    return torch.cat(out_values), torch.cat(out_indices)


def _logit_chunk(vocab_size: int, chunk: int) -> int:
    return max(1, min(chunk, MATRIX_BUDGET // max(vocab_size, 1)))


@torch.no_grad()
def neuronpedia_weights(loaded: LoadedModel, sae: SAE, W_dec: torch.Tensor | None = None, *,
                        chunk: int = 1024) -> dict[str, torch.Tensor]:
    """Every weight-only Neuronpedia field of every feature (the tensors of the `neuronpedia_weights` part):
    `fold`, `neuron_alignment_*`, `cos_*` and the Neuronpedia-convention `logit_*` (see the module docstring).
    `W_dec` is the decoder the extraction ran with (default the SAE's). Row chunks of `chunk` features, on the
    SAE's device (the logit lens on the model's)."""
    weights = (sae.W_dec if W_dec is None else W_dec).detach()
    d_sae = weights.shape[0]
    out: dict[str, list[torch.Tensor]] = {}

    def add(part: dict[str, torch.Tensor]) -> None:
        for key, value in part.items():
            out.setdefault(key, []).append(value.cpu())

    add({"fold": decoder_fold_factors(sae, weights)})
    cos_values, cos_indices = decoder_cosine_topk(weights, chunk=chunk)
    add({"cos_indices": cos_indices, "cos_values": cos_values})
    basis = lens_basis(sae, loaded)
    W_U = projection = None
    if basis.basis is not None:
        W_U = lens_unembedding(loaded, sae, "neuronpedia")
        projection = neuronpedia_projection(loaded, sae, basis)
    else:
        add(empty_neuronpedia_logits(d_sae))
    step = chunk if W_U is None else _logit_chunk(int(W_U.shape[1]), chunk)
    for lo in range(0, d_sae, step):
        rows = folded_decoder(sae, weights[lo:lo + step])
        add(neuron_alignment(rows))
        if W_U is not None:
            add(neuronpedia_logit_rows(rows, W_U, projection, k=LOGIT_K, n_bins=LOGIT_BINS))
    return {key: torch.cat(parts) for key, parts in out.items()}


def write_neuronpedia_weights(store: FeatureStore, loaded: LoadedModel, sae: SAE, *, chunk: int = 1024) -> None:
    """Compute `neuronpedia_weights` for the store's extraction and write it as the store's
    `neuronpedia_weights` part; the manifest's `neuronpedia_weights` records the logit-lens basis and
    convention. An SAE not yet folded (`expected_average_only_in`, as a re-loaded SAE is) uses the decoder the
    extraction ran with."""
    W_dec = decoder_as_extracted(sae, store.manifest)
    tensors = neuronpedia_weights(loaded, sae, W_dec, chunk=chunk)
    basis = lens_basis(sae, loaded)
    store.manifest[PART] = {"logit_lens": {**basis.describe(), "convention": "neuronpedia"},
                            "fold": "none" if sae.cfg.architecture in UNFOLDED_ARCHITECTURES else "W_dec_norm"}
    store.write_part(PART, tensors)

"""The end of a pass: turn a finished accumulator into the feature store's parts (statistics, histograms, top
examples, interval-example candidates, the per-feature top token, vocabulary strings, logit lens), and compute a
part an older store lacks (`ensure_parts`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from mistudio.errors import InvalidInputError
from mistudio.extraction.accumulator import Accumulator
from mistudio.extraction.logit_lens import (
    compute_logit_lens,
    decoder_as_extracted,
    empty_logit_lens,
    lens_basis,
    lens_projection,
    lens_unembedding,
)
from mistudio.lm.tokens import vocab_strings
from mistudio.store.feature_store import FeatureStore

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from mistudio.lm.loading import LoadedModel
    from mistudio.saes.model import SAE


def histogram_csr(hist: torch.Tensor) -> dict[str, torch.Tensor]:
    """Dense fine counts `[d_sae, bins]` → CSR (`indptr`, `bins` int16, `counts` int32)."""
    hist = hist.cpu()
    rows, bins = hist.nonzero(as_tuple=True)
    indptr = torch.zeros(hist.shape[0] + 1, dtype=torch.int64)
    indptr[1:] = torch.bincount(rows, minlength=hist.shape[0]).cumsum(0)
    return {"indptr": indptr, "bins": bins.to(torch.int16), "counts": hist[rows, bins].to(torch.int32)}


@torch.no_grad()
def top_token_per_feature(rows: torch.Tensor, row_tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """For rows `[F, K, C]` and their token ids `[F, K, C]`, the token id with the largest total activation per
    feature (ties: smallest id; -1 where a feature never fires), vectorised over features."""
    n_f = rows.shape[0]
    feat = torch.arange(n_f).view(-1, 1, 1).expand_as(rows)
    mask = rows > 0
    keys = feat[mask] * vocab_size + row_tokens[mask].long()
    out = torch.full((n_f,), -1, dtype=torch.int64)
    if keys.numel() == 0:
        return out
    uniq, inverse = torch.unique(keys, return_inverse=True)
    totals = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inverse, rows[mask].double())
    u_feat, u_tok = uniq // vocab_size, uniq % vocab_size
    # sort by (feature, -total, token) and keep the first entry of each feature
    order = np.lexsort((u_tok.numpy(), -totals.numpy(), u_feat.numpy()))
    sorted_feat = u_feat.numpy()[order]
    first = np.concatenate([[True], sorted_feat[1:] != sorted_feat[:-1]])
    out[torch.from_numpy(sorted_feat[first])] = torch.from_numpy(u_tok.numpy()[order][first])
    return out


def write_accumulated(store: FeatureStore, acc: Accumulator, window_tokens: torch.Tensor) -> None:
    """Write statistics, histograms, top examples, interval-example candidates and the per-feature top token."""
    state = acc.state_dict()
    store.write_part("statistics", {k: state[k] for k in ("count", "sum", "sumsq", "max", "min", "n_tokens")})
    store.write_part("histograms", histogram_csr(state["hist"]))
    store.write_part("top_examples", {"values": state["top_vals"], "windows": state["top_win"],
                                      "positions": state["top_pos"], "rows": state["top_rows"]})
    if acc.reservoir:
        store.write_part("interval_examples", {"keys": state["res_key"], "windows": state["res_win"],
                                               "positions": state["res_pos"], "values": state["res_max"],
                                               "rows": state["res_rows"]})
    vocab_size = int(window_tokens.max()) + 1 if window_tokens.numel() else 1
    top_token = torch.cat([
        top_token_per_feature(state["top_rows"][lo:lo + 4096],
                              window_tokens[state["top_win"][lo:lo + 4096].clamp(min=0)], vocab_size)
        for lo in range(0, acc.d_sae, 4096)])
    store.write_part("summary", {"top_token": top_token})


def write_vocab(store: FeatureStore, tokenizer: PreTrainedTokenizerBase) -> None:
    """Store the display strings of the tokenizer's vocabulary."""
    store.write_vocab(vocab_strings(tokenizer))


def write_logit_lens(store: FeatureStore, loaded: LoadedModel, sae: SAE, chunk: int = 1024) -> None:
    """Compute and store the logit lens of every feature in the basis the SAE's hook calls for
    (`extraction.logit_lens.lens_basis`: W_dec @ W_U, W_dec @ W_O @ W_U for attn.hook_z, W_dec @ W_out @ W_U
    for the MLP's hidden neurons), with the final norm's gain folded into W_U; where no logit
    lens is defined (hook_q/k/v, a decoder not in the residual stream) an empty part is stored and the manifest's
    `logit_lens` says why. An SAE not yet folded (`expected_average_only_in`, as `ensure_parts` may get it) uses
    the decoder the extraction folded with the manifest's factor."""
    settings = store.manifest.get("settings", {})
    basis = lens_basis(sae, loaded)
    if basis.basis is None:
        result = empty_logit_lens(sae.cfg.d_sae)
    else:
        W_U = lens_unembedding(loaded, sae, "folded")
        W_dec = decoder_as_extracted(sae, store.manifest).to(W_U.device)
        result = compute_logit_lens(W_dec, W_U, k=int(settings.get("logit_k", 50)),
                                    n_bins=int(settings.get("logit_bins", 50)), chunk=chunk,
                                    projection=lens_projection(loaded, basis))
    store.manifest["logit_lens"] = {**basis.describe(), "convention": "folded"}
    store.write_part("logit_lens", result)


def ensure_parts(store: FeatureStore, loaded_model: LoadedModel | None = None,
                 sae: SAE | None = None) -> list[str]:
    """Compute the derivable parts the store lacks (the logit lens needs the model and the SAE); return their
    names.

    Raises:
        InvalidInputError: the logit lens is missing and the model or the SAE was not given.
    """
    if store.has("logit_lens"):
        return []
    if loaded_model is None or sae is None:
        raise InvalidInputError("computing the logit lens needs the model and the SAE")
    write_logit_lens(store, loaded_model, sae)
    return ["logit_lens"]

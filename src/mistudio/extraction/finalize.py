"""Turn a finished accumulator into the feature store's parts (statistics, histograms, top examples,
interval-example candidates, summary, vocabulary strings, logit lens)."""

from __future__ import annotations

import torch

from mistudio.dashboards.logit_lens import compute_logit_lens
from mistudio.dashboards.tokens import vocab_strings
from mistudio.dashboards.top_tokens import top_token_per_feature
from mistudio.extraction.accumulator import Accumulator
from mistudio.extraction.store import FeatureStore


def histogram_csr(hist: torch.Tensor) -> dict[str, torch.Tensor]:
    """Dense fine counts `[d_sae, bins]` → CSR (`indptr`, `bins` int16, `counts` int32)."""
    hist = hist.cpu()
    rows, bins = hist.nonzero(as_tuple=True)
    indptr = torch.zeros(hist.shape[0] + 1, dtype=torch.int64)
    indptr[1:] = torch.bincount(rows, minlength=hist.shape[0]).cumsum(0)
    return {"indptr": indptr, "bins": bins.to(torch.int16), "counts": hist[rows, bins].to(torch.int32)}


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


def write_vocab(store: FeatureStore, tokenizer) -> None:  # noqa: ANN001 - any HF tokenizer
    """Store the display strings of the tokenizer's vocabulary."""
    store.write_vocab(vocab_strings(tokenizer))


def write_logit_lens(store: FeatureStore, loaded, sae, chunk: int = 1024) -> None:  # noqa: ANN001
    """Compute and store the logit lens of every feature (W_dec @ folded W_U)."""
    from mistudio.lm.unembed import logit_lens_matrix

    settings = store.manifest.get("settings", {})
    W_U = logit_lens_matrix(loaded)
    result = compute_logit_lens(sae.W_dec.detach().to(W_U.device), W_U, k=int(settings.get("logit_k", 50)),
                                n_bins=int(settings.get("logit_bins", 50)), chunk=chunk)
    store.write_part("logit_lens", result)

"""The related-feature computations of a Neuronpedia export, timed at real SAE widths on random weights:

* decoder cosine top-10 (`extraction.related_weights.decoder_cosine_topk`, chunked rows × column blocks), against
  Neuronpedia's own way (one `torch.mv` + `topk` per feature, as `util/sae-topk-by-decoder-cossim` answers a
  request);
* the rolling correlation sums of the Neuronpedia pass (the sums `extraction.neuronpedia_pass.NeuronpediaState.update`
  adds per batch: folded feature acts × the SAE inputs `[d_sae, d_in]`, Σx, Σx², and the products within each
  128-feature batch, in feature chunks, float64 accumulation), against SAEDashboard's own `RollingCorrCoef`
  (`sae_dashboard.utils_fns`) updated as its feature-data generator updates it: per 128-feature batch, one
  `corrcoef_neurons` (features × d_in) and one `corrcoef_encoder` (`with_self=True`).

Wide SAEs take long on a CPU, so `--cos-rows` / `--corr-features` time a prefix of the query rows / features and
scale linearly to the whole SAE (the report says `extrapolated`): both computations are linear in the rows or
features done, everything else fixed.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_related.py [--d-sae 16384 262144] [--d-in 2304]
        [--tokens 2048] [--device cpu|cuda] [--cos-rows N] [--corr-features N] [--json]
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Callable
from typing import Any

import torch

from mistudio.extraction.related_weights import decoder_cosine_topk

FEATURE_BATCH = 128  # NeuronpediaRunnerConfig.n_features_at_a_time
FEATURE_CHUNK = 4096  # ExtractionSettings.feature_chunk


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    started = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - started


def _decoder(d_sae: int, d_in: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator(device=device).manual_seed(0)
    return torch.randn(d_sae, d_in, generator=g, device=device)


def bench_cosine(W: torch.Tensor, rows: int) -> dict[str, Any]:
    """Ours for the first `rows` rows against the whole decoder, and the per-request loop for a few rows."""
    d_sae = W.shape[0]
    rows = min(rows, d_sae)
    ours = _timed(lambda: decoder_cosine_topk(W, rows=slice(0, rows)), W.device)
    n_requests = min(rows, 64)
    norms = torch.linalg.vector_norm(W, dim=1, dtype=torch.float32)

    def per_request() -> None:
        for i in range(n_requests):
            cos = torch.mv(W, W[i]).float() / (norms * norms[i]).clamp_min(1e-8)
            torch.topk(torch.nan_to_num(cos, nan=float("-inf")), 10)

    theirs = _timed(per_request, W.device)
    ours_all = ours * d_sae / rows
    theirs_all = theirs * d_sae / n_requests
    return {"rows_timed": rows, "seconds": round(ours_all, 2), "measured_s": round(ours, 2),
            "extrapolated": rows < d_sae, "per_request_loop_s": round(theirs_all, 1),
            "per_request_measured_s": round(theirs, 2), "speedup_vs_per_request": round(theirs_all / ours_all, 1)}


def _our_sums(x: torch.Tensor, y: torch.Tensor) -> None:
    """The correlation sums of one token batch for features `x [N, F]` (F a multiple of 128 here)."""
    n, n_f = x.shape
    wide = torch.float64
    x_sum = x.to(wide).sum(0)
    x2_sum = (x.to(wide) ** 2).sum(0)
    xy = (x.T @ y).to(wide)
    k = n_f // FEATURE_BATCH
    z = x[:, :k * FEATURE_BATCH].reshape(n, k, FEATURE_BATCH)
    ff = torch.einsum("nks,nkt->kst", z, z).to(wide)
    del x_sum, x2_sum, xy, ff


def _their_sums(x: torch.Tensor, y: torch.Tensor) -> None:
    from sae_dashboard.utils_fns import RollingCorrCoef  # type: ignore[import-untyped]

    y_t = y.T
    for lo in range(0, x.shape[1], FEATURE_BATCH):
        feats = x[:, lo:lo + FEATURE_BATCH].T
        neurons = RollingCorrCoef(device=x.device)
        encoder = RollingCorrCoef(indices=list(range(lo, lo + feats.shape[0])), with_self=True, device=x.device)
        neurons.update(feats, y_t)
        encoder.update(feats, feats)


def bench_correlations(d_sae: int, d_in: int, tokens: int, features: int, device: torch.device) -> dict[str, Any]:
    """One token batch of `tokens` positions through both, over the first `features` features."""
    features = min(features, d_sae)
    g = torch.Generator(device=device).manual_seed(1)
    y = torch.randn(tokens, d_in, generator=g, device=device)
    ours = theirs = 0.0
    for lo in range(0, features, FEATURE_CHUNK):
        width = min(FEATURE_CHUNK, features - lo)
        x = torch.randn(tokens, width, generator=g, device=device).relu_()
        ours += _timed(functools.partial(_our_sums, x, y), device)
        theirs += _timed(functools.partial(_their_sums, x, y), device)
    scale = d_sae / features
    return {"tokens": tokens, "features_timed": features, "extrapolated": features < d_sae,
            "seconds_per_token_batch": round(ours * scale, 3), "saedashboard_seconds_per_token_batch":
            round(theirs * scale, 3), "ratio_saedashboard_over_ours": round(theirs / ours, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-sae", type=int, nargs="+", default=[16384, 262144])
    parser.add_argument("--d-in", type=int, default=2304)
    parser.add_argument("--tokens", type=int, default=2048, help="positions per token batch (correlations)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cos-rows", type=int, default=0, help="query rows to time (0: all)")
    parser.add_argument("--corr-features", type=int, default=0, help="features to time (0: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    report: dict[str, Any] = {"device": str(device), "d_in": args.d_in, "torch_threads": torch.get_num_threads(),
                              "sizes": {}}
    for d_sae in args.d_sae:
        W = _decoder(d_sae, args.d_in, device)
        entry: dict[str, Any] = {"cosine_top10": bench_cosine(W, args.cos_rows or d_sae),
                 "correlation_sums": bench_correlations(d_sae, args.d_in, args.tokens,
                                                        args.corr_features or d_sae, device)}
        if device.type == "cuda":
            entry["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        report["sizes"][str(d_sae)] = entry
        del W
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"device {report['device']}, d_in {args.d_in}, {report['torch_threads']} threads")
    for d_sae, entry in report["sizes"].items():
        cos, corr = entry["cosine_top10"], entry["correlation_sums"]
        note = " (extrapolated)" if cos["extrapolated"] else ""
        print(f"d_sae {int(d_sae):,}: cosine top-10 {cos['seconds']} s{note} "
              f"[{cos['speedup_vs_per_request']}x faster than one request per feature, "
              f"{cos['per_request_loop_s']} s]")
        note = " (extrapolated)" if corr["extrapolated"] else ""
        print(f"  correlation sums, one batch of {corr['tokens']} positions: {corr['seconds_per_token_batch']} s"
              f"{note}; SAEDashboard RollingCorrCoef {corr['saedashboard_seconds_per_token_batch']} s "
              f"(ratio {corr['ratio_saedashboard_over_ours']})")


if __name__ == "__main__":
    main()

"""Benchmark: package 16,384 features × 20 examples × 128 tokens of computed dashboard data into a
Neuronpedia export archive; prints seconds and archive size (issue 4: < 60 s, < 250 MB on 2 cores).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_export.py [--features 16384] [--out /tmp/bench.zip]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mistudio.export.builder import ExportInputs, SAEInfo, build_export
from mistudio.export.config import make_config

CTX, N_EXAMPLES, VOCAB = 128, 20, 50257


class SyntheticStore:
    """A DashboardSource whose dashboards are made on demand, like a feature store reading its arrays."""

    def __init__(self, n_features: int) -> None:
        rng = np.random.default_rng(0)
        self._vocab = [f" tok{i}" for i in range(VOCAB)]
        self._freq = rng.uniform(1e-5, 0.05, n_features)
        self.n = n_features

    @property
    def n_features(self) -> int:
        return self.n

    @property
    def manifest(self) -> dict[str, Any]:
        return {"dataset": "monology/pile-uncopyrighted", "n_windows": 24576, "context_size": CTX,
                "n_tokens": 24576 * CTX, "created_at": "2026-01-01T00:00:00+00:00"}

    def summary_arrays(self) -> dict[str, np.ndarray]:
        return {"frequency": self._freq, "max": np.full(self.n, 5.0), "mean": np.ones(self.n),
                "dead": np.zeros(self.n, dtype=bool)}

    def feature_dashboard(self, index: int, **_: Any) -> dict[str, Any]:
        rng = np.random.default_rng(index)
        ids = rng.integers(0, VOCAB, (N_EXAMPLES, CTX))
        vals = np.where(rng.random((N_EXAMPLES, CTX)) < 0.05, rng.gamma(2.0, 1.0, (N_EXAMPLES, CTX)), 0.0)
        vals[:, 64] += 1.0
        edges = np.linspace(0, float(vals.max()), 51)
        examples = [{"tokens": [self._vocab[t] for t in ids[e]], "token_ids": ids[e].tolist(),
                     "values": vals[e].tolist(), "max_value": float(vals[e].max()),
                     "max_token_index": int(vals[e].argmax()), "qualifying_token_index": int(vals[e].argmax()),
                     "bin_min": -1, "bin_max": -1, "bin_contains": -1,
                     "source": {"dataset": "pile", "document": int(e), "offset": 0, "window_index": int(e)}}
                    for e in range(N_EXAMPLES)]
        top = [{"token": self._vocab[t], "token_id": int(t), "value": float(v), "rank": r}
               for r, (t, v) in enumerate(zip(rng.integers(0, VOCAB, 20), np.sort(rng.random(20))[::-1] + 1, strict=False))]
        bottom = [{"token": self._vocab[t], "token_id": int(t), "value": -float(v), "rank": r}
                  for r, (t, v) in enumerate(zip(rng.integers(0, VOCAB, 20), np.sort(rng.random(20))[::-1] + 1, strict=False))]
        return {"feature_index": index,
                "statistics": {"activation_frequency": float(self._freq[index]), "n_active": 100, "n_tokens": 10**6,
                               "max_activation": float(vals.max()), "min_activation": 0.01, "mean_activation": 1.0,
                               "std_activation": 0.5, "l0_contribution": float(self._freq[index]), "dead": False,
                               "quantiles": {"p25": 0.5, "p50": 1.0, "p75": 1.5, "p95": 2.5, "p99": 3.5},
                               "quantile_error_bound": 0.01},
                "activations": examples,
                "histogram": {"bin_edges": edges.tolist(), "counts": rng.integers(0, 1000, 50).tolist(),
                              "total_count": 10**6, "nonzero_count": 5000, "log_scale": False},
                "logits": {"top_positive": top, "top_negative": bottom,
                           "histogram": {"bin_edges": np.linspace(-1, 1, 51).tolist(),
                                         "counts": rng.integers(0, 2000, 50).tolist()}},
                "top_tokens": [{"token": self._vocab[t], "token_id": int(t), "total_activation": 10.0, "count": 5,
                                "mean_activation": 2.0, "max_activation": 3.0} for t in rng.integers(0, VOCAB, 20)]}

    def iter_dashboards(self, indices: Iterable[int], **options: Any) -> Iterator[dict[str, Any]]:
        for i in indices:
            yield self.feature_dashboard(i, **options)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--features", type=int, default=16384)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    store = SyntheticStore(args.features)
    info = SAEInfo(sae_id="bench", model_name="gpt2-small", hook_name="blocks.8.hook_resid_post", layer=8,
                   d_in=768, d_sae=args.features, architecture="standard")
    cfg = make_config("neuronpedia", model_id="gpt2-small")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "bench.zip"
        t0 = time.perf_counter()
        result = build_export(ExportInputs(source=store, info=info), cfg, out, Path(tmp) / "work")
        seconds = time.perf_counter() - t0
        size = out.stat().st_size
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"features": args.features, "examples": N_EXAMPLES, "tokens": CTX, "seconds": round(seconds, 1),
                      "archive_mb": round(size / 1e6, 1), "peak_rss_mb": round(peak_mb), "stages": result["timings"]},
                     indent=2))


if __name__ == "__main__":
    main()

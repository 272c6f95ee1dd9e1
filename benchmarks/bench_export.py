"""Benchmark: package 16,384 features × 20 examples × 128 tokens of computed dashboard data into a full
export archive (features/, Neuronpedia batches, bulk-import rows); prints seconds, archive size, peak RSS and the
ratios to issue 4's targets (< 60 s, < 250 MB on 2 cores).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_export.py [--features 16384] [--data realistic|random]
        [--workers N] [--out /tmp/bench.zip]

`realistic` (default): example windows are real text from the shipped corpus (src/mistudio/data/corpus/),
tokenised with a byte-level BPE tokenizer trained on it (mistudio.testing.tiny_models.build_tokenizer), and token
activations are sparse (5–15 % of a window's tokens non-zero, float32 like the feature store, the window's peak
≥ every other token). `random`: the previous benchmark's worst case, unchanged — token ids uniform over a
50,257-entry vocabulary (`" tok123"` strings, so nothing compresses across tokens) and float64 values.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mistudio.datasets.sources import builtin_corpus_dir
from mistudio.export.config import make_config
from mistudio.export.pipeline import ExportInputs, SAEInfo, build_export
from mistudio.testing.tiny_models import build_tokenizer

CTX, N_EXAMPLES, RANDOM_VOCAB, POOL = 128, 20, 50257, 24576  # POOL: prompt windows, SAEDashboard's default
TARGET_SECONDS, TARGET_MB = 60.0, 250.0


def corpus_windows(n_windows: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """`n_windows` windows of `CTX` token ids of corpus text (lines shuffled into varied documents) and the
    decoded string of every token id."""
    lines = [ln.strip() for p in sorted(builtin_corpus_dir().glob("*.txt")) for ln in p.read_text().splitlines()
             if ln.strip()]
    tok = build_tokenizer(corpus_texts=lines, vocab_size=4096)
    encoded = [tok.encode(" " + ln) for ln in lines]
    rng = random.Random(seed)
    windows = np.zeros((n_windows, CTX), dtype=np.int64)
    for w in range(n_windows):
        ids: list[int] = []
        line = rng.randrange(len(encoded))
        while len(ids) < CTX:  # a run of consecutive lines from a random place, like a document window
            ids += encoded[line % len(encoded)]
            line += 1 if rng.random() < 0.8 else rng.randrange(len(encoded))
        windows[w] = ids[:CTX]
    return windows, [tok.decode([i]) for i in range(len(tok))]


class SyntheticStore:
    """A DashboardSource whose dashboards are made on demand, like a feature store reading its arrays."""

    def __init__(self, n_features: int, data: str) -> None:
        rng = np.random.default_rng(0)
        self.data, self.n = data, n_features
        if data == "random":
            self._vocab = [f" tok{i}" for i in range(RANDOM_VOCAB)]
            self._windows = None
        else:
            self._windows, self._vocab = corpus_windows(POOL)
            self._window_tokens = [[self._vocab[t] for t in row] for row in self._windows.tolist()]
        self._freq = rng.uniform(1e-5, 0.05, n_features)

    @property
    def n_features(self) -> int:
        return self.n

    @property
    def manifest(self) -> dict[str, Any]:
        return {"dataset": "builtin:corpus", "n_windows": 24576, "context_size": CTX,
                "n_tokens": 24576 * CTX, "created_at": "2026-01-01T00:00:00+00:00"}

    def summary_arrays(self) -> dict[str, np.ndarray]:
        return {"frequency": self._freq, "max": np.full(self.n, 5.0), "mean": np.ones(self.n),
                "dead": np.zeros(self.n, dtype=bool)}

    def _examples(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._windows is None:  # the previous benchmark's data, unchanged
            ids = rng.integers(0, RANDOM_VOCAB, (N_EXAMPLES, CTX))
            vals = np.where(rng.random((N_EXAMPLES, CTX)) < 0.05, rng.gamma(2.0, 1.0, (N_EXAMPLES, CTX)), 0.0)
            vals[:, 64] += 1.0
            return ids, vals, list(range(N_EXAMPLES))
        rows = rng.choice(POOL, N_EXAMPLES, replace=False)
        density = rng.uniform(0.05, 0.15)
        mask = rng.random((N_EXAMPLES, CTX)) < density
        vals = np.where(mask, rng.gamma(1.5, 0.8, (N_EXAMPLES, CTX)), 0.0).astype(np.float32)
        peak = rng.integers(0, CTX, N_EXAMPLES)
        top = np.sort(rng.uniform(4.0, 9.0, N_EXAMPLES))[::-1].astype(np.float32)  # top examples first
        vals = np.minimum(vals, top[:, None] * 0.9)
        vals[np.arange(N_EXAMPLES), peak] = top
        return self._windows[rows], vals, rows.tolist()

    def _tokens(self, row: int, ids: list[int]) -> list[str]:
        return self._window_tokens[row] if self._windows is not None else [self._vocab[t] for t in ids]

    def feature_dashboard(self, index: int, **_: Any) -> dict[str, Any]:
        rng = np.random.default_rng(index)
        ids, vals, rows = self._examples(rng)
        vocab, n_vocab = self._vocab, len(self._vocab)
        feature_max = float(vals.max())
        id_lists, val_lists, peaks = ids.tolist(), vals.tolist(), vals.argmax(axis=1).tolist()
        examples = [{"tokens": self._tokens(rows[e], id_lists[e]), "token_ids": id_lists[e],
                     "values": val_lists[e], "max_value": val_lists[e][peaks[e]],
                     "max_token_index": peaks[e], "qualifying_token_index": peaks[e],
                     "bin_min": -1, "bin_max": -1, "bin_contains": -1,
                     "source": {"dataset": "builtin:corpus", "document": rows[e], "offset": 0,
                                "window_index": rows[e]}}
                    for e in range(N_EXAMPLES)]

        def logits(sign: float) -> list[dict[str, Any]]:
            values = (np.sort(rng.random(20))[::-1] + 1).tolist()
            return [{"token": vocab[t], "token_id": t, "value": sign * v, "rank": r}
                    for r, (t, v) in enumerate(zip(rng.integers(0, n_vocab, 20).tolist(), values, strict=True))]

        return {"feature_index": index,
                "statistics": {"activation_frequency": float(self._freq[index]), "n_active": 100, "n_tokens": 10**6,
                               "max_activation": feature_max, "min_activation": 0.01, "mean_activation": 1.0,
                               "std_activation": 0.5, "l0_contribution": float(self._freq[index]), "dead": False,
                               "quantiles": {"p25": 0.5, "p50": 1.0, "p75": 1.5, "p95": 2.5, "p99": 3.5},
                               "quantile_error_bound": 0.01},
                "activations": examples,
                "histogram": {"bin_edges": np.linspace(0, feature_max, 51).tolist(),
                              "counts": rng.integers(0, 1000, 50).tolist(),
                              "total_count": 10**6, "nonzero_count": 5000, "log_scale": False},
                "logits": {"top_positive": logits(1.0), "top_negative": logits(-1.0),
                           "histogram": {"bin_edges": np.linspace(-1, 1, 51).tolist(),
                                         "counts": rng.integers(0, 2000, 50).tolist()}},
                "top_tokens": [{"token": vocab[t], "token_id": int(t), "total_activation": 10.0, "count": 5,
                                "mean_activation": 2.0, "max_activation": 3.0} for t in rng.integers(0, n_vocab, 20).tolist()]}

    def iter_dashboards(self, indices: Iterable[int], **options: Any) -> Iterator[dict[str, Any]]:
        for i in indices:
            yield self.feature_dashboard(i, **options)

    def has_neuronpedia_data(self) -> bool:
        return True

    def neuronpedia_feature(self, index: int, *, logit_lens: str = "neuronpedia") -> dict[str, Any]:
        """The feature as the Neuronpedia pass gives it: the 20 top examples without position 0, then 5 quantile
        bands × 5 examples from other windows, 3-decimal values; 50-bin histograms; related-feature lists."""
        dash = self.feature_dashboard(index)
        rng = np.random.default_rng(index + 1_000_003)
        top = round(float(dash["statistics"]["max_activation"]), 3)
        acts = [{"bin_min": -1, "bin_max": top, "bin_contains": -1, "tokens": ex["tokens"][1:],
                 "values": np.round(np.asarray(ex["values"][1:]), 3).tolist(),
                 "qualifying_token_index": ex["qualifying_token_index"] - 1, "token_ids": ex["token_ids"][1:],
                 "window_index": ex["source"]["window_index"]} for ex in dash["activations"]]
        edges = np.linspace(0, top, 6)
        for band in range(4, -1, -1):
            ids, vals, rows = self._examples(rng)
            scale = edges[band + 1] / max(float(vals.max()), 1e-6)
            for e in range(5):
                values = np.round(vals[e] * scale, 3).tolist()
                acts.append({"bin_min": round(float(edges[band]), 3), "bin_max": round(float(edges[band + 1]), 3),
                             "bin_contains": round(float(rng.uniform(0, 0.01)), 5),
                             "tokens": self._tokens(rows[e], ids[e].tolist())[1:], "values": values[1:],
                             "qualifying_token_index": int(np.argmax(values)) - 1, "token_ids": ids[e].tolist()[1:],
                             "window_index": rows[e]})
        pos, neg = dash["logits"]["top_positive"][:10], dash["logits"]["top_negative"][:10]
        three = sorted(rng.integers(0, 768, 3).tolist())
        return {"feature_index": index, "neuron_alignment_indices": three,
                "neuron_alignment_values": np.round(rng.random(3), 3).tolist(),
                "neuron_alignment_l1": np.round(rng.random(3) / 10, 3).tolist(),
                "correlated_neurons_indices": three, "correlated_neurons_l1": np.round(rng.random(3), 3).tolist(),
                "correlated_neurons_pearson": np.round(rng.random(3), 3).tolist(),
                "correlated_features_indices": three, "correlated_features_l1": np.round(rng.random(3), 3).tolist(),
                "correlated_features_pearson": np.round(rng.random(3), 3).tolist(),
                "neg_str": [t["token"] for t in neg], "neg_values": [round(t["value"], 3) for t in neg],
                "pos_str": [t["token"] for t in pos], "pos_values": [round(t["value"], 3) for t in pos],
                "frac_nonzero": float(self._freq[index]),
                "freq_hist_data_bar_values": np.round(np.linspace(0.05, top, 50), 3).tolist(),
                "freq_hist_data_bar_heights": rng.integers(0, 1000, 50).tolist(),
                "logits_hist_data_bar_heights": rng.integers(0, 2000, 50).tolist(),
                "logits_hist_data_bar_values": np.round(np.linspace(-1, 1, 50), 3).tolist(),
                "n_prompts_total": POOL, "n_tokens_in_prompt": CTX, "dataset": "builtin:corpus",
                "decoder_weights_dist": [], "activations": acts, "vector": [],
                "topk_cos_sim_indices": [index, *sorted(rng.integers(0, self.n, 9).tolist())],
                "topk_cos_sim_values": [1.0, *np.round(np.sort(rng.random(9))[::-1], 3).tolist()]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--features", type=int, default=16384)
    parser.add_argument("--data", choices=("realistic", "random"), default="realistic")
    parser.add_argument("--workers", type=int, default=None, help="packaging processes (default: all cores)")
    parser.add_argument("--saedashboard-batches", action="store_true",
                        help="also write SAEDashboard's batch-{k}.json (all three copies of the examples)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    store = SyntheticStore(args.features, args.data)
    info = SAEInfo(sae_id="bench", model_name="gpt2-small", hook_name="blocks.8.hook_resid_post", layer=8,
                   d_in=768, d_sae=args.features, architecture="standard")
    cfg = make_config("neuronpedia", model_id="gpt2-small", workers=args.workers,
                      saedashboard_batches=args.saedashboard_batches)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "bench.zip"
        t0 = time.perf_counter()
        result = build_export(ExportInputs(source=store, info=info, neuronpedia=store), cfg, out, Path(tmp) / "work")
        seconds = time.perf_counter() - t0
        size = out.stat().st_size
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime + u.ru_stime for u in usage)
    peak_mb = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    scale = 16384 / args.features
    print(json.dumps({"data": args.data, "saedashboard_batches": args.saedashboard_batches, "features": args.features, "examples": N_EXAMPLES, "tokens": CTX,
                      "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "workers": result["workers"],
                      "archive_mb": round(size / 1e6, 1),
                      "peak_rss_mb": round(peak_mb / 1024),
                      "seconds_vs_target_at_16384": round(seconds * scale / TARGET_SECONDS, 2),
                      "mb_vs_target_at_16384": round(size / 1e6 * scale / TARGET_MB, 2),
                      "seconds_per_feature": round(seconds / args.features, 5),
                      "bytes_per_feature": round(size / args.features), "stages": result["timings"]}, indent=2))


if __name__ == "__main__":
    main()

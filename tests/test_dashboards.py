"""Dashboard building blocks: token strings, logit-lens ranking and ties, top-token aggregation, histograms and
quantiles read from the fine grid."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mistudio.dashboards.top_tokens import aggregate_tokens
from mistudio.extraction.finalize import top_token_per_feature
from mistudio.extraction.logit_lens import compute_logit_lens
from mistudio.lm.tokens import special_token_ids, vocab_strings
from mistudio.store.fine_grid import (
    FINE_BINS,
    QUANTILE_REL_ERROR,
    fine_bin_index,
    fine_edges,
    linear_histogram,
    log_histogram,
    quantiles,
)
from mistudio.testing.tiny_models import build_tokenizer


def test_byte_level_token_strings():
    tok = build_tokenizer(corpus_texts=["héllo wörld — naïve café\nnew line " * 20], vocab_size=300)
    strings = vocab_strings(tok)
    assert len(strings) == len(tok)
    assert strings[tok.bos_token_id] == "<|endoftext|>" and tok.bos_token_id in special_token_ids(tok)
    for text in (" world", "\n", "é", " café"):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert "".join(strings[i] for i in ids) == text
    ids = tok("—", add_special_tokens=False)["input_ids"]  # a 3-byte character: pieces may split it
    rendered = [strings[i] for i in ids]
    assert all(s.encode("utf-8") for s in rendered)
    if len(ids) > 1:
        assert "\ufffd" in "".join(rendered)
    assert not any(s.startswith("Ġ") for s in strings if s not in ("<|endoftext|>", "<pad>"))


def test_sentencepiece_style_strings():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "▁the": 3, "cat": 4, "<0x0A>": 5, "<0xE2>": 6}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                  bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    strings = vocab_strings(tok)
    assert strings[:7] == ["<unk>", "<s>", "</s>", " the", "cat", "\n", "\ufffd"]


def test_logit_lens_top_k_and_ties():
    W_U = torch.zeros(4, 10)
    W_U[0] = torch.tensor([1, 5, 5, 2, 5, -3, -3, 0, 1, 4], dtype=torch.float32)
    W_dec = torch.tensor([[1.0, 0, 0, 0], [-2.0, 0, 0, 0]])
    out = compute_logit_lens(W_dec, W_U, k=4, n_bins=5, chunk=1)
    assert out["pos_ids"][0].tolist() == [1, 2, 4, 9]  # three tied 5s in ascending id order
    assert out["pos_vals"][0].tolist() == [5, 5, 5, 4]
    assert out["neg_ids"][0].tolist() == [5, 6, 7, 0]
    assert out["neg_vals"][0].tolist() == [-3, -3, 0, 1]
    assert out["pos_ids"][1].tolist() == [5, 6, 7, 0]
    assert out["hist_counts"].sum(1).tolist() == [10, 10]
    assert out["hist_min"][0] == -3 and out["hist_max"][0] == 5


def test_top_tokens_rankings():
    ids = np.array([[5, 6, 5, 7], [6, 6, 9, 5]])
    vals = np.array([[1.0, 0.5, 2.0, 0.0], [0.5, 0.5, 4.0, 0.0]])
    strings = [f"t{i}" for i in range(10)]
    by_sum = aggregate_tokens(ids, vals, strings)
    assert [(r["token_id"], r["total_activation"], r["count"]) for r in by_sum] == [(9, 4.0, 1), (5, 3.0, 2),
                                                                                   (6, 1.5, 3)]
    assert [r["token_id"] for r in aggregate_tokens(ids, vals, strings, rank_by="count")] == [6, 5, 9]
    assert [r["token_id"] for r in aggregate_tokens(ids, vals, strings, rank_by="mean")] == [9, 5, 6]
    assert by_sum[1]["max_activation"] == 2.0 and by_sum[1]["mean_activation"] == 1.5
    rows = torch.from_numpy(np.stack([vals, np.zeros_like(vals)])).float()
    toks = torch.from_numpy(np.stack([ids, ids]))
    assert top_token_per_feature(rows, toks, 10).tolist() == [9, -1]


def test_fine_grid_histograms_and_quantiles():
    rng = np.random.default_rng(0)
    values = np.exp(rng.normal(0, 2, 20000))
    bins = fine_bin_index(torch.from_numpy(values), torch.from_numpy(fine_edges()[1:-1])).numpy()
    counts = np.bincount(bins, minlength=FINE_BINS)
    vmin, vmax = float(values.min()), float(values.max())
    spanned = int(bins.max() - bins.min()) + 1
    for n in (20, 46, 50, 100):
        edges, hist = log_histogram(counts, vmin, vmax, n)
        assert len(hist) == min(n, spanned) == n and sum(hist) == values.size  # n bins, as asked
        assert edges[0] == vmin and edges[-1] == vmax  # outer edges: the exact min and max
        inner = np.asarray(edges[1:-1])
        assert np.allclose(inner, fine_edges()[np.searchsorted(fine_edges(), inner * (1 - 1e-12))], rtol=1e-12)
        widths = np.diff(np.searchsorted(fine_edges(), np.asarray(edges) * (1 - 1e-12)))[1:-1]
        assert widths.max() - widths.min() <= 1  # runs of fine bins as equal as whole bins allow
        assert hist == np.histogram(values, bins=np.asarray(edges))[0].tolist()
        edges, hist = linear_histogram(counts, vmin, vmax, n)
        assert len(hist) == n and hist == np.histogram(values, bins=np.asarray(edges))[0].tolist()
    narrow = np.zeros(FINE_BINS, dtype=np.int64)
    narrow[1000:1003] = [2, 0, 5]  # spans 3 fine bins: at most 3 bins whatever is asked
    assert len(log_histogram(narrow, 1.0, 1.03, 50)[1]) == 3
    ranked = np.sort(values)
    for name, q in quantiles(counts, vmin, vmax).items():
        p = int(name[1:]) / 100
        exact = ranked[math.ceil(p * values.size) - 1]
        assert abs(q / exact - 1) <= QUANTILE_REL_ERROR + 1e-12
    assert quantiles(np.zeros(FINE_BINS, dtype=np.int64), 0.0, 0.0)["p50"] == 0.0
    assert log_histogram(np.zeros(FINE_BINS, dtype=np.int64), 0.0, 0.0, 20) == ([], [])


@pytest.mark.parametrize("value", [1e-9, 2e7])
def test_out_of_grid_values_are_clamped(value):
    counts = np.zeros(FINE_BINS, dtype=np.int64)
    b = int(fine_bin_index(torch.tensor([value], dtype=torch.float64),
                           torch.from_numpy(fine_edges()[1:-1]))[0])
    counts[b] = 3
    edges, hist = log_histogram(counts, value, value, 20)
    assert hist == [3] and edges[0] <= value <= edges[-1]
    assert quantiles(counts, value, value)["p50"] == value

"""The engine against an independent brute-force computation: every activation materialised with plain torch
(HF hidden states, the SAE formula written out, numpy statistics), no engine internals imported."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mistudio.dashboards.reader import feature_dashboard
from mistudio.datasets.sources import load_texts
from mistudio.datasets.windows import tokenize_windows
from mistudio.extraction.engine import ExtractionSettings, run_extraction
from mistudio.lm.loading import load_model
from mistudio.saes.model import SAE, SAEConfig
from mistudio.testing.tiny_models import build_tiny_model, default_corpus

D_SAE, CHUNK, TOP_K, CTX, DEAD = 70, 32, 6, 12, 7


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("oracle")
    loaded = load_model(str(build_tiny_model("gpt2", root / "model")), device="cpu", dtype="float32")
    (root / "corpus.txt").write_text("\n\n".join(default_corpus(240, seed=3)))
    sae = SAE(SAEConfig(d_in=64, d_sae=D_SAE, hook_name="blocks.0.hook_resid_post"))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(64, D_SAE, generator=g) * 0.1)
        sae.W_dec.copy_(torch.randn(D_SAE, 64, generator=g))
        sae.b_dec.copy_(torch.randn(64, generator=g) * 0.1)
        sae.b_enc.copy_(torch.randn(D_SAE, generator=g) * 0.3 - 0.3)
        sae.b_enc[DEAD] = -1e9
    windows = tokenize_windows(load_texts(root / "corpus.txt"), loaded.tokenizer, context_size=CTX,
                               n_windows=150, prepend_bos=True, seed=5)
    store = run_extraction(loaded, sae, windows, root / "store",
                           settings=ExtractionSettings(top_k=TOP_K, batch_size=16, feature_chunk=CHUNK, logit_k=10))
    return loaded, sae, windows, store


@pytest.fixture(scope="module")
def brute(setup):
    """All activations [n_windows, ctx, d_sae], special positions zeroed; computed without the engine."""
    loaded, sae, windows, _ = setup
    with torch.no_grad():
        hidden = loaded.model(windows.tokens, output_hidden_states=True).hidden_states[1]  # blocks.0 resid_post
        acts = torch.relu((hidden - sae.b_dec) @ sae.W_enc + sae.b_enc)
    specials = {loaded.tokenizer.bos_token_id, loaded.tokenizer.eos_token_id, loaded.tokenizer.pad_token_id}
    valid = ~np.isin(windows.tokens.numpy(), list(specials))
    return acts.numpy() * valid[..., None], valid


def test_statistics_match(setup, brute):
    _, _, _, store = setup
    acts, valid = brute
    n_tokens = int(valid.sum())
    for f in range(D_SAE):
        s = feature_dashboard(store, f)["statistics"]
        col = acts[..., f][valid]
        nz = col[col > 0].astype(np.float64)
        assert s["n_tokens"] == n_tokens
        assert s["n_active"] == nz.size
        assert s["activation_frequency"] == pytest.approx(nz.size / n_tokens, abs=1e-12)
        assert s["dead"] == (nz.size == 0)
        if nz.size:
            assert s["max_activation"] == pytest.approx(nz.max(), rel=1e-5, abs=1e-6)
            assert s["min_activation"] == pytest.approx(nz.min(), rel=1e-5, abs=1e-6)
            assert s["mean_activation"] == pytest.approx(nz.mean(), rel=1e-5, abs=1e-6)
            assert s["std_activation"] == pytest.approx(nz.std(), rel=1e-4, abs=1e-5)
            ranked = np.sort(nz)
            for name, p in {"p25": .25, "p50": .5, "p75": .75, "p95": .95, "p99": .99}.items():
                exact = ranked[max(1, math.ceil(p * nz.size)) - 1]
                assert abs(s["quantiles"][name] / exact - 1) <= s["quantile_error_bound"] + 1e-6


def test_dead_feature(setup):
    _, _, _, store = setup
    dash = feature_dashboard(store, DEAD)
    assert dash["statistics"]["dead"] and dash["statistics"]["n_active"] == 0
    assert dash["activations"] == [] and dash["histogram"]["counts"] == [] and dash["top_tokens"] == []
    assert store.summary_arrays()["dead"][DEAD]


def test_top_examples_match(setup, brute):
    _, _, windows, store = setup
    acts, valid = brute
    checked = 0
    for f in range(D_SAE):
        win_max = acts[..., f].max(axis=1)
        order = np.argsort(-win_max, kind="stable")
        expected = [w for w in order[:TOP_K] if win_max[w] > 0]
        got = [e for e in feature_dashboard(store, f)["activations"] if e["bin_min"] == -1]
        assert len(got) == len(expected)
        if not expected:
            continue
        boundary_tie = len(order) > TOP_K and abs(win_max[order[TOP_K - 1]] - win_max[order[TOP_K]]) < 1e-5
        got_pairs = {(e["source"]["window_index"], e["max_token_index"]) for e in got}
        want_pairs = {(int(w), int(acts[w, :, f].argmax())) for w in expected}
        np.testing.assert_allclose([e["max_value"] for e in got], win_max[expected], rtol=1e-5, atol=1e-6)
        if not boundary_tie:  # a causal model gives equal activations to windows sharing a prefix
            assert got_pairs == want_pairs
            checked += 1
        for e in got:
            w = e["source"]["window_index"]
            np.testing.assert_allclose(e["values"], acts[w, :, f], rtol=1e-5, atol=1e-5)
            assert e["max_value"] == pytest.approx(win_max[w], abs=1e-5)
            assert e["token_ids"] == windows.tokens[w].tolist()
            assert e["source"]["document"] == int(windows.document[w])
            assert valid[w, e["max_token_index"]], "a special token was chosen as the max token"
        assert [e["max_value"] for e in got] == sorted((e["max_value"] for e in got), reverse=True)
    assert checked >= D_SAE // 3


def test_histograms_match(setup, brute):
    _, _, _, store = setup
    acts, valid = brute
    for f in range(D_SAE):
        col = acts[..., f][valid].astype(np.float64)
        nz = col[col > 0]
        for n_bins in (20, 50):
            h = feature_dashboard(store, f, n_bins=n_bins)["histogram"]
            if nz.size == 0:
                assert h["counts"] == []
                continue
            edges = np.asarray(h["bin_edges"])
            # as many bins as asked for (or as fine bins spanned), outer edges the exact min and max
            grid = 10.0 ** np.linspace(-5, 5, 2001)
            spanned = int(np.searchsorted(grid, nz.max(), side="right") - np.searchsorted(grid, nz.min(), side="right")) + 1
            assert len(h["counts"]) == min(n_bins, spanned)
            assert edges[0] == pytest.approx(nz.min(), rel=1e-5, abs=1e-6)
            assert edges[-1] == pytest.approx(nz.max(), rel=1e-5, abs=1e-6)
            if nz.min() == nz.max():
                assert h["counts"] == [nz.size]
                continue
            assert np.all(np.diff(edges) > 0)
            want, _ = np.histogram(nz, bins=edges)
            # a value within float32 rounding of an edge may fall either side; count those
            borderline = sum(int(np.sum(np.abs(nz / e - 1) < 1e-6)) for e in edges)
            assert np.abs(np.asarray(h["counts"]) - want).sum() <= 2 * borderline
            assert h["nonzero_count"] == nz.size and sum(h["counts"]) == nz.size
        fh = feature_dashboard(store, f)["frequency_histogram"]
        if nz.size:
            want, _ = np.histogram(nz, bins=np.asarray(fh["bin_edges"]))
            assert sum(fh["counts"]) == nz.size
            assert np.abs(np.asarray(fh["counts"]) - want).sum() <= 2 * sum(
                int(np.sum(np.abs(nz / e - 1) < 1e-6)) for e in fh["bin_edges"])


def test_logit_lens_matches(setup):
    loaded, sae, _, store = setup
    ln_w = loaded.model.transformer.ln_f.weight.detach()
    W_U = loaded.model.lm_head.weight.detach().T
    folded = ln_w[:, None] * W_U
    folded = folded - folded.mean(0, keepdim=True)  # TransformerLens fold_ln + center of a LayerNorm model
    logits = (sae.W_dec.detach() @ folded).numpy()
    for f in range(D_SAE):
        lg = feature_dashboard(store, f, logit_k=10)["logits"]
        order = np.argsort(-logits[f], kind="stable")
        assert {e["token_id"] for e in lg["top_positive"]} == set(order[:10].tolist())
        assert {e["token_id"] for e in lg["top_negative"]} == set(order[::-1][:10].tolist())
        assert [e["rank"] for e in lg["top_positive"]] == list(range(1, 11))
        for e in lg["top_positive"]:
            assert e["value"] == pytest.approx(logits[f, e["token_id"]], abs=1e-4)
        assert sum(lg["histogram"]["counts"]) == logits.shape[1]


def test_top_tokens_match(setup, brute):
    _, _, windows, store = setup
    acts, _ = brute
    for f in (0, 3, 11):
        dash = feature_dashboard(store, f)
        totals: dict[int, float] = {}
        for e in (e for e in dash["activations"] if e["bin_min"] == -1):  # top tokens: top group only
            w = e["source"]["window_index"]
            for tok, v in zip(windows.tokens[w].tolist(), acts[w, :, f], strict=True):
                if v > 0:
                    totals[tok] = totals.get(tok, 0.0) + float(v)
        want = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        got = [(t["token_id"], t["total_activation"]) for t in dash["top_tokens"][:5]]
        assert [t for t, _ in got] == [t for t, _ in want]
        np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=1e-5)


def test_json_ready(setup):
    import json

    _, _, _, store = setup
    text = json.dumps(feature_dashboard(store, 3), allow_nan=False)
    assert "NaN" not in text


def _intervals(dash):
    return [e for e in dash["activations"] if e["bin_min"] != -1]


def test_interval_examples_match(setup, brute):
    _, _, windows, store = setup
    acts, valid = brute
    settings = ExtractionSettings()
    per, n_int, reservoir = settings.interval_examples, settings.n_intervals, settings.reservoir_size()
    exact_counts = 0
    for f in range(D_SAE):
        col = acts[..., f]
        win_max = col.max(axis=1).astype(np.float64)
        nz = col[col > 0].astype(np.float64)
        got = _intervals(feature_dashboard(store, f))
        if nz.size == 0:
            assert got == []
            continue
        vmax = feature_dashboard(store, f)["statistics"]["max_activation"]
        bounds = sorted({(e["bin_min"], e["bin_max"]) for e in got}, reverse=True)
        assert [(e["bin_min"], e["bin_max"]) for e in got] == sorted(
            ((e["bin_min"], e["bin_max"]) for e in got), reverse=True), "highest interval first"
        for lo, hi in bounds:
            assert 0.0 <= lo < hi <= vmax
            if lo > 0:  # inner edges: the equal-width edges snapped up to the fine grid (ratio 10**0.005)
                step = vmax / n_int
                target = math.floor(lo / step * (1 + 1e-9)) * step
                assert target <= lo * (1 + 1e-9) and lo <= target * 10 ** 0.005 * (1 + 1e-9)
        for lo, hi in bounds:
            group = [e for e in got if (e["bin_min"], e["bin_max"]) == (lo, hi)]
            assert 1 <= len(group) <= per
            assert len({e["source"]["window_index"] for e in group}) == len(group)
            top = hi == vmax
            inside = (nz >= lo) & ((nz <= hi) if top else (nz < hi))
            near = np.isclose(nz, lo, rtol=1e-5) | np.isclose(nz, hi, rtol=1e-5)
            for e in group:
                assert abs(round(e["bin_contains"] * nz.size) - inside.sum()) <= near.sum()
                w, q = e["source"]["window_index"], e["qualifying_token_index"]
                assert lo <= e["max_value"] and (e["max_value"] <= hi if top else e["max_value"] < hi)
                assert e["max_value"] == pytest.approx(win_max[w], rel=1e-5, abs=1e-6)
                assert valid[w, q] and col[w, q] == pytest.approx(win_max[w], rel=1e-5, abs=1e-6)
                assert e["values"][q] == e["max_value"] == max(e["values"])
                assert e["token_ids"] == windows.tokens[w].tolist()
                expected_row = col[w].astype(np.float16).astype(np.float32)
                np.testing.assert_allclose(e["values"], expected_row, rtol=2 ** -10, atol=1e-5)
            in_interval = (win_max >= lo) & ((win_max <= hi) if top else (win_max < hi))
            if (win_max > 0).sum() <= reservoir and not np.isclose(win_max, [[lo], [hi]], rtol=1e-5).any():
                assert len(group) == min(per, int(in_interval.sum()))  # every active window was a candidate
                exact_counts += 1
    assert exact_counts >= 10


def _assert_same_samples(x, y):
    """Same windows, positions and intervals; values equal up to float noise (another batch size changes the
    last bits of the model's activations)."""
    key = ("window_index", "qualifying_token_index")
    assert [(e["source"][key[0]], e[key[1]]) for e in x] == [(e["source"][key[0]], e[key[1]]) for e in y]
    for name in ("max_value", "bin_min", "bin_max", "bin_contains"):
        np.testing.assert_allclose([e[name] for e in x], [e[name] for e in y], rtol=1e-4, atol=1e-6)


def test_interval_sampling_is_deterministic(setup, tmp_path):
    loaded, sae, windows, store = setup
    rebatched = run_extraction(loaded, sae, windows, tmp_path / "again", settings=ExtractionSettings(
        top_k=TOP_K, batch_size=7, feature_chunk=13, logit_k=10, compute_logit_lens=False))
    small = dict(top_k=TOP_K, batch_size=16, feature_chunk=CHUNK, logit_k=10, compute_logit_lens=False,
                 interval_reservoir=12)
    a = run_extraction(loaded, sae, windows, tmp_path / "small_a", settings=ExtractionSettings(**small))
    b = run_extraction(loaded, sae, windows, tmp_path / "small_b", settings=ExtractionSettings(
        **{**small, "batch_size": 5, "feature_chunk": 9}))
    other_seed = run_extraction(loaded, sae, windows, tmp_path / "seed", settings=ExtractionSettings(
        **{**small, "interval_seed": 1}))
    differs = 0
    for f in range(D_SAE):
        _assert_same_samples(_intervals(feature_dashboard(store, f)), _intervals(feature_dashboard(rebatched, f)))
        _assert_same_samples(_intervals(feature_dashboard(a, f)), _intervals(feature_dashboard(b, f)))
        assert len(_intervals(feature_dashboard(a, f))) <= 12
        differs += _intervals(feature_dashboard(a, f)) != _intervals(feature_dashboard(other_seed, f))
    assert differs > D_SAE // 2


def test_interval_examples_can_be_disabled(setup, tmp_path):
    loaded, sae, windows, _ = setup
    store = run_extraction(loaded, sae, windows, tmp_path / "off", settings=ExtractionSettings(
        top_k=TOP_K, batch_size=16, feature_chunk=CHUNK, compute_logit_lens=False, interval_examples=0))
    assert not store.has("interval_examples")
    assert all(e["bin_min"] == -1 for f in range(D_SAE) for e in feature_dashboard(store, f)["activations"])


def test_topk_sae_matches_brute_force(setup, tmp_path):
    """A topk SAE over several feature chunks: the global top-k (found once per batch) decides every chunk."""
    loaded, _, windows, _ = setup
    sae = SAE(SAEConfig(d_in=64, d_sae=D_SAE, architecture="topk", k=5, hook_name="blocks.0.hook_resid_post"))
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(64, D_SAE, generator=g) * 0.1)
        sae.b_enc.copy_(torch.randn(D_SAE, generator=g) * 0.1)
        hidden = loaded.model(windows.tokens, output_hidden_states=True).hidden_states[1]
        pre = (hidden - sae.b_dec) @ sae.W_enc + sae.b_enc
        vals, idx = pre.topk(5, dim=-1)
        acts = torch.zeros_like(pre).scatter_(-1, idx, vals.relu()).numpy()
    specials = {loaded.tokenizer.bos_token_id, loaded.tokenizer.eos_token_id, loaded.tokenizer.pad_token_id}
    valid = ~np.isin(windows.tokens.numpy(), list(specials))
    store = run_extraction(loaded, sae, windows, tmp_path / "topk",
                           settings=ExtractionSettings(top_k=TOP_K, batch_size=16, feature_chunk=CHUNK, logit_k=10))
    for f in range(D_SAE):
        col = acts[..., f][valid]
        s = feature_dashboard(store, f)["statistics"]
        assert s["n_active"] == int((col > 0).sum()), f
        if s["n_active"]:
            assert s["max_activation"] == pytest.approx(col.max(), rel=1e-5, abs=1e-6)


def test_n_examples_caps_the_whole_list(setup):
    """`n_examples` caps all examples (top group first, then the intervals); `top_examples` caps the top group."""
    _, _, _, store = setup
    capped = 0
    for f in range(D_SAE):
        full = feature_dashboard(store, f)["activations"]
        top = [e for e in full if e["bin_min"] == -1]
        assert full[:len(top)] == top
        capped += len(full) > 10
        for n in (1, 4, 10, 100):
            assert feature_dashboard(store, f, n_examples=n)["activations"] == full[:n]
        assert feature_dashboard(store, f, top_examples=2)["activations"] == top[:2] + full[len(top):]
        assert feature_dashboard(store, f, top_examples=2, include_intervals=False)["activations"] == top[:2]
    assert capped > D_SAE // 2  # the cap is exercised (6 top + up to 25 interval examples per feature)

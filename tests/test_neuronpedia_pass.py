"""The Neuronpedia pass and its reader against a brute force written here: every window encoded at once with plain
torch (no SAELens, no miStudio encoder), the full activation matrix folded and masked as SAEDashboard does, then
`torch.histc`, `torch.linspace` bands and numpy's `corrcoef`.

The SAE's inputs and weights are put on dyadic grids (inputs multiples of 1/16, W_enc of 1/256, biases of
1/4096), so every pre-activation is exact in float32 whatever the summation order: the chunked encoder and the
brute force then agree to the bit and counts can be compared exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sae_factories import make_sae
from safetensors.torch import load_file

from mistudio.dashboards.neuronpedia import has_neuronpedia_data, neuronpedia_feature
from mistudio.datasets.sources import load_texts
from mistudio.datasets.windows import tokenize_windows
from mistudio.errors import JobCancelled, NotFoundError
from mistudio.extraction import engine
from mistudio.extraction.accumulator import position_keys
from mistudio.extraction.engine import BatchEncoder, ExtractionSettings, run_extraction
from mistudio.extraction.logit_lens import histc_bins, histc_range
from mistudio.extraction.neuronpedia_pass import (
    band_edges,
    feature_batch_bounds,
    neuronpedia_ignore_ids,
    run_neuronpedia_pass,
)
from mistudio.lm.loading import load_model
from mistudio.saes.model import SAE
from mistudio.store.feature_store import FeatureStore
from mistudio.testing.tiny_models import build_tiny_model, default_corpus

D_SAE, N_WINDOWS, CONTEXT = 48, 24, 12
SETTINGS = ExtractionSettings(top_k=4, batch_size=8, feature_chunk=7, checkpoint_every=1)
FEATURE_KEYS = {"feature_index", "neuron_alignment_indices", "neuron_alignment_values", "neuron_alignment_l1",
                "correlated_neurons_indices", "correlated_neurons_l1", "correlated_neurons_pearson",
                "correlated_features_indices", "correlated_features_l1", "correlated_features_pearson", "neg_str",
                "neg_values", "pos_str", "pos_values", "frac_nonzero", "freq_hist_data_bar_values",
                "freq_hist_data_bar_heights", "logits_hist_data_bar_heights", "logits_hist_data_bar_values",
                "n_prompts_total", "n_tokens_in_prompt", "dataset", "decoder_weights_dist", "activations", "vector",
                "topk_cos_sim_indices", "topk_cos_sim_values"}
ACTIVATION_KEYS = {"bin_min", "bin_max", "bin_contains", "tokens", "values", "qualifying_token_index", "token_ids",
                   "window_index"}


def dyadic(x: torch.Tensor) -> torch.Tensor:
    """The SAE input transform of these tests: inputs on the 1/16 grid."""
    return torch.round(x * 16) / 16


def quantised_sae(architecture: str, seed: int) -> SAE:
    sae = make_sae(architecture, d_in=64, d_sae=D_SAE, seed=seed, hook_name="blocks.1.hook_resid_pre")
    with torch.no_grad():
        sae.W_enc.copy_(torch.round(sae.W_enc * 256) / 256)
        sae.b_enc.copy_(torch.round(sae.b_enc * 4096) / 4096)
        sae.b_dec.copy_(torch.round(sae.b_dec * 16) / 16)
        sae.W_dec.mul_(torch.linspace(0.5, 2.5, D_SAE).unsqueeze(1))  # decoder norms far from 1
    return sae


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("nppass")
    loaded = load_model(str(build_tiny_model("pythia", root / "model")), device="cpu", dtype="float32")
    (root / "c.txt").write_text("\n\n".join(default_corpus(200, seed=9)))
    windows = tokenize_windows(load_texts(root / "c.txt"), loaded.tokenizer, context_size=CONTEXT,
                               n_windows=N_WINDOWS, prepend_bos=True)
    return root, loaded, windows


def brute_force(loaded, sae: SAE, windows, feature_batch: int) -> dict:
    """Everything SAEDashboard computes for these windows, from the dense activation matrix."""
    with torch.no_grad():
        x = dyadic(loaded.model(windows.tokens, output_hidden_states=True).hidden_states[1])  # [W, C, d_in]
        inp = x - sae.b_dec if sae.cfg.apply_b_dec_to_input else x
        pre = inp @ sae.W_enc + sae.b_enc
        arch = sae.cfg.architecture
        if arch == "standard":
            acts = pre.relu()
        elif arch == "jumprelu":
            acts = pre.relu() * (pre > sae.threshold)
        else:
            values, idx = pre.topk(int(sae.cfg.k), dim=-1)
            kth = values[..., -1:]
            assert not ((pre == kth).sum(-1) > 1).any(), "ties at the k-th pre-activation: pick other weights"
            acts = torch.zeros_like(pre).scatter(-1, idx, values.relu())
        fold = torch.ones(D_SAE) if arch == "topk" else torch.linalg.vector_norm(sae.W_dec, dim=1)
        folded = acts * fold
    ignore = [i for i in {loaded.tokenizer.pad_token_id, loaded.tokenizer.bos_token_id,
                          loaded.tokenizer.eos_token_id} if i is not None]
    keep = ~torch.isin(windows.tokens, torch.tensor(ignore))
    masked = folded * keep.unsqueeze(-1)
    n_positions = masked.shape[0] * masked.shape[1]
    out: dict = {"x": x, "folded": folded, "masked": masked, "n_positions": n_positions, "features": []}
    flat_x = x.reshape(-1, x.shape[-1]).double().numpy()
    flat_a = folded.reshape(-1, D_SAE).double().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        both = np.hstack([flat_a, flat_x])
        pearson_all = np.nan_to_num(np.corrcoef(both.T))  # a dead feature correlates 0 (SAEDashboard's epsilon)
        norms = np.linalg.norm(both, axis=0)
        cosine_all = np.nan_to_num(both.T @ both / np.outer(norms, norms))
    blocks = np.array_split(np.arange(D_SAE), math.ceil(D_SAE / feature_batch))
    block_of = {int(f): b for b in blocks for f in b}
    for f in range(D_SAE):
        m = masked[..., f]
        nonzero = m[m > 0]
        vmax = m.max().item()
        edges = torch.linspace(0, vmax, 6)
        bands = []
        for b in range(5):
            lo, hi = edges[b : b + 2].tolist()
            inside = (m >= lo) & (m <= hi)
            bands.append({"lo": lo, "hi": hi, "count": int(inside.sum()),
                          "positions": {tuple(p) for p in inside.nonzero().tolist()}})
        feature = {"count": int(nonzero.numel()), "max": vmax, "bands": bands,
                   "hist": torch.histc(nonzero, bins=50).int().tolist() if nonzero.numel() else [],
                   "min": nonzero.min().item() if nonzero.numel() else 0.0,
                   "window_max": m.max(dim=1).values}
        if nonzero.numel():
            feature["neurons"] = (pearson_all[f, D_SAE:], cosine_all[f, D_SAE:])
            block = block_of[f]
            own = block == f
            feature["features"] = (block, np.where(own, 0.0, pearson_all[f, block]),
                                   np.where(own, 0.0, cosine_all[f, block]))
        out["features"].append(feature)
    return out


def _top3(values: np.ndarray) -> tuple[np.ndarray, int]:
    """The 3 largest (indices) and how many of them are unambiguous (ranks before any near tie, e.g. between
    the zeros of the own feature and a dead one)."""
    order = np.argsort(-values, kind="stable")
    sure = next((r for r in range(3) if values[order[r]] - values[order[r + 1]] < 1e-6), 3)
    return order[:3], sure


def check_against_brute_force(store: FeatureStore, ref: dict, vocab: list[str]) -> None:
    part = store.read_part("neuronpedia")
    tokens = store.windows()["tokens"]
    assert int(part["n_positions"]) == ref["n_positions"]
    alive = 0
    for f, feat in enumerate(ref["features"]):
        assert int(part["count"][f]) == feat["count"], f
        assert float(part["max"][f]) == feat["max"], f
        assert part["band_edges"][f].tolist() == [b["lo"] for b in feat["bands"]] + [feat["bands"][-1]["hi"]]
        assert part["band_counts"][f].tolist() == [b["count"] for b in feat["bands"]]
        if feat["count"]:
            alive += 1
            assert part["hist"][f].tolist() == feat["hist"], f
            assert float(part["min"][f]) == feat["min"]
        for b, band in enumerate(feat["bands"]):
            held = [(int(w), int(p)) for w, p in zip(part["band_windows"][f, b], part["band_positions"][f, b],
                                                     strict=True) if w >= 0]
            assert len(set(held)) == len(held) == min(5, band["count"]), (f, b)
            assert set(held) <= band["positions"]
            for k, w in enumerate(part["band_windows"][f, b].tolist()):
                if w >= 0:
                    assert torch.equal(part["band_rows"][f, b, k], ref["masked"][w, :, f])
        # top group: the windows with the largest max, one example each, only where the feature fires
        window_max = feat["window_max"]
        expected = torch.sort(window_max[window_max > 0], descending=True).values[:20]
        got = part["top_values"][f][part["top_windows"][f] >= 0]
        assert torch.equal(got, expected), f
        for k in range(len(got)):
            w, p = int(part["top_windows"][f, k]), int(part["top_positions"][f, k])
            assert float(window_max[w]) == float(got[k]) == float(ref["masked"][w, p, f])
            assert torch.equal(part["top_rows"][f, k], ref["masked"][w, :, f])
        if "neurons" in feat:
            corr, cos = feat["neurons"]
            top, sure = _top3(corr)
            assert sure == 3 and part["neuron_indices"][f].tolist() == top.tolist(), f
            np.testing.assert_allclose(part["neuron_pearson"][f].numpy(), corr[top], atol=2e-5)
            np.testing.assert_allclose(part["neuron_cosine"][f].numpy(), cos[top], atol=2e-5)
            block, pearson, cos_f = feat["features"]
            top, sure = _top3(pearson)
            assert part["feature_indices"][f].tolist()[:sure] == block[top].tolist()[:sure], f
            np.testing.assert_allclose(part["feature_pearson"][f].numpy(), pearson[top], atol=2e-5)
            np.testing.assert_allclose(part["feature_cosine"][f].numpy(), cos_f[top], atol=2e-5)
    assert alive > D_SAE // 2

    # the reader: SAEDashboard's keys, rounding and example layout
    for f in (0, 5, D_SAE - 1):
        feat = ref["features"][f]
        got = neuronpedia_feature(store, f)
        assert set(got) == FEATURE_KEYS
        assert got["feature_index"] == f
        assert got["n_prompts_total"] == N_WINDOWS and got["n_tokens_in_prompt"] == CONTEXT
        assert got["frac_nonzero"] == float(f"{feat['count'] / ref['n_positions']:.3%}".rstrip("%")) / 100
        assert got["freq_hist_data_bar_heights"] == feat["hist"]
        centres: list[float] = []
        if feat["count"]:
            edges = torch.linspace(feat["min"], feat["max"], 51)
            centres = [round(v, 5) for v in (edges[:-1] + (feat["max"] - feat["min"]) / 50 / 2).tolist()]
        assert got["freq_hist_data_bar_values"] == np.round(centres, 3).tolist()
        top = [a for a in got["activations"] if a["bin_min"] == -1]
        rest = got["activations"][len(top):]
        assert len(top) == min(20, int((feat["window_max"] > 0).sum()))
        for a in got["activations"]:
            assert set(a) == ACTIVATION_KEYS
            w = a["window_index"]
            assert a["token_ids"] == tokens[w, 1:].tolist()
            assert a["tokens"] == [vocab[i] for i in tokens[w, 1:].tolist()]
            row = ref["masked"][w, :, f]
            assert a["values"] == np.round([round(v, 4) for v in row[1:].tolist()], 3).tolist()
        for a in top:
            assert a["bin_max"] == float(f"{feat['max']:.3f}") and a["bin_contains"] == -1
            assert float(ref["masked"][a["window_index"], a["qualifying_token_index"] + 1, f]) == float(
                feat["window_max"][a["window_index"]])
        for band in reversed(feat["bands"]):  # highest band first, min(5, positions in band) examples each
            share = (torch.tensor(band["count"], dtype=torch.float32) / ref["n_positions"]).item()
            n_examples = min(5, band["count"])
            for a in rest[:n_examples]:
                assert (a["bin_min"], a["bin_max"]) == (float(f"{band['lo']:.3f}"), float(f"{band['hi']:.3f}"))
                assert a["bin_contains"] == float(f"{share:.3%}".rstrip("%")) / 100
                assert (a["window_index"], a["qualifying_token_index"] + 1) in band["positions"]
            rest = rest[n_examples:]
        assert rest == []


@pytest.mark.parametrize("architecture,seed,feature_batch", [("standard", 1, 128), ("jumprelu", 2, 10),
                                                             ("topk", 4, 10)])
def test_pass_equals_brute_force(tiny, architecture, seed, feature_batch):
    root, loaded, windows = tiny
    sae = quantised_sae(architecture, seed)
    folder = root / f"{architecture}-{feature_batch}"
    if feature_batch == 128:  # the engine's own wiring
        store = run_extraction(loaded, sae, windows, folder, settings=SETTINGS, transform=dyadic)
    else:  # SAEDashboard batches of 10 features (sizes 10, 10, 10, 9, 9), cut by feature chunks of 7
        store = run_extraction(loaded, sae, windows, folder, transform=dyadic,
                               settings=ExtractionSettings(**{**SETTINGS.__dict__, "neuronpedia": False}))
        assert not has_neuronpedia_data(store)
        encoder = BatchEncoder(loaded, sae, windows, SETTINGS, dyadic, None)
        run_neuronpedia_pass(store, encoder, sae, SETTINGS, neuronpedia_ignore_ids(loaded.tokenizer),
                             feature_batch=feature_batch)
    assert store.manifest["neuronpedia_pass"]["status"] == "completed"
    assert store.manifest["neuronpedia_pass"]["values_outside_range"] == 0
    check_against_brute_force(store, brute_force(loaded, sae, windows, feature_batch), store.vocab)


def test_resume_equals_uninterrupted(tiny):
    root, loaded, windows = tiny
    sae = quantised_sae("standard", 1)
    reference = run_extraction(loaded, sae, windows, root / "np-reference", settings=SETTINGS, transform=dyadic)
    calls = {"n": 0}

    def stop_in_second_pass() -> None:  # the first pass checks 3 times (24 windows, batches of 8)
        calls["n"] += 1
        if calls["n"] == 5:
            raise JobCancelled("stop")

    stages = []
    with pytest.raises(JobCancelled):
        run_extraction(loaded, sae, windows, root / "np-resumed", settings=SETTINGS, transform=dyadic,
                       check=stop_in_second_pass, progress=lambda p: stages.append(p.get("stage")))
    partial = FeatureStore.open(root / "np-resumed")
    assert partial.manifest["status"] == "completed"  # the first pass's parts are final
    assert partial.manifest["neuronpedia_pass"]["status"] == "interrupted"
    assert partial.manifest["neuronpedia_pass"]["windows_done"] == 8
    assert (partial.path / "checkpoint" / "neuronpedia.safetensors").exists()
    assert not has_neuronpedia_data(partial)
    assert "neuronpedia pass" in stages
    resumed = run_extraction(loaded, sae, windows, root / "np-resumed", settings=SETTINGS, transform=dyadic)
    assert resumed.manifest["neuronpedia_pass"]["status"] == "completed"
    assert not (resumed.path / "checkpoint").exists() or not any((resumed.path / "checkpoint").iterdir())
    a = load_file(reference.path / "neuronpedia.safetensors")
    b = load_file(resumed.path / "neuronpedia.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_old_store_is_upgraded_by_running_again(tiny):
    root, loaded, windows = tiny
    sae = quantised_sae("standard", 1)
    old = run_extraction(loaded, sae, windows, root / "np-old", transform=dyadic,
                         settings=ExtractionSettings(**{**SETTINGS.__dict__, "neuronpedia": False}))
    assert old.manifest["status"] == "completed" and not has_neuronpedia_data(old)
    with pytest.raises(NotFoundError, match="extract"):
        neuronpedia_feature(old, 0)
    before = load_file(old.path / "statistics.safetensors")
    stages = []
    upgraded = run_extraction(loaded, sae, windows, root / "np-old", settings=SETTINGS, transform=dyadic,
                              progress=lambda p: stages.append(p.get("stage")))
    assert set(stages) == {"neuronpedia pass"}  # only the missing pass ran
    assert has_neuronpedia_data(upgraded) and upgraded.manifest["status"] == "completed"
    after = load_file(upgraded.path / "statistics.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    reference = load_file(root / "np-reference" / "neuronpedia.safetensors") if (
        root / "np-reference").exists() else None
    if reference is not None:
        got = load_file(upgraded.path / "neuronpedia.safetensors")
        for key in reference:
            assert torch.equal(reference[key], got[key]), key
    again = []
    run_extraction(loaded, sae, windows, root / "np-old", settings=SETTINGS, transform=dyadic,
                   progress=again.append)
    assert again == []  # complete: nothing runs


def test_extra_special_tokens_get_a_range_sweep(tiny, monkeypatch):
    """A first pass that masked a token SAEDashboard does not mask: the pass finds the range itself."""
    root, loaded, windows = tiny
    sae = quantised_sae("jumprelu", 2)
    common = int(torch.mode(windows.tokens[:, 1:].flatten()).values)
    real = engine.special_token_ids
    monkeypatch.setattr(engine, "special_token_ids", lambda tok: sorted({*real(tok), common}))
    stages = []
    store = run_extraction(loaded, sae, windows, root / "np-extra", settings=SETTINGS, transform=dyadic,
                           progress=lambda p: stages.append(p.get("stage")))
    assert common in store.manifest["special_token_ids"]
    assert "neuronpedia pass (activation range)" in stages
    assert store.manifest["neuronpedia_pass"]["values_outside_range"] == 0
    check_against_brute_force(store, brute_force(loaded, sae, windows, 128), store.vocab)


def test_out_of_memory_halves_the_batch(tiny, monkeypatch):
    root, loaded, windows = tiny
    sae = quantised_sae("standard", 1)
    original = SAE.encode_chunks
    raised = {"n": 0}

    def flaky(self, x, chunk_size=4096, start=0):
        for lo, acts in original(self, x, chunk_size, start):
            if x.shape[0] > 4 and lo == 14:  # the third chunk: the feature batch [0, 48) is still incomplete
                raised["n"] += 1
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            yield lo, acts

    run_extraction(loaded, sae, windows, root / "np-oom",
                   settings=ExtractionSettings(**{**SETTINGS.__dict__, "neuronpedia": False}), transform=dyadic)
    monkeypatch.setattr(SAE, "encode_chunks", flaky)
    store = run_extraction(loaded, sae, windows, root / "np-oom", settings=SETTINGS, transform=dyadic)
    assert raised["n"] >= 1
    check_against_brute_force(store, brute_force(loaded, sae, windows, 128), store.vocab)


def test_helpers_match_torch():
    gen = torch.Generator().manual_seed(0)
    vmax = torch.rand(5000, generator=gen) * torch.logspace(-3, 3, 5000)
    assert torch.equal(band_edges(vmax), torch.stack([torch.linspace(0, float(v), 6) for v in vmax]))
    assert torch.equal(band_edges(torch.zeros(3)), torch.zeros(3, 6))
    for trial in range(200):
        data = (torch.rand(int(torch.randint(1, 60, (1,), generator=gen)), generator=gen) * (trial + 1)).float()
        if trial % 7 == 0:
            data = data[:1].repeat(4)  # one distinct value: histc widens the range by 1 each side
        lo, hi = histc_range(data.min().reshape(1), data.max().reshape(1))
        bins = histc_bins(data, lo, hi)
        assert torch.bincount(bins, minlength=50).tolist() == torch.histc(data, bins=50).int().tolist()
    for d_sae in (1, 7, 128, 129, 300, 16384, 16385):
        expected = [0] + np.cumsum([len(b) for b in np.array_split(np.arange(d_sae),
                                                                   math.ceil(d_sae / 128))]).tolist()
        assert feature_batch_bounds(d_sae) == expected
    positions = (torch.tensor([0, 5, 9]).unsqueeze(1) * 12 + torch.arange(12)).reshape(1, -1)
    keys = position_keys(torch.arange(3, 40).unsqueeze(1), positions, seed=1)
    assert keys.shape == (37, 36) and bool((keys >= 0).all())
    assert all(len(set(row.tolist())) == 36 for row in keys)
    assert torch.equal(keys & (2**31 - 1), positions.expand(37, -1))
    assert torch.equal(position_keys(torch.tensor(7), positions[0, 5], seed=1), keys[4, 5])


def test_service_adds_the_missing_pass_to_a_completed_extraction(tmp_path):
    from mistudio.catalog.service import register_sae_from_path
    from mistudio.demo import random_sae
    from mistudio.extraction.service import get_store, list_extractions, start_extraction
    from mistudio.saes.formats import write_saelens
    from mistudio.studio import Studio

    model = build_tiny_model("gpt2", tmp_path / "model")
    sae = random_sae(64, 32, "blocks.1.hook_resid_pre", model_name=str(model), context_size=16)
    studio = Studio.open(home=tmp_path / "home")
    sae_id = register_sae_from_path(studio, write_saelens(sae, tmp_path / "sae"), name="tiny", source="trained").id
    options = {"n_tokens": 256, "context_size": 16, "top_k": 3}
    first = start_extraction(studio, sae_id, str(model), "builtin:corpus", submit=False, neuronpedia=False,
                             **options)
    assert studio.runner.run_inline(first.job_id).status == "completed"
    _, store = get_store(studio, sae_id)
    assert not has_neuronpedia_data(store)
    assert start_extraction(studio, sae_id, str(model), "builtin:corpus", submit=False, neuronpedia=False,
                            **options).reused
    again = start_extraction(studio, sae_id, str(model), "builtin:corpus", submit=False, **options)
    assert not again.reused and again.extraction_id == first.extraction_id and again.job_id != first.job_id
    seen = []
    state = studio.runner.run_inline(again.job_id, listener=lambda event: seen.append(
        [e.status for e in list_extractions(studio, sae_id)]))
    assert state.status == "completed"
    assert seen and all(statuses == ["completed"] for statuses in seen)  # the extraction stayed usable throughout
    assert [(st.name, st.status) for st in state.stages][-2:] == [("neuronpedia", "completed"),
                                                                  ("summaries", "completed")]
    _, store = get_store(studio, sae_id)
    assert has_neuronpedia_data(store) and store.has("neuronpedia_weights")
    assert neuronpedia_feature(store, 0)["n_prompts_total"] == 16
    assert start_extraction(studio, sae_id, str(model), "builtin:corpus", submit=False, **options).reused


def test_example_values_round_as_saedashboard_does() -> None:
    """The vectorised rounding equals SAEDashboard's Python `round(v, 4)` then `np.round(…, 3)`, halves included."""
    from mistudio.dashboards.neuronpedia import example_values

    rng = np.random.default_rng(0)
    halves = (np.arange(-2000, 2000) + 0.5) / 1e4  # exactly between two 4-decimal values (as decimals)
    values = np.concatenate([rng.standard_normal(20000).astype(np.float32) * 7, halves, halves * 1000,
                             np.float32(halves)]).astype(np.float64)
    expected = [float(v) for v in np.round([round(float(v), 4) for v in values], 3)]
    assert example_values(values) == expected

"""The training conventions the engine follows and records: `expected_average_only_in` (the norm scaling factor
estimated as SAELens's ActivationScaler does, folded in, recorded), the window convention, the hooks read, and
the reconstruction error judged against the SAE's target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mistudio.datasets.sources import load_texts
from mistudio.datasets.windows import tokenize_windows
from mistudio.extraction.engine import ExtractionSettings, run_extraction
from mistudio.extraction.finalize import ensure_parts
from mistudio.lm.loading import load_model
from mistudio.saes.model import SAE, SAEConfig
from mistudio.testing.tiny_models import build_tiny_model, default_corpus

SAMPLE = 12


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("conventions")
    loaded = load_model(str(build_tiny_model("gpt2", root / "model")), device="cpu", dtype="float32")
    (root / "c.txt").write_text("\n\n".join(default_corpus(80, seed=6)))
    windows = tokenize_windows(load_texts(root / "c.txt"), loaded.tokenizer, context_size=8, n_windows=20)
    with torch.no_grad():
        hidden = loaded.model(windows.tokens, output_hidden_states=True).hidden_states[1]  # blocks.0 resid_post
    return root, loaded, windows, hidden


def _sae(**cfg) -> SAE:
    sae = SAE(SAEConfig(d_in=64, d_sae=32, hook_name="blocks.0.hook_resid_post", **cfg))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(64, 32, generator=g) * 0.2)
        sae.W_dec.copy_(torch.randn(32, 64, generator=g) * 0.2)
        sae.b_dec.copy_(torch.randn(64, generator=g) * 0.1)
        sae.b_enc.copy_(torch.randn(32, generator=g) * 0.5 - 0.2)
    return sae


def _settings(**kw) -> ExtractionSettings:
    return ExtractionSettings(top_k=4, batch_size=8, feature_chunk=16, interval_examples=0,
                              norm_sample_windows=SAMPLE, **kw)


def test_expected_average_only_in_is_estimated_as_sae_lens_does(setup):
    from sae_lens.training.activation_scaler import ActivationScaler

    root, loaded, windows, hidden = setup
    sae = _sae(normalize_activations="expected_average_only_in")
    original = _sae()  # the same weights, unfolded
    store = run_extraction(loaded, sae, windows, root / "norm", settings=_settings())
    recorded = store.manifest["normalization"]
    assert recorded["mode"] == "expected_average_only_in" and recorded["source"] == "estimated"
    assert recorded["sample_windows"] == SAMPLE

    scaler = ActivationScaler()  # SAELens's own estimate over the same activations, one window per batch
    scaler.estimate_scaling_factor(64, iter(hidden[:SAMPLE]), n_batches_for_norm_estimate=SAMPLE)
    assert recorded["factor"] == pytest.approx(scaler.scaling_factor, rel=1e-5)
    assert sae.cfg.normalize_activations == "none"  # folded, as SAELens does

    # the statistics are those of the unfolded SAE reading the scaled activations (SAELens's training input)
    with torch.no_grad():
        acts = original.encode(hidden * scaler.scaling_factor).numpy()
    specials = {loaded.tokenizer.bos_token_id, loaded.tokenizer.eos_token_id, loaded.tokenizer.pad_token_id}
    acts = acts[~np.isin(windows.tokens.numpy(), list(specials))]
    stats = store.read_part("statistics")
    np.testing.assert_array_equal(stats["count"].numpy(), (acts > 0).sum(0))
    np.testing.assert_allclose(stats["max"].numpy(), acts.max(0), rtol=1e-4, atol=1e-5)

    # a logit lens computed later (export) from the SAE as loaded, unfolded, equals the one of the pass
    lens = store.read_part("logit_lens")
    store.manifest["parts"]["logit_lens"] = False
    unfolded = _sae(normalize_activations="expected_average_only_in")
    assert ensure_parts(store, loaded, unfolded) == ["logit_lens"]
    assert unfolded.cfg.normalize_activations == "expected_average_only_in"  # the caller's SAE is left alone
    for key, value in store.read_part("logit_lens").items():
        torch.testing.assert_close(value, lens[key], rtol=1e-5, atol=1e-6)


def test_a_release_factor_folded_at_load_is_recorded(setup):
    root, loaded, windows, _ = setup
    sae = _sae(extra={"norm_scaling_factor": 2.5})
    store = run_extraction(loaded, sae, windows, root / "release", settings=_settings(compute_logit_lens=False))
    assert store.manifest["normalization"] == {"mode": "none", "factor": 2.5, "source": "release, folded at load"}
    # a release factor the loader did not fold yet is folded here, not estimated
    unfolded = _sae(normalize_activations="expected_average_only_in", extra={"norm_scaling_factor": 2.0})
    store = run_extraction(loaded, unfolded, windows, root / "release-unfolded",
                           settings=_settings(compute_logit_lens=False))
    assert store.manifest["normalization"] == {"mode": "expected_average_only_in", "factor": 2.0,
                                               "source": "release"}
    torch.testing.assert_close(unfolded.W_enc, _sae().W_enc * 2.0)


def test_manifest_records_hooks_windows_and_reconstruction(setup):
    root, loaded, windows, hidden = setup
    sae = _sae()
    store = run_extraction(loaded, sae, windows, root / "record", settings=_settings())
    m = store.manifest
    assert m["hooks"] == {"input": "blocks.0.hook_resid_post", "output": None,
                          "hook_name": "blocks.0.hook_resid_post", "hook_head_index": None, "transcoder": False}
    assert m["windows"] == {"prepend_bos": True, "bos_token_id": loaded.tokenizer.bos_token_id,
                            "separator_token_id": loaded.tokenizer.bos_token_id, "concat_sequences": True}
    assert m["logit_lens"]["basis"] == "residual"
    # reconstruction error over the selectable tokens, brute force
    specials = {loaded.tokenizer.bos_token_id, loaded.tokenizer.eos_token_id, loaded.tokenizer.pad_token_id}
    valid = torch.from_numpy(~np.isin(windows.tokens.numpy(), list(specials)))
    with torch.no_grad():
        x = hidden[valid].double()
        err = (sae(hidden)[valid].double() - x).square().sum()
    rec = m["reconstruction"]
    assert rec["target_hook"] == "blocks.0.hook_resid_post" and rec["n_tokens"] == int(valid.sum())
    assert rec["mse"] == pytest.approx(float(err) / x.numel(), rel=1e-4)
    assert rec["explained_variance"] == pytest.approx(
        1 - float(err) / float((x - x.mean(0)).square().sum()), rel=1e-4, abs=1e-6)

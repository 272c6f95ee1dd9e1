"""Transcoders and HF-module-path hooks on a tiny Gemma-2: the engine reads the input hook and judges the
reconstruction against the output hook, both captured in one pass; everything is checked against activations
captured here with plain forward hooks on the HF modules and the transcoder formula written out."""

from __future__ import annotations

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

D, D_SAE, K = 64, 48, 6
IN_PATH = "model.layers.1.pre_feedforward_layernorm.output"
OUT_PATH = "model.layers.1.post_feedforward_layernorm.output"
SETTINGS = ExtractionSettings(top_k=4, batch_size=8, feature_chunk=16, logit_k=K, interval_examples=0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("transcoder")
    loaded = load_model(str(build_tiny_model("gemma2", root / "model")), device="cpu", dtype="float32")
    (root / "c.txt").write_text("\n\n".join(default_corpus(80, seed=8)))
    windows = tokenize_windows(load_texts(root / "c.txt"), loaded.tokenizer, context_size=10, n_windows=24)
    layer = loaded.model.model.layers[1]
    captured: dict[str, torch.Tensor] = {}
    handles = [layer.pre_feedforward_layernorm.register_forward_hook(lambda m, a, o: captured.update(x=o)),
               layer.post_feedforward_layernorm.register_forward_hook(lambda m, a, o: captured.update(y=o)),
               loaded.model.model.layers[0].register_forward_hook(
                   lambda m, a, o: captured.update(resid=o[0] if isinstance(o, tuple) else o))]
    with torch.no_grad():
        loaded.model(windows.tokens)
    for h in handles:
        h.remove()
    specials = {loaded.tokenizer.bos_token_id, loaded.tokenizer.eos_token_id, loaded.tokenizer.pad_token_id}
    valid = torch.from_numpy(~np.isin(windows.tokens.numpy(), list(specials)))
    return root, loaded, windows, captured, valid


def _transcoder() -> SAE:
    sae = SAE(SAEConfig(d_in=D, d_sae=D_SAE, d_out=D, hook_name="blocks.1.hook_mlp_in",
                        hook_name_out="blocks.1.hook_mlp_out", hf_hook_name=IN_PATH, hf_hook_name_out=OUT_PATH,
                        apply_b_dec_to_input=False, skip_connection=True))
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D, D_SAE, generator=g) * 0.2)
        sae.b_enc.copy_(torch.randn(D_SAE, generator=g) * 0.3 - 0.1)
        sae.W_dec.copy_(torch.randn(D_SAE, D, generator=g) * 0.1)
        sae.b_dec.copy_(torch.randn(D, generator=g) * 0.1)
        sae.W_skip.copy_(torch.randn(D, D, generator=g) * 0.05)
    return sae


def test_transcoder_reads_its_input_and_is_judged_against_its_output(setup):
    root, loaded, windows, captured, valid = setup
    sae = _transcoder()
    assert sae.is_transcoder
    store = run_extraction(loaded, sae, windows, root / "tc", settings=SETTINGS)
    m = store.manifest
    assert m["status"] == "completed"
    assert m["hooks"]["input"] == IN_PATH and m["hooks"]["output"] == OUT_PATH and m["hooks"]["transcoder"]

    x, y = captured["x"], captured["y"]
    with torch.no_grad():
        acts = torch.relu(x @ sae.W_enc + sae.b_enc)  # a transcoder never subtracts b_dec from its input
        y_hat = acts @ sae.W_dec + sae.b_dec + x @ sae.W_skip
    acts_valid = acts[valid].numpy()
    stats = store.read_part("statistics")
    np.testing.assert_array_equal(stats["count"].numpy(), (acts_valid > 0).sum(0))
    np.testing.assert_allclose(stats["max"].numpy(), acts_valid.max(0), rtol=1e-4, atol=1e-5)

    target, err = y[valid].double(), (y_hat[valid].double() - y[valid].double()).square().sum()
    rec = m["reconstruction"]
    assert rec["target_hook"] == OUT_PATH and rec["n_tokens"] == int(valid.sum())
    assert rec["mse"] == pytest.approx(float(err) / target.numel(), rel=1e-4)
    assert rec["explained_variance"] == pytest.approx(
        1 - float(err) / float((target - target.mean(0)).square().sum()), rel=1e-4, abs=1e-6)
    # judged against the input instead, the error would be another number
    wrong = (y_hat[valid].double() - x[valid].double()).square().sum()
    assert abs(float(wrong) - float(err)) > 1e-3 * float(err)

    # the decoder [d_sae, d_out] writes the MLP output, in the residual stream: logit lens W_dec @ W_U
    assert m["logit_lens"]["basis"] == "residual" and m["logit_lens"]["hook"] == OUT_PATH
    hf = loaded.model
    W_U = (1.0 + hf.model.norm.weight.detach())[:, None] * hf.lm_head.weight.detach().T
    expected = sae.W_dec.detach() @ W_U
    for f in range(D_SAE):
        got = [e["token_id"] for e in feature_dashboard(store, f)["logits"]["top_positive"]]
        assert got == torch.topk(expected[f], K).indices.tolist()


def test_sae_on_an_hf_module_path(setup):
    root, loaded, windows, captured, valid = setup
    sae = SAE(SAEConfig(d_in=D, d_sae=D_SAE, hook_name="blocks.0.hook_resid_post",
                        hf_hook_name="model.layers.0.output"))
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D, D_SAE, generator=g) * 0.2)
        sae.b_enc.copy_(torch.randn(D_SAE, generator=g) * 0.3)
        sae.W_dec.copy_(torch.randn(D_SAE, D, generator=g) * 0.1)
    store = run_extraction(loaded, sae, windows, root / "hf_path", settings=SETTINGS)
    assert store.manifest["hooks"]["input"] == "model.layers.0.output"
    with torch.no_grad():
        acts = torch.relu((captured["resid"] - sae.b_dec) @ sae.W_enc + sae.b_enc)[valid].numpy()
    np.testing.assert_array_equal(store.read_part("statistics")["count"].numpy(), (acts > 0).sum(0))

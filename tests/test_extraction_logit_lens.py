"""The logit lens in the basis each hook calls for, against a brute-force product of the HF weights (read here
straight from the HF modules, not through the engine): `W_dec @ W_U` for residual hooks, `W_dec @ W_O @ W_U`
for attn.hook_z (one head's W_O slice for a single-head SAE), none for hook_q/k/v; a failure after the pass
leaves the manifest `failed`."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from mistudio.dashboards.reader import feature_dashboard
from mistudio.datasets.sources import load_texts
from mistudio.datasets.windows import tokenize_windows
from mistudio.extraction import engine
from mistudio.extraction.engine import ExtractionSettings, run_extraction
from mistudio.lm.loading import load_model
from mistudio.saes.model import SAE, SAEConfig
from mistudio.store.feature_store import FeatureStore
from mistudio.testing.tiny_models import build_tiny_model, default_corpus

K = 8
SETTINGS = ExtractionSettings(top_k=4, batch_size=8, feature_chunk=16, logit_k=K, interval_examples=0)


def _random_sae(d_in: int, d_sae: int, hook: str, seed: int, **cfg) -> SAE:
    sae = SAE(SAEConfig(d_in=d_in, d_sae=d_sae, hook_name=hook, **cfg))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae, generator=g) * 0.3)
        sae.W_dec.copy_(torch.randn(d_sae, d_in, generator=g))
        sae.b_enc.copy_(torch.randn(d_sae, generator=g) * 0.1)
    return sae


def _windows(loaded, root):
    (root / "c.txt").write_text("\n\n".join(default_corpus(60, seed=4)))
    return tokenize_windows(load_texts(root / "c.txt"), loaded.tokenizer, context_size=8, n_windows=16)


def _assert_lens(store: FeatureStore, expected: torch.Tensor) -> None:
    """Every feature's stored top/bottom logits equal the brute-force logits `expected [d_sae, vocab]`."""
    for f in range(expected.shape[0]):
        logits = feature_dashboard(store, f)["logits"]
        top = torch.topk(expected[f], K)
        bottom = torch.topk(expected[f], K, largest=False)
        assert [e["token_id"] for e in logits["top_positive"]] == top.indices.tolist()
        assert [e["token_id"] for e in logits["top_negative"]] == bottom.indices.tolist()
        torch.testing.assert_close(torch.tensor([e["value"] for e in logits["top_positive"]]), top.values,
                                   atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    root = tmp_path_factory.mktemp("lens_gpt2")
    loaded = load_model(str(build_tiny_model("gpt2", root / "model")), device="cpu", dtype="float32")
    hf = loaded.model
    W_U = hf.transformer.ln_f.weight.detach()[:, None] * hf.lm_head.weight.detach().T
    W_U = W_U - W_U.mean(0, keepdim=True)  # LayerNorm output is mean-free (TransformerLens fold_ln)
    return root, loaded, _windows(loaded, root), W_U


def test_hook_z_goes_through_w_o(gpt2):
    root, loaded, windows, W_U = gpt2
    sae = _random_sae(64, 24, "blocks.1.attn.hook_z", seed=1)
    store = run_extraction(loaded, sae, windows, root / "z", settings=SETTINGS)
    W_O = loaded.model.transformer.h[1].attn.c_proj.weight.detach()  # Conv1D: [n_heads·d_head, d_model]
    expected = sae.W_dec.detach() @ W_O @ W_U
    _assert_lens(store, expected)
    assert store.manifest["logit_lens"]["basis"] == "attn_z"
    # the residual-basis product (what was stored before) is a different lens for hook_z
    naive = sae.W_dec.detach() @ W_U
    agree = sum(torch.topk(naive[f], K).indices.tolist() == torch.topk(expected[f], K).indices.tolist()
                for f in range(24))
    assert agree < 3


def test_single_head_sae_uses_its_head_slice(gpt2):
    root, loaded, windows, W_U = gpt2
    head, d_head = 2, 16
    sae = _random_sae(d_head, 20, "blocks.0.attn.hook_z", seed=2, hook_head_index=head)
    store = run_extraction(loaded, sae, windows, root / "z_head", settings=SETTINGS)
    W_O = loaded.model.transformer.h[0].attn.c_proj.weight.detach()[head * d_head:(head + 1) * d_head]
    _assert_lens(store, sae.W_dec.detach() @ W_O @ W_U)
    assert store.manifest["logit_lens"]["basis"] == "attn_z_head" and store.manifest["logit_lens"]["head"] == head


def test_residual_hook_uses_w_u(gpt2):
    root, loaded, windows, W_U = gpt2
    sae = _random_sae(64, 16, "blocks.1.hook_resid_post", seed=3)
    store = run_extraction(loaded, sae, windows, root / "resid", settings=SETTINGS)
    _assert_lens(store, sae.W_dec.detach() @ W_U)
    assert store.manifest["logit_lens"]["basis"] == "residual"


def test_mlp_neuron_sae_goes_through_w_out(gpt2):
    """An SAE on the MLP's hidden neurons (the down projection's input): W_dec @ W_out @ W_U."""
    root, loaded, windows, W_U = gpt2
    c_proj = loaded.model.transformer.h[1].mlp.c_proj  # Conv1D: weight [d_mlp, d_model]
    sae = _random_sae(c_proj.weight.shape[0], 16, "blocks.1.mlp.hook_post", seed=7,
                      hf_hook_name="transformer.h.1.mlp.c_proj.input")
    store = run_extraction(loaded, sae, windows, root / "mlp", settings=SETTINGS)
    _assert_lens(store, sae.W_dec.detach() @ c_proj.weight.detach() @ W_U)
    assert store.manifest["logit_lens"]["basis"] == "mlp_out"
    assert store.manifest["logit_lens"]["convention"] == "folded"


def test_query_hook_has_no_logit_lens_and_says_why(gpt2):
    root, loaded, windows, _ = gpt2
    sae = _random_sae(64, 16, "blocks.0.attn.hook_q", seed=4)
    store = run_extraction(loaded, sae, windows, root / "q", settings=SETTINGS)
    assert store.manifest["status"] == "completed" and store.has("logit_lens")
    lens = store.manifest["logit_lens"]
    assert lens["basis"] is None and "query/key/value" in lens["reason"]
    assert feature_dashboard(store, 0)["logits"] == {
        "top_positive": [], "top_negative": [], "histogram": {"bin_edges": [], "counts": []}}


def test_a_failure_after_the_pass_marks_the_manifest_failed(gpt2, monkeypatch):
    root, loaded, windows, _ = gpt2
    sae = _random_sae(64, 16, "blocks.1.hook_resid_post", seed=5)

    def broken(store, sae, *args, **kwargs):
        raise RuntimeError("logit lens exploded")

    monkeypatch.setattr(engine, "write_logit_lens", broken)
    with pytest.raises(RuntimeError, match="exploded"):
        run_extraction(loaded, sae, windows, root / "broken", settings=SETTINGS)
    manifest = FeatureStore.open(root / "broken").manifest
    assert manifest["status"] == "failed" and "logit lens exploded" in manifest["error"]
    monkeypatch.undo()
    store = run_extraction(loaded, sae, windows, root / "broken", settings=SETTINGS)  # a re-run completes it
    assert store.manifest["status"] == "completed" and store.manifest["error"] is None


def test_gemma2_attention_sae_wider_than_d_model(tmp_path):
    """Gemma-2 attention SAEs read hook_z with n_heads·d_head ≠ d_model (2048 vs 2304 in gemma-2-2b)."""
    base = build_tiny_model("gemma2", tmp_path / "base")
    config = AutoConfig.from_pretrained(base)
    config.head_dim = config.query_pre_attn_scalar = 24  # 4 heads × 24 = 96 ≠ d_model 64
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "model")
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path / "model")
    loaded = load_model(str(tmp_path / "model"), device="cpu", dtype="float32")
    assert loaded.n_heads * loaded.d_head == 96 != loaded.d_model
    sae = _random_sae(96, 16, "blocks.1.attn.hook_z", seed=6)
    store = run_extraction(loaded, sae, _windows(loaded, tmp_path), tmp_path / "store", settings=SETTINGS)
    assert store.manifest["status"] == "completed"
    hf = loaded.model
    W_O = hf.model.layers[1].self_attn.o_proj.weight.detach().T  # Linear: weight [d_model, n_heads·d_head]
    W_U = (1.0 + hf.model.norm.weight.detach())[:, None] * hf.lm_head.weight.detach().T
    _assert_lens(store, sae.W_dec.detach() @ W_O @ W_U)

"""An SAE over all heads of hook_z / hook_v trained on a model processed with `fold_value_biases`: the engine's
statistics equal those of the same SAE encoding TransformerLens' own activations of the processed model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformer_lens")
pytestmark = pytest.mark.filterwarnings("ignore:HookedTransformer is deprecated:DeprecationWarning")

from transformer_lens import HookedTransformer, HookedTransformerConfig  # noqa: E402
from transformer_lens import loading_from_pretrained as tl_loading  # noqa: E402

from mistudio.datasets.sources import load_texts  # noqa: E402
from mistudio.datasets.windows import tokenize_windows  # noqa: E402
from mistudio.extraction.engine import ExtractionSettings, run_extraction  # noqa: E402
from mistudio.lm.loading import load_model  # noqa: E402
from mistudio.lm.processing import activation_transform_for  # noqa: E402
from mistudio.saes.model import SAE, SAEConfig  # noqa: E402
from mistudio.testing.tiny_models import build_tiny_model, default_corpus  # noqa: E402

PROCESSING = {"fold_ln": True, "center_writing_weights": True, "fold_value_biases": True}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("value_bias")
    path = build_tiny_model("gpt2", root / "model")
    loaded = load_model(str(path), device="cpu", dtype="float32")
    cfg = tl_loading.convert_hf_model_config(str(path))
    cfg.update(model_name="tiny", tokenizer_name=str(path), init_weights=False, device="cpu", dtype=torch.float32,
               n_devices=1, default_prepend_bos=True, from_checkpoint=False)
    tl_cfg = HookedTransformerConfig.from_dict(cfg)
    tl = HookedTransformer(tl_cfg, move_to_device=False)
    tl.load_and_process_state_dict(tl_loading.get_pretrained_state_dict(str(path), tl_cfg, loaded.model),
                                   center_unembed=False, **PROCESSING)
    (root / "c.txt").write_text("\n\n".join(default_corpus(80, seed=2)))
    windows = tokenize_windows(load_texts(root / "c.txt"), loaded.tokenizer, context_size=10, n_windows=24)
    return root, loaded, tl.eval(), windows


@pytest.mark.parametrize("hook", ["blocks.1.attn.hook_z", "blocks.0.attn.hook_v"])
def test_all_heads_with_folded_value_biases_match_transformer_lens(setup, hook):
    root, loaded, tl, windows = setup
    sae = SAE(SAEConfig(d_in=64, d_sae=32, hook_name=hook, model_from_pretrained_kwargs=PROCESSING))
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(64, 32, generator=g) * 0.5)
        sae.W_dec.copy_(torch.randn(32, 64, generator=g))
        sae.b_enc.copy_(torch.randn(32, generator=g) * 0.2)
    transform = activation_transform_for(sae.cfg, hook, loaded, None)
    store = run_extraction(loaded, sae, windows, root / hook, transform=transform,
                           settings=ExtractionSettings(top_k=4, batch_size=8, feature_chunk=8, interval_examples=0,
                                                       compute_logit_lens=False))
    assert store.manifest["status"] == "completed"

    with torch.no_grad():
        _, cache = tl.run_with_cache(windows.tokens)
        x = cache[hook].flatten(-2)  # TransformerLens' activations of the processed model, [B, C, heads·d_head]
        acts = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc).numpy()
    specials = {loaded.tokenizer.bos_token_id, loaded.tokenizer.eos_token_id, loaded.tokenizer.pad_token_id}
    valid = ~np.isin(windows.tokens.numpy(), list(specials))
    acts = acts[valid]
    stats = store.read_part("statistics")
    np.testing.assert_array_equal(stats["count"].numpy(), (acts > 0).sum(0))
    np.testing.assert_allclose(stats["sum"].numpy(), acts.astype(np.float64).sum(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stats["max"].numpy(), acts.max(0), rtol=1e-4, atol=1e-5)
    # the fold matters: without the transform the statistics differ
    raw = run_extraction(loaded, sae, windows, root / f"{hook}-raw", settings=ExtractionSettings(
        top_k=4, batch_size=8, feature_chunk=8, interval_examples=0, compute_logit_lens=False))
    assert not np.allclose(raw.read_part("statistics")["sum"].numpy(), stats["sum"].numpy(), rtol=1e-3)

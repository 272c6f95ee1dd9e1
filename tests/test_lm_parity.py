"""Parity with TransformerLens (the oracle): captured activations, processed-weight transforms, logit lens.

Each tiny random-weight HF model is loaded into a HookedTransformer through TransformerLens' own config
and weight converters, then compared hook by hook with `run_with_cache`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("transformer_lens")
pytestmark = pytest.mark.filterwarnings("ignore:HookedTransformer is deprecated:DeprecationWarning")

from transformer_lens import HookedTransformer, HookedTransformerConfig  # noqa: E402
from transformer_lens import loading_from_pretrained as tl_loading  # noqa: E402

from mistudio.lm.hooks import LAYER_KINDS, capture_activations, capture_many  # noqa: E402
from mistudio.lm.loading import LoadedModel, load_model  # noqa: E402
from mistudio.lm.processing import activation_transform_for  # noqa: E402
from mistudio.lm.unembed import logit_lens_matrix, unembedding  # noqa: E402
from mistudio.testing.tiny_models import build_tiny_model  # noqa: E402

FAMILIES = ["gpt2", "pythia", "llama", "gemma2", "gemma", "mistral", "qwen2"]
# TransformerLens only builds Gemma configs from official names: start from one, then shrink it.
_GEMMA_TEMPLATE = {"gemma2": "google/gemma-2-2b", "gemma": "google/gemma-2b"}
PROCESSINGS = [
    {"center_writing_weights": True},
    {"fold_value_biases": True},
    {"fold_ln": True, "center_writing_weights": True, "center_unembed": True, "fold_value_biases": True},
]
ATOL = 1e-5


def _tl_config(path: Path, hf_config) -> HookedTransformerConfig:
    """TransformerLens' own config for the tiny model (path must not contain 'llama'/'gemma')."""
    family = hf_config.model_type
    if family in _GEMMA_TEMPLATE:
        cfg = tl_loading.convert_hf_model_config(_GEMMA_TEMPLATE[family])
        n_kv = hf_config.num_key_value_heads
        cfg.update(
            d_model=hf_config.hidden_size, d_head=hf_config.head_dim, rotary_dim=hf_config.head_dim,
            n_heads=hf_config.num_attention_heads, d_mlp=hf_config.intermediate_size,
            n_layers=hf_config.num_hidden_layers, n_ctx=hf_config.max_position_embeddings,
            eps=hf_config.rms_norm_eps, d_vocab=hf_config.vocab_size,
            n_key_value_heads=n_kv if n_kv != hf_config.num_attention_heads else None,
        )
        if family == "gemma2":
            cfg.update(window_size=hf_config.sliding_window,
                       attn_types=["local", "global"] * (hf_config.num_hidden_layers // 2))
        else:
            # TransformerLens uses exact GELU for Gemma 1; HF (and the real model) use the tanh approximation.
            cfg["act_fn"] = "gelu_pytorch_tanh"
    else:
        cfg = tl_loading.convert_hf_model_config(str(path))
    cfg.update(model_name="tiny", tokenizer_name=str(path), init_weights=False, device="cpu",
               dtype=torch.float32, n_devices=1, default_prepend_bos=True, from_checkpoint=False)
    return HookedTransformerConfig.from_dict(cfg)


def tl_model(path: Path, loaded: LoadedModel, **processing: bool) -> HookedTransformer:
    """A HookedTransformer with the same weights, processed like `from_pretrained_no_processing(**processing)`."""
    cfg = _tl_config(path, loaded.model.config)
    state_dict = tl_loading.get_pretrained_state_dict(str(path), cfg, loaded.model)
    model = HookedTransformer(cfg, move_to_device=False)
    flags = dict(fold_ln=False, center_writing_weights=False, center_unembed=False, fold_value_biases=False)
    flags.update(processing)
    model.load_and_process_state_dict(state_dict, **flags)
    return model.eval()


@pytest.fixture(scope="module", params=FAMILIES)
def family_setup(request, tmp_path_factory):
    family = request.param
    path = build_tiny_model(family, tmp_path_factory.mktemp("tiny") / "model", n_layers=2, d_model=64)
    loaded = load_model(path, device="cpu", dtype="float32")
    ids = torch.randint(0, loaded.vocab_size, (2, 9), generator=torch.Generator().manual_seed(1))
    names = ["hook_embed"] + [
        f"blocks.{layer}.{kind}"
        for layer in range(loaded.n_layers)
        for kind in LAYER_KINDS
        if not (family == "pythia" and kind == "hook_resid_mid")  # parallel attention + MLP
    ]
    ours = capture_many(loaded, ids, None, names)
    return family, path, loaded, ids, names, ours


def test_every_hook_matches_transformer_lens(family_setup):
    family, path, loaded, ids, names, ours = family_setup
    model = tl_model(path, loaded)
    _, cache = model.run_with_cache(ids)
    for name in names:
        assert ours[name].shape == cache[name].shape, name
        torch.testing.assert_close(ours[name], cache[name], atol=ATOL, rtol=0, msg=name)
    # the two implementations are the same model end to end
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(ids).logits, model(ids), atol=1e-4, rtol=0)


def test_grouped_query_shapes_follow_transformer_lens(family_setup):
    family, _, loaded, _, _, ours = family_setup
    assert ours["blocks.0.attn.hook_q"].shape[-2:] == (loaded.n_heads, loaded.d_head)
    assert ours["blocks.0.attn.hook_k"].shape[-2] == loaded.n_kv_heads
    assert ours["blocks.0.attn.hook_z"].shape[-2] == loaded.n_heads
    if family in ("llama", "gemma2", "gemma", "qwen2"):
        assert loaded.n_kv_heads < loaded.n_heads


@pytest.mark.parametrize("processing", PROCESSINGS, ids=lambda p: "+".join(sorted(p)))
def test_processed_activations_match_transformer_lens(family_setup, processing):
    family, path, loaded, ids, names, ours = family_setup
    _, cache = tl_model(path, loaded, **processing).run_with_cache(ids)
    sae_cfg = {"model_from_pretrained_kwargs": processing}
    for name in names:
        transformed = activation_transform_for(sae_cfg, name, loaded)(ours[name])
        torch.testing.assert_close(transformed, cache[name], atol=ATOL, rtol=0, msg=name)
    # per-head selection goes through the same transform
    name = "blocks.1.attn.hook_z"
    for head in (0, loaded.n_heads - 1):
        acts = capture_activations(loaded, ids, None, name, head_index=head)
        transformed = activation_transform_for(sae_cfg, name, loaded, head_index=head)(acts)
        torch.testing.assert_close(transformed, cache[name][:, :, head], atol=ATOL, rtol=0)


def test_centering_is_visible_only_where_transformer_lens_applies_it(family_setup):
    family, _, loaded, _, _, ours = family_setup
    transform = activation_transform_for({"center_writing_weights": True}, "blocks.0.hook_resid_post", loaded)
    changed = not torch.equal(transform(ours["blocks.0.hook_resid_post"]), ours["blocks.0.hook_resid_post"])
    assert changed == (family in ("gpt2", "pythia"))  # TransformerLens skips RMSNorm models


@pytest.mark.parametrize("center_unembed", [False, True])
def test_logit_lens_matrix_matches_folded_w_u(family_setup, center_unembed):
    family, path, loaded, *_ = family_setup
    model = tl_model(path, loaded, fold_ln=True, center_writing_weights=True, center_unembed=center_unembed)
    ours = logit_lens_matrix(loaded, center_unembed=center_unembed)
    torch.testing.assert_close(ours, model.W_U, atol=1e-6, rtol=0)
    # so an SAE decoder gets identical logit-lens logits
    W_dec = torch.randn(5, loaded.d_model, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(W_dec @ ours, W_dec @ model.W_U, atol=1e-5, rtol=0)
    raw = unembedding(loaded)
    torch.testing.assert_close(raw.W_U, loaded.model.get_output_embeddings().weight.T)

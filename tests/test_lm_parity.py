"""Parity with TransformerLens (the oracle): captured activations, processed-weight transforms, logit lens.

Each tiny random-weight HF model is loaded into a HookedTransformer through TransformerLens' own config
and weight converters, then compared hook by hook with `run_with_cache`. Families TransformerLens'
HookedTransformer does not support (Qwen3-MoE, Qwen3.5, Qwen3-Next) are checked against the HF modules
themselves in tests/test_lm_hooks.py.
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

FAMILIES = ["gpt2", "pythia", "llama", "gemma2", "gemma", "mistral", "qwen2", "llama3", "gemma3",
            "gemma3_multimodal", "qwen3", "gpt_oss"]
# TransformerLens only builds Gemma configs from official names: start from one, then shrink it.
_GEMMA_TEMPLATE = {"gemma2": "google/gemma-2-2b", "gemma": "google/gemma-2b",
                   "gemma3_text": "google/gemma-3-270m", "gemma3": "google/gemma-3-4b-pt"}
_GEMMA_FAMILIES = {"gemma", "gemma2", "gemma3_text", "gemma3"}
# Hooks HookedTransformer does not have (checked against TransformerLens-derived values below).
_NOT_IN_TRANSFORMER_LENS = {"mlp.hook_in", "mlp.hook_out"}
PROCESSINGS = [
    {"center_writing_weights": True},
    {"fold_value_biases": True},
    {"fold_ln": True, "center_writing_weights": True, "center_unembed": True, "fold_value_biases": True},
]
ATOL = 1e-5


def _gemma_tl_config(family: str, hf_config) -> dict:
    text = hf_config.get_text_config()
    cfg = tl_loading.convert_hf_model_config(_GEMMA_TEMPLATE[family])
    n_kv = text.num_key_value_heads
    cfg.update(
        d_model=text.hidden_size, d_head=text.head_dim, rotary_dim=text.head_dim,
        n_heads=text.num_attention_heads, d_mlp=text.intermediate_size,
        n_layers=text.num_hidden_layers, n_ctx=text.max_position_embeddings,
        eps=text.rms_norm_eps, d_vocab=text.vocab_size,
        n_key_value_heads=n_kv if n_kv != text.num_attention_heads else None,
    )
    if family == "gemma":
        # TransformerLens uses exact GELU for Gemma 1; HF (and the real model) use the tanh approximation.
        cfg["act_fn"] = "gelu_pytorch_tanh"
    else:
        cfg.update(window_size=text.sliding_window,
                   attn_types=["local" if t == "sliding_attention" else "global" for t in text.layer_types])
    if family in ("gemma3_text", "gemma3"):
        rope = text.rope_parameters
        cfg.update(rotary_base=rope["full_attention"]["rope_theta"],
                   rotary_base_local=rope["sliding_attention"]["rope_theta"])
        assert cfg.get("rotary_scaling_factor", 1.0) == rope["full_attention"].get("factor", 1.0)
    return cfg


def _tl_config(path: Path, hf_config) -> HookedTransformerConfig:
    """TransformerLens' own config for the tiny model (path must not contain 'llama'/'gemma')."""
    family = hf_config.model_type
    if family in _GEMMA_FAMILIES:
        cfg = _gemma_tl_config(family, hf_config)
    else:
        cfg = tl_loading.convert_hf_model_config(str(path))
    cfg.update(model_name="tiny", tokenizer_name=str(path), init_weights=False, device="cpu",
               dtype=torch.float32, n_devices=1, default_prepend_bos=True, from_checkpoint=False,
               use_hook_mlp_in=True)
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


@pytest.fixture(scope="module")
def tl_unprocessed(family_setup):
    family, path, loaded, ids, *_ = family_setup
    model = tl_model(path, loaded)
    _, cache = model.run_with_cache(ids)
    return model, cache


def test_every_hook_matches_transformer_lens(family_setup, tl_unprocessed):
    family, path, loaded, ids, names, ours = family_setup
    model, cache = tl_unprocessed
    for name in names:
        if name.split(".", 2)[-1] in _NOT_IN_TRANSFORMER_LENS:
            continue
        assert ours[name].shape == cache[name].shape, name
        torch.testing.assert_close(ours[name], cache[name], atol=ATOL, rtol=0, msg=name)
    # the two implementations are the same model end to end
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(ids).logits, model(ids), atol=1e-4, rtol=0)


def test_mlp_module_input_and_output(family_setup, tl_unprocessed):
    """`blocks.L.mlp.hook_in` (TransformerBridge's name) = TransformerLens' ln2.hook_normalized · w (+ b)."""
    family, _, loaded, _, _, ours = family_setup
    model, cache = tl_unprocessed
    for layer in range(loaded.n_layers):
        ln2 = model.blocks[layer].ln2
        expected = cache[f"blocks.{layer}.ln2.hook_normalized"] * ln2.w
        if hasattr(ln2, "b"):
            expected = expected + ln2.b
        torch.testing.assert_close(ours[f"blocks.{layer}.mlp.hook_in"], expected, atol=ATOL, rtol=0)
        # the MLP module's output is hook_mlp_out, except where a post-MLP norm follows (Gemma 2/3)
        mlp_out = cache[f"blocks.{layer}.hook_mlp_out"]
        if family in ("gemma2", "gemma3", "gemma3_multimodal"):
            ln2_post = model.blocks[layer].ln2_post
            normalized = ours[f"blocks.{layer}.mlp.hook_out"] / (
                ours[f"blocks.{layer}.mlp.hook_out"].pow(2).mean(-1, keepdim=True) + ln2_post.eps).sqrt()
            torch.testing.assert_close(normalized * ln2_post.w, mlp_out, atol=ATOL, rtol=0)
        else:
            torch.testing.assert_close(ours[f"blocks.{layer}.mlp.hook_out"], mlp_out, atol=ATOL, rtol=0)


def test_hook_mlp_in_is_the_residual_before_ln2(family_setup):
    """TransformerLens' hook_mlp_in is the MLP branch's residual input: resid_mid (parallel: resid_pre)."""
    family, _, loaded, _, _, ours = family_setup
    before = "hook_resid_pre" if family == "pythia" else "hook_resid_mid"
    for layer in range(loaded.n_layers):
        torch.testing.assert_close(ours[f"blocks.{layer}.hook_mlp_in"], ours[f"blocks.{layer}.{before}"])


# SAELens's hf_hook_name of each Gemma Scope 2 site → the TransformerLens hook it reads.
GEMMA_SCOPE_2_PATHS = {
    "model.layers.{L}.output": "blocks.{L}.hook_resid_post",
    "model.layers.{L}.post_feedforward_layernorm.output": "blocks.{L}.hook_mlp_out",
    "model.layers.{L}.self_attn.o_proj.input": "blocks.{L}.attn.hook_z",
}


@pytest.mark.parametrize("family_setup", ["gemma3", "gemma3_multimodal", "gemma2"], indirect=True)
def test_gemma_scope_2_hf_paths_read_the_same_tensors(family_setup, tl_unprocessed):
    """On the multimodal Gemma 3 the text-only paths SAELens records resolve into its language model."""
    family, _, loaded, ids, _, ours = family_setup
    model, cache = tl_unprocessed
    for layer in range(loaded.n_layers):
        paths = {path.format(L=layer): hook.format(L=layer) for path, hook in GEMMA_SCOPE_2_PATHS.items()}
        transcoder_in = f"model.layers.{layer}.pre_feedforward_layernorm.output"
        acts = capture_many(loaded, ids, None, [*paths, transcoder_in])
        for path, hook in paths.items():
            expected = cache[hook].flatten(-2) if hook.endswith("hook_z") else cache[hook]
            torch.testing.assert_close(acts[path], expected, atol=ATOL, rtol=0, msg=path)
        ln2 = model.blocks[layer].ln2
        torch.testing.assert_close(acts[transcoder_in], cache[f"blocks.{layer}.ln2.hook_normalized"] * ln2.w,
                                   atol=ATOL, rtol=0)
        torch.testing.assert_close(acts[transcoder_in], ours[f"blocks.{layer}.mlp.hook_in"])


@pytest.mark.parametrize("family_setup", ["gemma", "gemma2", "gemma3", "gemma3_multimodal"], indirect=True)
def test_gemma_embedding_includes_the_sqrt_d_model_scale(family_setup, tl_unprocessed):
    family, _, loaded, ids, _, ours = family_setup
    _, cache = tl_unprocessed
    torch.testing.assert_close(ours["hook_embed"], cache["hook_embed"], atol=ATOL, rtol=0)
    raw = loaded.model.get_input_embeddings().weight[ids]
    torch.testing.assert_close(ours["hook_embed"], raw * loaded.d_model**0.5, atol=ATOL, rtol=0)


@pytest.mark.parametrize("family_setup", ["llama3"], indirect=True)
def test_llama3_rope_scaling_is_applied_by_both(family_setup, tl_unprocessed):
    """The tiny Llama 3 has `rope_scaling: {rope_type: llama3}` + `rope_theta` in config.json, as on the Hub."""
    family, path, loaded, *_ = family_setup
    assert (path / "config.json").read_text().count('"rope_scaling"') == 1
    model, _ = tl_unprocessed
    assert loaded.model.config.rope_parameters["rope_type"] == "llama3"
    assert model.cfg.use_NTK_by_parts_rope and model.cfg.NTK_by_parts_factor == 8.0


def test_grouped_query_shapes_follow_transformer_lens(family_setup):
    family, _, loaded, _, _, ours = family_setup
    assert ours["blocks.0.attn.hook_q"].shape[-2:] == (loaded.n_heads, loaded.d_head)
    assert ours["blocks.0.attn.hook_k"].shape[-2] == loaded.n_kv_heads
    assert ours["blocks.0.attn.hook_z"].shape[-2] == loaded.n_heads
    if family not in ("gpt2", "pythia"):
        assert loaded.n_kv_heads < loaded.n_heads


@pytest.mark.parametrize("processing", PROCESSINGS, ids=lambda p: "+".join(sorted(p)))
def test_processed_activations_match_transformer_lens(family_setup, processing):
    family, path, loaded, ids, names, ours = family_setup
    if family == "gpt_oss" and processing.get("fold_value_biases"):
        # With attention sinks a head's pattern sums to less than 1, so moving b_V into b_O changes the model:
        # TransformerLens' fold_value_biases is no longer an equivalence there (gpt-oss SAEs are trained on the
        # HF model, unprocessed).
        pytest.skip("fold_value_biases is not an equivalence with attention sinks")
    _, cache = tl_model(path, loaded, **processing).run_with_cache(ids)
    sae_cfg = {"model_from_pretrained_kwargs": processing}
    for name in names:
        if name.split(".", 2)[-1] in _NOT_IN_TRANSFORMER_LENS:
            continue
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

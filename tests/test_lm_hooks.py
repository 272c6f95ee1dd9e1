"""Hook resolution, activation capture (stop at the hook layer, padding), model loading and model names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import OPTConfig, OPTForCausalLM

from mistudio.errors import HubUnreachableError, InvalidInputError, NotFoundError
from mistudio.lm import names
from mistudio.lm.hooks import block_module, capture_activations, capture_many, parse_hook_name, resolve_hook
from mistudio.lm.loading import load_model, model_load_kwargs, pick_device, pick_dtype
from mistudio.lm.processing import activation_transform_for
from mistudio.lm.unembed import logit_lens_matrix
from mistudio.settings import reset_settings
from mistudio.testing.tiny_models import build_tiny_model


@pytest.fixture(scope="module", params=["gpt2", "llama", "gemma2"])
def loaded(request, tmp_path_factory):
    path = build_tiny_model(request.param, tmp_path_factory.mktemp("tiny") / "model", n_layers=3, d_model=32)
    return load_model(path, device="cpu", dtype="float32")


@pytest.fixture()
def ids(loaded):
    return torch.randint(0, loaded.vocab_size, (3, 7), generator=torch.Generator().manual_seed(0))


def test_parse_hook_name():
    assert parse_hook_name("blocks.12.hook_resid_post") == (12, "hook_resid_post")
    assert parse_hook_name("blocks.0.attn.hook_z") == (0, "attn.hook_z")
    assert parse_hook_name("hook_embed") == (None, "hook_embed")


@pytest.mark.parametrize(
    "name, needle",
    [
        ("blocks.9.hook_resid_post", "layers 0..2"),
        ("blocks.0.ln2.hook_scale", "hook_resid_pre"),
        ("blocks.x.hook_resid_post", "blocks.<layer>.<kind>"),
        ("resid_post", "blocks.<layer>.<kind>"),
    ],
)
def test_invalid_hook_names_say_what_is_valid(loaded, name, needle):
    with pytest.raises(InvalidInputError, match=r".*") as info:
        resolve_hook(loaded, name)
    assert needle in str(info.value)


def test_resid_post_equals_hidden_states(loaded, ids):
    """An independent oracle: HF's own output_hidden_states (index L+1 is the output of block L)."""
    with torch.inference_mode():
        hidden = loaded.model(ids, output_hidden_states=True).hidden_states
    for layer in range(loaded.n_layers - 1):  # the last entry is after the final norm in HF
        ours = capture_activations(loaded, ids, None, f"blocks.{layer}.hook_resid_post")
        torch.testing.assert_close(ours, hidden[layer + 1])
        ours = capture_activations(loaded, ids, None, f"blocks.{layer}.hook_resid_pre")
        torch.testing.assert_close(ours, hidden[layer])


@pytest.mark.parametrize("hook", ["blocks.1.hook_resid_post", "blocks.1.attn.hook_q", "blocks.1.hook_resid_pre"])
def test_forward_stops_at_the_hook_layer(loaded, ids, hook):
    layer, _ = parse_hook_name(hook)
    before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in loaded.model.modules())
    fired: list[str] = []
    handles = [
        block_module(loaded, later).register_forward_pre_hook(lambda *a, i=later: fired.append(f"block{i}"))
        for later in range(layer + 1, loaded.n_layers)
    ]
    handles.append(loaded.model.get_output_embeddings().register_forward_hook(lambda *a: fired.append("head")))
    try:
        acts = capture_activations(loaded, ids, None, hook)
    finally:
        for handle in handles:
            handle.remove()
    assert acts.shape[:2] == ids.shape
    assert fired == []
    after = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in loaded.model.modules())
    assert after == before  # our hooks are removed


def test_capture_works_under_inference_mode_and_batches_match_rows(loaded, ids):
    with torch.inference_mode():
        batched = capture_activations(loaded, ids, None, "blocks.2.hook_mlp_out")
    single = capture_activations(loaded, ids[1:2], None, "blocks.2.hook_mlp_out")
    torch.testing.assert_close(batched[1:2], single, atol=1e-5, rtol=0)


def _assert_padding_matches_unpadded_rows(loaded, side: str, hooks: tuple[str, ...], seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    short = torch.randint(3, loaded.vocab_size, (1, 4), generator=gen)
    long = torch.randint(3, loaded.vocab_size, (1, 7), generator=gen)
    pad = torch.full((1, 3), loaded.tokenizer.pad_token_id)
    padded = torch.cat([pad, short], 1) if side == "left" else torch.cat([short, pad], 1)
    mask = torch.ones(2, 7, dtype=torch.long)
    if side == "left":
        mask[0, :3] = 0
    else:
        mask[0, 4:] = 0
    batch = torch.cat([padded, long], 0)
    for hook in hooks:
        acts = capture_activations(loaded, batch, mask, hook)
        alone = capture_activations(loaded, short, None, hook)
        real = acts[0, 3:] if side == "left" else acts[0, :4]
        torch.testing.assert_close(real, alone[0], atol=1e-5, rtol=0, msg=hook)
        torch.testing.assert_close(acts[1:], capture_activations(loaded, long, None, hook), atol=1e-5, rtol=0)


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_matches_unpadded_rows(loaded, side):
    _assert_padding_matches_unpadded_rows(loaded, side, ("blocks.2.hook_resid_post", "blocks.1.attn.hook_z"), 3)


def test_head_index(loaded, ids):
    full = capture_activations(loaded, ids, None, "blocks.0.attn.hook_z")
    assert full.shape == (*ids.shape, loaded.n_heads, loaded.d_head)
    one = capture_activations(loaded, ids, None, "blocks.0.attn.hook_z", head_index=2)
    torch.testing.assert_close(one, full[:, :, 2])
    with pytest.raises(InvalidInputError, match="out of range"):
        capture_activations(loaded, ids, None, "blocks.0.attn.hook_z", head_index=loaded.n_heads)
    with pytest.raises(InvalidInputError, match="per-head"):
        capture_activations(loaded, ids, None, "blocks.0.hook_resid_post", head_index=0)


def test_capture_many_returns_every_hook(loaded, ids):
    names = ["hook_embed", "blocks.0.hook_resid_post", "blocks.2.attn.hook_v"]
    acts = capture_many(loaded, ids, None, names)
    assert set(acts) == set(names)
    torch.testing.assert_close(acts["blocks.0.hook_resid_post"],
                               capture_activations(loaded, ids, None, "blocks.0.hook_resid_post"))


def test_refactored_attention_is_refused(loaded):
    cfg = {"model_from_pretrained_kwargs": {"refactor_factored_attn_matrices": True}}
    with pytest.raises(InvalidInputError, match="refactor_factored_attn_matrices"):
        activation_transform_for(cfg, "blocks.0.attn.hook_z", loaded)
    x = torch.randn(2, 3, loaded.d_model)
    assert torch.equal(activation_transform_for(cfg, "blocks.0.hook_resid_post", loaded)(x), x)


def test_loaded_model_facts(loaded):
    assert loaded.model.training is False
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert loaded.dtype == torch.float32 and loaded.device == torch.device("cpu")
    assert (loaded.n_layers, loaded.d_model, loaded.vocab_size) == (3, 32, 512)
    assert (loaded.n_heads, loaded.d_head) == (4, 8)
    assert loaded.n_kv_heads == (4 if loaded.family == "gpt2" else 2)


def test_missing_folder_and_unsupported_family(tmp_path: Path):
    with pytest.raises(NotFoundError, match="No model folder"):
        load_model(tmp_path / "nope")
    with pytest.raises(NotFoundError):
        load_model("./not/a/model")
    opt = tmp_path / "opt"
    OPTForCausalLM(OPTConfig(hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2,
                             vocab_size=64, word_embed_proj_dim=16)).save_pretrained(opt)
    with pytest.raises(InvalidInputError, match="'opt' model, which miStudio cannot hook.*families are gpt2"):
        load_model(opt)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="not a HuggingFace model folder"):
        load_model(tmp_path / "empty")


def test_offline_without_cache_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reset_settings()
    with pytest.raises(HubUnreachableError, match="not in the local HuggingFace cache"):
        load_model("mistudio-test/definitely-not-cached-model")


def test_device_and_dtype_choice(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("MISTUDIO_DEVICE", "cpu")
    reset_settings()
    assert pick_device() == torch.device("cpu")
    assert pick_dtype(None, torch.device("cpu")) == torch.float32
    assert pick_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(InvalidInputError, match="Unknown dtype"):
        pick_dtype("float7", torch.device("cpu"))
    with pytest.raises(InvalidInputError, match="Unknown device"):
        pick_device("toaster")


NAMES = [
    ("gpt2-small", "gpt2"),
    ("gpt2-medium", "gpt2-medium"),
    ("pythia-70m-deduped", "EleutherAI/pythia-70m-deduped"),
    ("gemma-2-2b", "google/gemma-2-2b"),
    ("gemma-2-9b-it", "google/gemma-2-9b-it"),
    ("gemma-2b", "google/gemma-2b"),
    ("mistral-7b", "mistralai/Mistral-7B-v0.1"),
    ("qwen2-0.5b", "Qwen/Qwen2-0.5B"),
    ("qwen2.5-7b", "Qwen/Qwen2.5-7B"),
    ("qwen3-0.6b", "Qwen/Qwen3-0.6B"),
    ("qwen3-14b", "Qwen/Qwen3-14B"),
    ("gemma-3-1b-pt", "google/gemma-3-1b-pt"),
    ("gemma-3-270m", "google/gemma-3-270m"),
    ("gemma-3-27b-it", "google/gemma-3-27b-it"),
    ("gpt-oss-20b", "openai/gpt-oss-20b"),
]
# Registry `model` values that already are Hub ids: unchanged both ways.
HUB_IDS = ["meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.3-70B-Instruct",
           "deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "Qwen/Qwen3.5-2B-Base", "Qwen/Qwen3.5-35B-A3B-Base", "Qwen/Qwen3-30B-A3B-Base"]


@pytest.mark.parametrize("use_transformer_lens_table", [True, False])
def test_model_names_round_trip(monkeypatch, use_transformer_lens_table):
    if use_transformer_lens_table:
        pytest.importorskip("transformer_lens")
    else:
        monkeypatch.setattr(names, "_transformer_lens_tables", lambda: None)
    for tl_name, hf_id in NAMES:
        assert names.hf_id_for(tl_name) == hf_id
        assert names.tl_name_for(hf_id) == tl_name
    for hf_id in HUB_IDS:
        assert names.hf_id_for(hf_id) == hf_id
        assert names.tl_name_for(hf_id) == hf_id
    assert names.hf_id_for("google/gemma-3-4b-pt") == "google/gemma-3-4b-pt"
    assert names.hf_id_for("https://huggingface.co/google/gemma-2-2b") == "google/gemma-2-2b"
    # dictionary_learning configs keep only the repo name: the organisation is restored as the Hub spells it
    for hf_id in ("openai/gpt-oss-20b", "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen3-8B-Base", "Qwen/Qwen3.5-2B-Base",
                  "meta-llama/Llama-3.1-8B", "meta-llama/Meta-Llama-3-8B-Instruct",
                  "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"):
        assert names.hf_id_for(hf_id.split("/")[1]) == hf_id


# --- newer families, checked against the HF modules themselves ---------------------------------------------
# Where each hook reads, written out per family independently of lm.hooks (layer prefix, modules).
_TEXT = "model.layers.{L}"
_GEMMA3_MM = "model.language_model.layers.{L}"
HF_SITES = {
    "qwen3": (_TEXT, "post_attention_layernorm", "self_attn", "mlp"),
    "qwen3_moe": (_TEXT, "post_attention_layernorm", "self_attn", "mlp"),
    "gpt_oss": (_TEXT, "post_attention_layernorm", "self_attn", "mlp"),
    "llama3": (_TEXT, "post_attention_layernorm", "self_attn", "mlp"),
    "qwen3_5": (_TEXT, "post_attention_layernorm", "self_attn|linear_attn", "mlp"),
    "qwen3_5_moe": (_TEXT, "post_attention_layernorm", "self_attn|linear_attn", "mlp"),
    "qwen3_next": (_TEXT, "post_attention_layernorm", "self_attn|linear_attn", "mlp"),
    "gemma3": (_TEXT, "pre_feedforward_layernorm", "post_attention_layernorm", "post_feedforward_layernorm"),
    "gemma3_multimodal": (_GEMMA3_MM, "pre_feedforward_layernorm", "post_attention_layernorm",
                          "post_feedforward_layernorm"),
}
NEW_FAMILIES = list(HF_SITES)
HYBRID = {"qwen3_5", "qwen3_5_moe", "qwen3_next"}  # layer 0 linear attention, layer 1 full attention


@pytest.fixture(scope="module", params=NEW_FAMILIES)
def new_family(request, tmp_path_factory):
    family = request.param
    path = build_tiny_model(family, tmp_path_factory.mktemp("tiny") / "model", n_layers=2, d_model=32)
    return family, load_model(path, device="cpu", dtype="float32")


def _record(model, sites):
    """Forward hooks on the named modules (path, "input"|"output"), returning what each saw on one forward."""
    seen: dict[tuple[str, str], torch.Tensor] = {}
    handles = []
    for path, side in sites:
        module = model.get_submodule(path)
        if side == "input":
            def pre(_m, args, kwargs, key=(path, side)):
                seen[key] = args[0] if args else kwargs["hidden_states"]
            handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        else:
            def post(_m, _args, out, key=(path, side)):
                seen[key] = out[0] if isinstance(out, tuple) else out
            handles.append(module.register_forward_hook(post))
    return seen, handles


def test_new_families_match_their_hf_modules(new_family):
    family, loaded = new_family
    prefix, mid_norm, attn, mlp_out = HF_SITES[family]
    ids = torch.randint(0, loaded.vocab_size, (2, 6), generator=torch.Generator().manual_seed(5))
    names = ["hook_embed"] + [f"blocks.{layer}.{kind}" for layer in range(2) for kind in (
        "hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_in", "hook_mlp_out",
        "mlp.hook_in", "mlp.hook_out", "ln2.hook_normalized")]
    ours = capture_many(loaded, ids, None, names)
    sites = []
    for layer in range(2):
        block = prefix.format(L=layer)
        attn_path = attn.split("|")[1] if family in HYBRID and layer == 0 else attn.split("|")[0]
        sites += [(block, "input"), (block, "output"), (f"{block}.{mid_norm}", "input"),
                  (f"{block}.{attn_path}", "output"), (f"{block}.{mlp_out}", "output"),
                  (f"{block}.mlp", "input"), (f"{block}.mlp", "output")]
    embed = "model.language_model.embed_tokens" if family == "gemma3_multimodal" else "model.embed_tokens"
    seen, handles = _record(loaded.model, [*sites, (embed, "output")])
    try:
        with torch.inference_mode():
            logits = loaded.model(ids).logits
    finally:
        for handle in handles:
            handle.remove()
    torch.testing.assert_close(ours["hook_embed"], seen[(embed, "output")])
    for layer in range(2):
        block = prefix.format(L=layer)
        attn_path = attn.split("|")[1] if family in HYBRID and layer == 0 else attn.split("|")[0]
        hook = f"blocks.{layer}."
        torch.testing.assert_close(ours[hook + "hook_resid_pre"], seen[(block, "input")])
        torch.testing.assert_close(ours[hook + "hook_resid_post"], seen[(block, "output")])
        torch.testing.assert_close(ours[hook + "hook_resid_mid"], seen[(f"{block}.{mid_norm}", "input")])
        torch.testing.assert_close(ours[hook + "hook_mlp_in"], seen[(f"{block}.{mid_norm}", "input")])
        torch.testing.assert_close(ours[hook + "hook_attn_out"], seen[(f"{block}.{attn_path}", "output")])
        torch.testing.assert_close(ours[hook + "hook_mlp_out"], seen[(f"{block}.{mlp_out}", "output")])
        torch.testing.assert_close(ours[hook + "mlp.hook_in"], seen[(f"{block}.mlp", "input")])
        torch.testing.assert_close(ours[hook + "mlp.hook_out"], seen[(f"{block}.mlp", "output")])
        # the residual stream adds up: pre + attn = mid, mid + mlp = post
        torch.testing.assert_close(ours[hook + "hook_resid_pre"] + ours[hook + "hook_attn_out"],
                                   ours[hook + "hook_resid_mid"], atol=1e-5, rtol=0)
        torch.testing.assert_close(ours[hook + "hook_resid_mid"] + ours[hook + "hook_mlp_out"],
                                   ours[hook + "hook_resid_post"], atol=1e-5, rtol=0)
        # ln2.hook_normalized, gain applied, is the MLP's input
        norm = loaded.model.get_submodule(f"{block}.{mid_norm}")
        gain = norm.weight + 1 if family.startswith(("gemma3", "qwen3_5", "qwen3_next")) else norm.weight
        torch.testing.assert_close(ours[hook + "ln2.hook_normalized"] * gain, ours[hook + "mlp.hook_in"],
                                   atol=1e-5, rtol=0)
    # the logit lens reads the final norm's gain correctly: norm(x) @ W_U == (x / rms(x)) @ folded W_U
    final = ours["blocks.1.hook_resid_post"]
    eps = loaded.model.config.get_text_config().rms_norm_eps
    normalized = final / (final.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    torch.testing.assert_close(normalized @ logit_lens_matrix(loaded), logits, atol=1e-4, rtol=0)


def test_new_families_per_head_hooks(new_family):
    family, loaded = new_family
    ids = torch.randint(0, loaded.vocab_size, (1, 5), generator=torch.Generator().manual_seed(6))
    layer = 1  # a full-attention layer in every family
    block = f"{HF_SITES[family][0].format(L=layer)}.self_attn"
    seen, handles = _record(loaded.model, [(f"{block}.q_proj", "output"), (f"{block}.k_proj", "output"),
                                           (f"{block}.v_proj", "output"), (f"{block}.o_proj", "input")])
    try:
        with torch.inference_mode():
            loaded.model(ids)
    finally:
        for handle in handles:
            handle.remove()
    ours = capture_many(loaded, ids, None, [f"blocks.{layer}.attn.hook_{x}" for x in "qkvz"])
    q = seen[(f"{block}.q_proj", "output")].reshape(1, 5, loaded.n_heads, -1)
    if family in HYBRID:  # the q projection holds [query | output gate] per head
        q = q[..., : loaded.d_head]
    torch.testing.assert_close(ours[f"blocks.{layer}.attn.hook_q"], q)
    kv_shape = (1, 5, loaded.n_kv_heads, loaded.d_head)
    for x in "kv":
        expected = seen[(f"{block}.{x}_proj", "output")].reshape(kv_shape)
        torch.testing.assert_close(ours[f"blocks.{layer}.attn.hook_{x}"], expected)
    z = ours[f"blocks.{layer}.attn.hook_z"].flatten(-2)
    torch.testing.assert_close(z, seen[(f"{block}.o_proj", "input")])
    if family in HYBRID:
        with pytest.raises(InvalidInputError, match="linear-attention layer.*full-attention layers \\(1\\)"):
            resolve_hook(loaded, "blocks.0.attn.hook_q")


@pytest.fixture(scope="module")
def gemma3_multimodal(tmp_path_factory):
    path = build_tiny_model("gemma3_multimodal", tmp_path_factory.mktemp("tiny") / "m", n_layers=2, d_model=32)
    return load_model(path, device="cpu", dtype="float32")


def test_hf_paths_resolve_in_the_multimodal_gemma3_language_model(gemma3_multimodal):
    loaded = gemma3_multimodal
    ids = torch.randint(0, loaded.vocab_size, (2, 5), generator=torch.Generator().manual_seed(7))
    spellings = {
        "model.layers.1.pre_feedforward_layernorm.output": "blocks.1.mlp.hook_in",  # as SAELens records it
        "model.language_model.layers.1.output": "blocks.1.hook_resid_post",  # the model's own path
        "language_model.model.layers.0.self_attn.o_proj.input": "blocks.0.attn.hook_z",  # transformers 4
        "model.layers.0": "blocks.0.hook_resid_post",  # a bare path (as Qwen Scope records it) is the output
        "model.embed_tokens.output": "hook_embed",
    }
    acts = capture_many(loaded, ids, None, [*spellings, *spellings.values()])
    for path, hook in spellings.items():
        expected = acts[hook].flatten(-2) if hook.endswith("hook_z") else acts[hook]
        torch.testing.assert_close(acts[path], expected, msg=path)
    point = resolve_hook(loaded, "model.layers.1.pre_feedforward_layernorm.output")
    assert point.layer == 1 and point.module is block_module(loaded, 1).pre_feedforward_layernorm
    assert loaded.model.get_submodule("model.vision_tower") is not None  # the multimodal model, text hooked
    assert (loaded.n_layers, loaded.d_model, loaded.vocab_size) == (2, 32, 512)


def test_hf_paths_on_a_text_model(loaded, ids):
    acts = capture_many(loaded, ids, None, ["blocks.1.hook_resid_post", "blocks.2.attn.hook_z"])
    layers = "transformer.h" if loaded.family == "gpt2" else "model.layers"
    o_proj = "attn.c_proj" if loaded.family == "gpt2" else "self_attn.o_proj"
    torch.testing.assert_close(capture_activations(loaded, ids, None, f"{layers}.1.output"),
                               acts["blocks.1.hook_resid_post"])
    torch.testing.assert_close(capture_activations(loaded, ids, None, f"{layers}.2.{o_proj}.input"),
                               acts["blocks.2.attn.hook_z"].flatten(-2))
    assert resolve_hook(loaded, f"{layers}.2.{o_proj}.input").layer == 2
    assert resolve_hook(loaded, f"{layers}.0.output").reads_input is False


@pytest.mark.parametrize("bad, suggestion", [
    ("model.layers.3.self_attn.o_prj.input", "model.layers.3.self_attn.o_proj.input"),
    ("model.layers.99.output", "model.layers.1.output"),
    ("model.layers.1.pre_feedforward_norm.output", "model.layers.1.pre_feedforward_layernorm.output"),
])
def test_unknown_hf_path_lists_the_nearest_valid_ones(tmp_path_factory, bad, suggestion):
    path = build_tiny_model("gemma3", tmp_path_factory.mktemp("tiny") / "model", n_layers=4, d_model=32)
    loaded = load_model(path, device="cpu", dtype="float32")
    with pytest.raises(InvalidInputError, match="has no module") as info:
        resolve_hook(loaded, bad)
    assert suggestion in str(info.value) and "Nearest valid paths" in str(info.value)


def test_hf_path_capture_stops_at_its_layer(loaded, ids):
    layers = "transformer.h" if loaded.family == "gpt2" else "model.layers"
    fired: list[int] = []
    handle = block_module(loaded, 2).register_forward_pre_hook(lambda *a: fired.append(2))
    try:
        capture_activations(loaded, ids, None, f"{layers}.1.output")
    finally:
        handle.remove()
    assert fired == []


def test_qwen3_5_multimodal_checkpoint_loads_as_its_text_model(tmp_path):
    path = build_tiny_model("qwen3_5", tmp_path / "m", n_layers=2, d_model=32)
    assert '"vision_config"' in (path / "config.json").read_text()
    loaded = load_model(path, device="cpu", dtype="float32")
    assert loaded.family == "qwen3_5" and type(loaded.model).__name__ == "Qwen3_5ForCausalLM"
    assert not any("visual" in name for name, _ in loaded.model.named_parameters())


def test_mxfp4_checkpoints_are_dequantized_and_gemma2_runs_eager():
    from transformers import AutoConfig, GptOssConfig, Mxfp4Config

    cfg = GptOssConfig(num_hidden_layers=1)
    cfg.quantization_config = {"quant_method": "mxfp4", "modules_to_not_convert": []}
    extra = model_load_kwargs(cfg)
    assert isinstance(extra["quantization_config"], Mxfp4Config) and extra["quantization_config"].dequantize
    assert model_load_kwargs(GptOssConfig(num_hidden_layers=1)) == {}
    assert model_load_kwargs(AutoConfig.for_model("gemma2")) == {"attn_implementation": "eager"}
    assert model_load_kwargs(AutoConfig.for_model("gemma3")) == {}  # Gemma 3 does not soft-cap attention


def test_related_unsupported_family_says_what_to_use(tmp_path):
    from transformers import AutoConfig

    AutoConfig.for_model("gemma3n").save_pretrained(tmp_path)
    with pytest.raises(InvalidInputError, match="Gemma 3n .*google/gemma-3-\\* models"):
        load_model(tmp_path)


@pytest.mark.parametrize("side", ["left", "right"])
def test_new_families_padding_matches_unpadded_rows(new_family, side):
    _, loaded = new_family  # hybrid families: linear attention in layer 0 sees the padding too
    _assert_padding_matches_unpadded_rows(loaded, side, ("blocks.1.hook_resid_post", "blocks.1.attn.hook_z"), 8)

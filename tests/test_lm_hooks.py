"""Hook resolution, activation capture (stop at the hook layer, padding), model loading and model names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import OPTConfig, OPTForCausalLM

from mistudio.errors import HubUnreachableError, InvalidInputError, NotFoundError
from mistudio.lm import names
from mistudio.lm.hooks import block_module, capture_activations, capture_many, parse_hook_name, resolve_hook
from mistudio.lm.loading import load_model, pick_device, pick_dtype
from mistudio.lm.processing import activation_transform_for
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
        ("blocks.0.ln2.hook_normalized", "hook_resid_pre"),
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


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_matches_unpadded_rows(loaded, side):
    gen = torch.Generator().manual_seed(3)
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
    for hook in ("blocks.2.hook_resid_post", "blocks.1.attn.hook_z"):
        acts = capture_activations(loaded, batch, mask, hook)
        alone = capture_activations(loaded, short, None, hook)
        real = acts[0, 3:] if side == "left" else acts[0, :4]
        torch.testing.assert_close(real, alone[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(acts[1:], capture_activations(loaded, long, None, hook), atol=1e-5, rtol=0)


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
    with pytest.raises(InvalidInputError, match="supported families are gpt2"):
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
]


@pytest.mark.parametrize("use_transformer_lens_table", [True, False])
def test_model_names_round_trip(monkeypatch, use_transformer_lens_table):
    if use_transformer_lens_table:
        pytest.importorskip("transformer_lens")
    else:
        monkeypatch.setattr(names, "_transformer_lens_tables", lambda: None)
    for tl_name, hf_id in NAMES:
        assert names.hf_id_for(tl_name) == hf_id
        assert names.tl_name_for(hf_id) == tl_name
    assert names.hf_id_for("meta-llama/Llama-3.1-8B") == "meta-llama/Llama-3.1-8B"
    assert names.tl_name_for("meta-llama/Llama-3.1-8B") == "meta-llama/Llama-3.1-8B"

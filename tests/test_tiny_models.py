"""Tiny random-weight models and tokenizers: fast, loadable with the Auto classes, realistic configs."""

from __future__ import annotations

import json
import time

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from mistudio.lm.loading import SUPPORTED_FAMILIES, load_model
from mistudio.lm.tokens import special_token_ids, vocab_strings
from mistudio.testing.tiny_models import (
    FAMILIES,
    MODEL_TYPES,
    SPECIAL_TOKENS,
    build_tiny_model,
    build_tokenizer,
    default_corpus,
)

BOS_PREPENDING = ("llama", "gemma2", "gemma", "mistral", "llama3", "gemma3", "gemma3_multimodal")


@pytest.mark.parametrize("family", FAMILIES)
def test_builds_fast_and_loads_with_auto_classes(family, tmp_path):
    build_tiny_model(family, tmp_path / "warmup")  # imports and tokenizer training warm-up
    start = time.perf_counter()
    path = build_tiny_model(family, tmp_path / "m", n_layers=3, d_model=32, vocab_size=300)
    assert time.perf_counter() - start < 2.0
    assert AutoConfig.from_pretrained(path).model_type == MODEL_TYPES[family] in SUPPORTED_FAMILIES
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    text = model.config.get_text_config()
    assert text.num_hidden_layers == 3 and text.hidden_size == 32
    assert len(tokenizer) <= text.vocab_size == 300
    enc = tokenizer(["The cat watched the moon.", "A dog."], return_tensors="pt", padding=True)
    logits = model(**enc).logits
    assert logits.shape[:2] == enc.input_ids.shape and torch.isfinite(logits).all()
    bos_first = enc.input_ids[0, 0].item() == tokenizer.bos_token_id
    assert bos_first == (family in BOS_PREPENDING)
    assert tokenizer.pad_token_id is not None and tokenizer.eos_token_id is not None
    # and through miStudio's own loader, from the local folder
    loaded = load_model(path, device="cpu", dtype="float32")
    facts = (loaded.family, loaded.n_layers, loaded.d_model, loaded.vocab_size)
    assert facts == (MODEL_TYPES[family], 3, 32, 300)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(**enc).logits, logits)


def test_gemma3_configs_are_like_the_real_ones(tmp_path):
    text = AutoConfig.from_pretrained(build_tiny_model("gemma3", tmp_path / "t", n_layers=4))
    assert text.model_type == "gemma3_text" and text.tie_word_embeddings is True
    assert text.layer_types == ["sliding_attention", "full_attention", "sliding_attention", "full_attention"]
    assert text.sliding_window == 4 and text.query_pre_attn_scalar == text.head_dim == 16
    assert text.rope_parameters["sliding_attention"]["rope_theta"] == 10000.0
    assert text.rope_parameters["full_attention"]["rope_theta"] == 1000000.0
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "t")
    layer = model.model.layers[0]
    for norm in ("pre_feedforward_layernorm", "post_feedforward_layernorm", "self_attn.q_norm",
                 "self_attn.k_norm"):
        assert layer.get_submodule(norm) is not None
    assert float(model.model.embed_tokens.embed_scale) == pytest.approx(64**0.5)
    multimodal = AutoConfig.from_pretrained(build_tiny_model("gemma3_multimodal", tmp_path / "m"))
    assert multimodal.model_type == "gemma3" and multimodal.vision_config.model_type == "siglip_vision_model"
    assert multimodal.text_config.rope_parameters["full_attention"]["rope_type"] == "linear"
    model_class = type(AutoModelForCausalLM.from_pretrained(tmp_path / "m")).__name__
    assert model_class == "Gemma3ForConditionalGeneration"


@pytest.mark.parametrize("family", ["qwen3_moe", "qwen3_5_moe", "qwen3_next", "gpt_oss"])
def test_moe_families_have_a_few_experts(family, tmp_path):
    config = AutoConfig.from_pretrained(build_tiny_model(family, tmp_path)).get_text_config()
    assert (getattr(config, "num_experts", None) or config.num_local_experts) == 4
    assert config.num_experts_per_tok == 2


def test_hybrid_and_sink_families_mix_their_layer_types(tmp_path):
    for family, local in (("qwen3_5", "linear_attention"), ("qwen3_next", "linear_attention"),
                          ("gpt_oss", "sliding_attention")):
        config = AutoConfig.from_pretrained(build_tiny_model(family, tmp_path / family)).get_text_config()
        assert config.layer_types == [local, "full_attention"], family


def test_llama3_config_json_carries_rope_scaling_as_the_hub_does(tmp_path):
    path = build_tiny_model("llama3", tmp_path)
    raw = json.loads((path / "config.json").read_text())
    assert "rope_parameters" not in raw and raw["rope_theta"] == 500000.0
    assert raw["rope_scaling"]["rope_type"] == "llama3" and raw["rope_scaling"]["factor"] == 8.0
    assert AutoConfig.from_pretrained(path).rope_parameters["rope_type"] == "llama3"


def test_gemma2_config_is_like_the_real_one(tmp_path):
    cfg = AutoConfig.from_pretrained(build_tiny_model("gemma2", tmp_path))
    assert cfg.final_logit_softcapping == 30.0 and cfg.attn_logit_softcapping == 50.0
    assert cfg.tie_word_embeddings is True
    assert cfg.sliding_window == 4 and cfg.layer_types == ["sliding_attention", "full_attention"]
    assert cfg.query_pre_attn_scalar == cfg.head_dim == 16


def test_same_seed_same_weights_and_norms_are_not_trivial(tmp_path):
    a = load_file(build_tiny_model("gpt2", tmp_path / "a", seed=3) / "model.safetensors")
    b = load_file(build_tiny_model("gpt2", tmp_path / "b", seed=3) / "model.safetensors")
    c = load_file(build_tiny_model("gpt2", tmp_path / "c", seed=4) / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["transformer.h.0.ln_1.weight"], c["transformer.h.0.ln_1.weight"])
    # norm gains and biases are randomised so weight folding is exercised
    assert not torch.equal(a["transformer.h.0.ln_1.weight"], torch.ones(64))
    assert a["transformer.h.0.attn.c_attn.bias"].abs().sum() > 0


def test_tokenizer_from_custom_corpus(tmp_path):
    texts = ["zebra quartz " * 5, "quartz zebra jumps"] * 20
    tok = build_tokenizer(tmp_path, corpus_texts=texts, vocab_size=300)
    assert (tmp_path / "tokenizer.json").exists()
    assert len(tok("zebra quartz").input_ids) <= 3  # the corpus words were merged
    assert tok.decode(tok("Hello, world! 42").input_ids) == "Hello, world! 42"  # byte-level: lossless
    llama = build_tokenizer(corpus_texts=texts, vocab_size=300, style="llama")
    assert llama("zebra").input_ids[0] == llama.bos_token_id == llama.convert_tokens_to_ids("<s>")


def test_default_corpus_is_deterministic():
    assert default_corpus() == default_corpus() and len(default_corpus()) == 400
    assert default_corpus(seed=1) != default_corpus()


def test_unknown_family(tmp_path):
    with pytest.raises(ValueError, match="gpt2, pythia"):
        build_tiny_model("bert", tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize("family", sorted(SPECIAL_TOKENS))
def test_family_special_tokens_are_special_and_shown_as_themselves(family, tmp_path):
    path = build_tiny_model(family, tmp_path, vocab_size=300)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert len(tokenizer) <= 300
    strings = vocab_strings(tokenizer)
    for token in SPECIAL_TOKENS[family]:
        token_id = tokenizer.convert_tokens_to_ids(token)
        assert token_id in special_token_ids(tokenizer) and strings[token_id] == token
        assert tokenizer(f"{token}hi").input_ids.count(token_id) == 1  # never split into pieces

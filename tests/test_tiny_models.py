"""Tiny random-weight models and tokenizers: fast, loadable with the Auto classes, realistic configs."""

from __future__ import annotations

import time

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from mistudio.testing.tiny_models import FAMILIES, build_tiny_model, build_tokenizer, default_corpus


@pytest.mark.parametrize("family", FAMILIES)
def test_builds_fast_and_loads_with_auto_classes(family, tmp_path):
    build_tiny_model(family, tmp_path / "warmup")  # imports and tokenizer training warm-up
    start = time.perf_counter()
    path = build_tiny_model(family, tmp_path / "m", n_layers=3, d_model=32, vocab_size=300)
    assert time.perf_counter() - start < 2.0
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert model.config.num_hidden_layers == 3 and model.config.hidden_size == 32
    assert len(tokenizer) <= model.config.vocab_size == 300
    enc = tokenizer(["The cat watched the moon.", "A dog."], return_tensors="pt", padding=True)
    logits = model(**enc).logits
    assert logits.shape[:2] == enc.input_ids.shape and torch.isfinite(logits).all()
    bos_first = enc.input_ids[0, 0].item() == tokenizer.bos_token_id
    assert bos_first == (family in ("llama", "gemma2", "gemma", "mistral"))
    assert tokenizer.pad_token_id is not None and tokenizer.eos_token_id is not None


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

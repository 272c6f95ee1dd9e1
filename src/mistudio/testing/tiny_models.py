"""Tiny random-weight HuggingFace causal LMs and tokenizers, built on the fly for tests, demos and benchmarks."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypedDict

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    GemmaConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

Family = Literal["gpt2", "pythia", "llama", "gemma2", "gemma", "mistral", "qwen2"]
FAMILIES: tuple[str, ...] = ("gpt2", "pythia", "llama", "gemma2", "gemma", "mistral", "qwen2")
# Families whose real tokenizers prepend a BOS token (`<s>`/`<bos>`) to every encoded text.
_BOS_PREPENDING = {"llama", "gemma2", "gemma", "mistral"}

_SUBJECTS = ["the cat", "a small dog", "my neighbour", "the old king", "a young student", "the river",
             "our teacher", "the engineer", "a quiet bird", "the city council", "her brother", "the machine"]
_VERBS = ["watched", "carried", "found", "painted", "followed", "built", "remembered", "opened",
          "described", "measured", "sold", "ignored"]
_OBJECTS = ["a red apple", "the heavy door", "three letters", "an ancient map", "the bright moon",
            "a wooden boat", "the last train", "seven stones", "a silver key", "the morning news",
            "a long song", "the empty garden"]
_TAILS = ["before dawn.", "in the rain.", "with great care.", "near the market.", "after dinner.",
          "without a word.", "for the first time.", "on Tuesday.", "at 9:45 pm.", "in 1987.",
          "while laughing.", "and then slept."]


def default_corpus(n_lines: int = 400, seed: int = 0) -> list[str]:
    """A deterministic English-like corpus of `n_lines` sentences (numbers and punctuation included)."""
    rng = random.Random(seed)
    lines = []
    for i in range(n_lines):
        sentence = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}"
        if i % 3 == 0:
            sentence += f" It cost {rng.randint(1, 999)} coins, said {rng.choice(_SUBJECTS)}."
        lines.append(sentence[0].upper() + sentence[1:])
    return lines


def build_tokenizer(
    out_dir: str | Path | None = None,
    corpus_texts: Sequence[str] | None = None,
    vocab_size: int = 512,
    style: Literal["gpt2", "llama"] = "gpt2",
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer; `style="gpt2"` uses `<|endoftext|>` as BOS/EOS and adds nothing,
    `style="llama"` uses `<s>`/`</s>` and prepends `<s>` like Llama/Gemma tokenizers. Saved to `out_dir` if given."""
    if style == "gpt2":
        bos, eos, pad = "<|endoftext|>", "<|endoftext|>", "<pad>"
        specials = [bos, pad]
    else:
        bos, eos, pad = "<s>", "</s>", "<pad>"
        specials = [bos, eos, pad]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus_texts) if corpus_texts is not None else default_corpus(), trainer)
    if style == "llama":
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad)
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


class _SpecialTokenIds(TypedDict):
    bos_token_id: int | None
    eos_token_id: int | None
    pad_token_id: int | None


class _CommonConfigArgs(_SpecialTokenIds):
    vocab_size: int


class _LlamaLikeConfigArgs(_CommonConfigArgs):
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    initializer_range: float


# Keyword arguments every supported transformers version accepts, though 5.x no longer declares them.
_GPT2_LEGACY_ARGS: dict[str, Any] = {"n_ctx": 128}
_PYTHIA_LEGACY_ARGS: dict[str, Any] = {"rotary_pct": 0.25}


def _config_for(family: str, n_layers: int, d_model: int, vocab_size: int,
                special: _SpecialTokenIds) -> PretrainedConfig:
    n_heads = 4
    head_dim = d_model // n_heads
    common: _CommonConfigArgs = {"vocab_size": vocab_size, **special}
    if family == "gpt2":
        return GPT2Config(n_layer=n_layers, n_embd=d_model, n_head=n_heads, n_positions=128, **_GPT2_LEGACY_ARGS,
                          initializer_range=0.1, **common)
    if family == "pythia":
        return GPTNeoXConfig(hidden_size=d_model, num_hidden_layers=n_layers, num_attention_heads=n_heads,
                             intermediate_size=4 * d_model, max_position_embeddings=128, **_PYTHIA_LEGACY_ARGS,
                             use_parallel_residual=True, tie_word_embeddings=False, initializer_range=0.1,
                             **common)
    llama_like: _LlamaLikeConfigArgs = {
        "hidden_size": d_model, "num_hidden_layers": n_layers, "num_attention_heads": n_heads,
        "intermediate_size": 2 * d_model, "max_position_embeddings": 128, "initializer_range": 0.1, **common,
    }
    if family == "llama":
        return LlamaConfig(num_key_value_heads=2, tie_word_embeddings=False, **llama_like)
    if family == "mistral":
        return MistralConfig(num_key_value_heads=2, sliding_window=None, tie_word_embeddings=False, **llama_like)
    if family == "qwen2":
        return Qwen2Config(num_key_value_heads=2, tie_word_embeddings=True, **llama_like)
    if family == "gemma":
        return GemmaConfig(num_key_value_heads=1, head_dim=head_dim, hidden_act="gelu_pytorch_tanh",
                           tie_word_embeddings=True, **llama_like)
    if family == "gemma2":
        # As google/gemma-2-2b: tied embeddings, soft-capping, alternating sliding/global layers,
        # query_pre_attn_scalar == head_dim; eager attention so the attention soft-cap is applied.
        cfg = Gemma2Config(num_key_value_heads=2, head_dim=head_dim, query_pre_attn_scalar=head_dim,
                           sliding_window=4, final_logit_softcapping=30.0, attn_logit_softcapping=50.0,
                           hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True, **llama_like)
        cfg._attn_implementation = "eager"
        return cfg
    raise ValueError(f"unknown tiny-model family {family!r}; choose one of {', '.join(FAMILIES)}")


def _perturb_(model: torch.nn.Module, seed: int) -> None:
    """Randomise every 1-D parameter (norm gains, biases) so weight folding is actually exercised."""
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def build_tiny_model(
    family: Family,
    out_dir: str | Path,
    n_layers: int = 2,
    d_model: int = 64,
    seed: int = 0,
    vocab_size: int = 512,
    corpus_texts: Sequence[str] | None = None,
) -> Path:
    """Save a random-weight HF causal LM of `family` plus its tokenizer to `out_dir` and return the folder."""
    if family not in FAMILIES:
        raise ValueError(f"unknown tiny-model family {family!r}; choose one of {', '.join(FAMILIES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(
        corpus_texts=corpus_texts, vocab_size=vocab_size,
        style="llama" if family in _BOS_PREPENDING else "gpt2",
    )
    special: _SpecialTokenIds = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = _config_for(family, n_layers, d_model, max(vocab_size, len(tokenizer)), special)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    _perturb_(model, seed)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out

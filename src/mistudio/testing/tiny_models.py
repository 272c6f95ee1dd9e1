"""Tiny random-weight HuggingFace causal LMs and tokenizers, built on the fly for tests, demos and benchmarks."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypedDict

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    Gemma2Config,
    Gemma3Config,
    Gemma3TextConfig,
    GemmaConfig,
    GPT2Config,
    GPTNeoXConfig,
    GptOssConfig,
    LlamaConfig,
    MistralConfig,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3_5Config,
    Qwen3_5MoeConfig,
    Qwen3Config,
    Qwen3MoeConfig,
    Qwen3NextConfig,
    SiglipVisionConfig,
)

Family = Literal[
    "gpt2", "pythia", "llama", "gemma2", "gemma", "mistral", "qwen2", "llama3", "gemma3", "gemma3_multimodal",
    "qwen3", "qwen3_moe", "qwen3_5", "qwen3_5_moe", "qwen3_next", "gpt_oss",
]
FAMILIES: tuple[str, ...] = (
    "gpt2", "pythia", "llama", "gemma2", "gemma", "mistral", "qwen2", "llama3", "gemma3", "gemma3_multimodal",
    "qwen3", "qwen3_moe", "qwen3_5", "qwen3_5_moe", "qwen3_next", "gpt_oss",
)
# The HF `model_type` each tiny family saves (what `lm.loading` sees in config.json).
MODEL_TYPES: dict[str, str] = {
    "gpt2": "gpt2", "pythia": "gpt_neox", "llama": "llama", "gemma2": "gemma2", "gemma": "gemma",
    "mistral": "mistral", "qwen2": "qwen2", "llama3": "llama", "gemma3": "gemma3_text",
    "gemma3_multimodal": "gemma3", "qwen3": "qwen3", "qwen3_moe": "qwen3_moe", "qwen3_5": "qwen3_5",
    "qwen3_5_moe": "qwen3_5_moe", "qwen3_next": "qwen3_next", "gpt_oss": "gpt_oss",
}
# Families whose real tokenizers prepend a BOS token (`<s>`, `<bos>`, `<|begin_of_text|>`) to every text.
_BOS_PREPENDING = {"llama", "gemma2", "gemma", "mistral", "llama3", "gemma3", "gemma3_multimodal"}
# Special tokens of the real tokenizers (chat, image and channel markers), kept as special tokens.
SPECIAL_TOKENS: dict[str, tuple[str, ...]] = {
    "llama3": ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    "gemma3": ("<start_of_turn>", "<end_of_turn>", "<start_of_image>"),
    "gemma3_multimodal": ("<start_of_turn>", "<end_of_turn>", "<start_of_image>"),
    "qwen3": ("<|im_start|>", "<|im_end|>"),
    "qwen3_moe": ("<|im_start|>", "<|im_end|>"),
    "qwen3_5": ("<|im_start|>", "<|im_end|>", "<|vision_start|>"),
    "qwen3_5_moe": ("<|im_start|>", "<|im_end|>", "<|vision_start|>"),
    "qwen3_next": ("<|im_start|>", "<|im_end|>"),
    "gpt_oss": ("<|start|>", "<|message|>", "<|end|>"),
}
# Families saved as their multimodal checkpoint (text + vision tower), as the real models are published.
_MULTIMODAL = {"gemma3_multimodal", "qwen3_5", "qwen3_5_moe"}

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
    extra_special_tokens: Sequence[str] = (),
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer; `style="gpt2"` uses `<|endoftext|>` as BOS/EOS and adds nothing,
    `style="llama"` uses `<s>`/`</s>` and prepends `<s>` like Llama/Gemma tokenizers; `extra_special_tokens`
    (chat and image markers such as `<start_of_turn>`) are in the vocabulary, marked special. Saved to `out_dir`
    if given."""
    if style == "gpt2":
        bos, eos, pad = "<|endoftext|>", "<|endoftext|>", "<pad>"
        specials = [bos, pad]
    else:
        bos, eos, pad = "<s>", "</s>", "<pad>"
        specials = [bos, eos, pad]
    specials += [token for token in extra_special_tokens if token not in specials]
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
    if extra_special_tokens:
        fast.add_special_tokens({"additional_special_tokens": list(extra_special_tokens)})
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
    return _newer_config_for(family, n_layers, llama_like)


# Tiny vision towers: only there so the checkpoint has the real multimodal layout.
_SIGLIP_VISION: dict[str, Any] = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                  "num_attention_heads": 2, "image_size": 28, "patch_size": 14}
_QWEN_VISION: dict[str, Any] = {"depth": 1, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2,
                                "num_position_embeddings": 16, "patch_size": 4}
_MOE: dict[str, Any] = {"num_experts": 4, "num_experts_per_tok": 2}


def _layer_types(n_layers: int, local: str, every: int) -> list[str]:
    """Layer types with a `full_attention` layer every `every` layers (the last layer is always full)."""
    return ["full_attention" if (i + 1) % every == 0 or i == n_layers - 1 else local for i in range(n_layers)]


def _newer_config_for(family: str, n_layers: int, llama_like: _LlamaLikeConfigArgs) -> PretrainedConfig:
    """Configs of Llama 3, Gemma 3, Qwen3(-MoE), Qwen3.5(-MoE), Qwen3-Next and gpt-oss, like the real ones."""
    d_model = llama_like["hidden_size"]
    head_dim = d_model // llama_like["num_attention_heads"]
    if family == "llama3":
        # As meta-llama/Llama-3.1-8B: llama3 rope scaling (a short original context changes every position).
        llama3_rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
        return LlamaConfig(num_key_value_heads=2, rope_parameters=llama3_rope, tie_word_embeddings=False,
                           **llama_like)
    if family in ("gemma3", "gemma3_multimodal"):
        # As google/gemma-3-*: q/k norms, sliding (local) and global layers with their own rope bases,
        # pre/post feed-forward norms, scaled embeddings; multimodal ones (4b+) scale global rope linearly.
        rope: dict[str, Any] = {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}}
        if family == "gemma3_multimodal":
            rope["full_attention"] = {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}
        text = Gemma3TextConfig(num_key_value_heads=1, head_dim=head_dim, query_pre_attn_scalar=head_dim,
                                sliding_window=4, layer_types=_layer_types(n_layers, "sliding_attention", 2),
                                rope_parameters=rope, hidden_activation="gelu_pytorch_tanh",
                                tie_word_embeddings=True, **llama_like)
        if family == "gemma3":
            return text
        return Gemma3Config(text_config=text, vision_config=SiglipVisionConfig(**_SIGLIP_VISION),
                            mm_tokens_per_image=1, tie_word_embeddings=True)
    if family == "qwen3":
        return Qwen3Config(num_key_value_heads=2, head_dim=head_dim, tie_word_embeddings=True, **llama_like)
    if family == "qwen3_moe":
        return Qwen3MoeConfig(num_key_value_heads=2, moe_intermediate_size=d_model // 2,
                              decoder_sparse_step=1, norm_topk_prob=True, tie_word_embeddings=False,
                              **_MOE, **llama_like)
    if family == "gpt_oss":
        # As openai/gpt-oss-20b: alternating sliding/full layers, attention sinks and biases, yarn rope, MoE.
        yarn_rope = {"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0, "beta_fast": 32.0,
                     "beta_slow": 1.0, "original_max_position_embeddings": 4, "truncate": False}
        return GptOssConfig(num_key_value_heads=2, head_dim=head_dim, num_local_experts=4,
                            num_experts_per_tok=2, sliding_window=4,
                            layer_types=_layer_types(n_layers, "sliding_attention", 2),
                            rope_parameters=yarn_rope, tie_word_embeddings=False, **llama_like)
    # Qwen3.5 / Qwen3-Next: gated delta-net linear attention, a full (gated) attention layer every few layers.
    hybrid: dict[str, Any] = {
        "num_key_value_heads": 2, "head_dim": head_dim,
        "layer_types": _layer_types(n_layers, "linear_attention", 2),
        "linear_num_key_heads": 2, "linear_num_value_heads": 4, "linear_key_head_dim": head_dim,
        "linear_value_head_dim": head_dim, **llama_like,
    }
    moe = {**_MOE, "moe_intermediate_size": d_model // 2, "shared_expert_intermediate_size": d_model // 2}
    vision = {**_QWEN_VISION, "out_hidden_size": d_model}
    if family == "qwen3_5":
        return Qwen3_5Config(text_config={**hybrid, "tie_word_embeddings": True}, vision_config=vision,
                             tie_word_embeddings=True)
    if family == "qwen3_5_moe":
        return Qwen3_5MoeConfig(text_config={**hybrid, **moe}, vision_config=vision,
                                tie_word_embeddings=False)
    if family == "qwen3_next":
        return Qwen3NextConfig(decoder_sparse_step=1, norm_topk_prob=True, tie_word_embeddings=False,
                               **moe, **hybrid)
    raise ValueError(f"unknown tiny-model family {family!r}; choose one of {', '.join(FAMILIES)}")


def _write_legacy_rope_config(out: Path) -> None:
    """Rewrite config.json's rope settings as Llama 3.x Hub checkpoints have them (rope_scaling, rope_theta)."""
    path = out / "config.json"
    data = json.loads(path.read_text())
    rope = dict(data.pop("rope_parameters"))
    data["rope_theta"] = rope.pop("rope_theta")
    data["rope_scaling"] = rope
    path.write_text(json.dumps(data, indent=2))


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
    """Save a random-weight HF causal LM of `family` plus its tokenizer to `out_dir` and return the folder.

    `gemma3_multimodal`, `qwen3_5` and `qwen3_5_moe` are saved as their multimodal checkpoints (a tiny vision
    tower included), as the real models are published; `MODEL_TYPES` gives each family's HF `model_type`.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown tiny-model family {family!r}; choose one of {', '.join(FAMILIES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(
        corpus_texts=corpus_texts, vocab_size=vocab_size,
        style="llama" if family in _BOS_PREPENDING else "gpt2",
        extra_special_tokens=SPECIAL_TOKENS.get(family, ()),
    )
    special: _SpecialTokenIds = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = _config_for(family, n_layers, d_model, max(vocab_size, len(tokenizer)), special)
    torch.manual_seed(seed)
    auto_class = AutoModelForImageTextToText if family in _MULTIMODAL else AutoModelForCausalLM
    model = auto_class.from_config(config)
    _perturb_(model, seed)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    if family == "llama3":
        _write_legacy_rope_config(out)
    return out

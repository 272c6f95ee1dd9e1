"""Load a HuggingFace causal LM (hub id or local folder) for activation capture."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mistudio.errors import HubAuthError, HubError, HubUnreachableError, InvalidInputError, NotFoundError
from mistudio.lm.names import hf_id_for, tl_name_for
from mistudio.settings import get_settings

__all__ = ["SUPPORTED_FAMILIES", "LoadedModel", "hf_id_for", "load_model", "pick_device", "pick_dtype", "tl_name_for"]

# HF `config.model_type` values whose module layout lm.hooks knows. Llama covers Llama 1-3.x (llama3 rope
# scaling included) and its distillations; `gemma3` is the multimodal Gemma3ForConditionalGeneration
# (gemma-3-4b and larger: its language model is hooked), `gemma3_text` the text-only Gemma 3 (270m, 1b);
# `qwen3_5` and `qwen3_5_moe` checkpoints are multimodal and load as their text causal LM (transformers drops
# the vision tower).
SUPPORTED_FAMILIES: tuple[str, ...] = (
    "gpt2", "gpt_neox", "llama", "mistral", "qwen2", "gemma", "gemma2", "gemma3_text", "gemma3", "qwen3",
    "qwen3_moe", "qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text", "qwen3_next", "gpt_oss",
)
# Unsupported families with a supported relative: what to use instead (for the error message).
_RELATED_FAMILIES = {
    "gemma3n": "Gemma 3n (gemma3n) has a different architecture than Gemma 3; use google/gemma-3-* models",
    "qwen3_vl": "Qwen3-VL is not supported; use the Qwen3 text models",
    "qwen3_vl_moe": "Qwen3-VL is not supported; use the Qwen3 text models",
    "mllama": "Llama 3.2 Vision (mllama) is not supported; use the Llama 3.x text models",
}
_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


@dataclass
class LoadedModel:
    """A causal LM in eval mode with its tokenizer and the shape facts hooks need."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    family: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    vocab_size: int
    device: torch.device
    dtype: torch.dtype
    name: str


def module_tensor(module: torch.nn.Module, name: str) -> torch.Tensor:
    """The tensor `module.<name>` (a parameter or buffer such as `weight`); TypeError if it is not a tensor."""
    value = getattr(module, name)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{type(module).__name__}.{name} is not a tensor")
    return value


def optional_module_tensor(module: torch.nn.Module, name: str) -> torch.Tensor | None:
    """`module.<name>` when it is a tensor; None when the module has no such attribute or it is None (no bias)."""
    value = getattr(module, name, None)
    return value if isinstance(value, torch.Tensor) else None


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: the argument, else MISTUDIO_DEVICE, else cuda > mps > cpu."""
    choice = device if device is not None else get_settings().device
    if choice is not None:
        try:
            return torch.device(choice)
        except (RuntimeError, TypeError) as err:
            raise InvalidInputError(f"Unknown device {choice!r}; use cpu, cuda, cuda:N or mps.") from err
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The dtype to load in: the argument, else bf16 on a cuda device that supports it, else fp32."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is not None:
        key = dtype.lower().removeprefix("torch.")
        if key not in _DTYPES:
            raise InvalidInputError(f"Unknown dtype {dtype!r}; use one of {', '.join(sorted(_DTYPES))}.")
        return _DTYPES[key]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1


def _cause_chain(err: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _load_config(source: str, token: str | None, local: bool, offline: bool) -> Any:
    """The HF config, translating hub and file failures into miStudio errors."""
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return AutoConfig.from_pretrained(source, token=token, local_files_only=offline)
    except (OSError, ValueError) as err:
        if local:
            raise InvalidInputError(f"{source} is not a HuggingFace model folder: {err}") from err
        causes = _cause_chain(err)
        if any(isinstance(c, GatedRepoError) for c in causes):
            raise HubAuthError(
                f"Model {source!r} is gated: accept its licence on huggingface.co and set HF_TOKEN."
            ) from err
        if any(isinstance(c, RepositoryNotFoundError) for c in causes):
            raise HubError(f"No model {source!r} on the HuggingFace Hub (or it is private: set HF_TOKEN).") from err
        if offline or any(isinstance(c, LocalEntryNotFoundError) for c in causes):
            raise HubUnreachableError(
                f"Model {source!r} is not in the local HuggingFace cache and the Hub cannot be reached"
                f"{' (HF_HUB_OFFLINE is set)' if offline else ''}. Download it once while online, "
                "or pass a local model folder."
            ) from err
        raise HubError(f"Could not load the config of model {source!r}: {err}") from err


def load_model(
    model_id_or_path: str | Path,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    token: str | None = None,
) -> LoadedModel:
    """Load a causal LM and its tokenizer from a hub id, a TransformerLens name or a local folder (eval, no grad)."""
    name = str(model_id_or_path)
    path = Path(name).expanduser()
    local = path.exists()
    if not local and (isinstance(model_id_or_path, Path) or _looks_like_path(name)):
        raise NotFoundError(f"No model folder at {path}.")
    source = str(path) if local else hf_id_for(name)
    settings = get_settings()
    token = token if token is not None else settings.hf_token
    offline = settings.hf_hub_offline and not local
    config = _load_config(source, token, local, offline)
    family = getattr(config, "model_type", None)
    if family not in SUPPORTED_FAMILIES:
        hint = f" {_RELATED_FAMILIES[family]}." if family in _RELATED_FAMILIES else ""
        raise InvalidInputError(
            f"Model {name!r} is a {family!r} model, which miStudio cannot hook.{hint} "
            f"Supported families are {', '.join(SUPPORTED_FAMILIES)}."
        )
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    model = AutoModelForCausalLM.from_pretrained(
        source, dtype=torch_dtype, token=token, local_files_only=offline, **model_load_kwargs(config)
    )
    model.to(dev).eval().requires_grad_(False)  # type: ignore[arg-type]
    tokenizer = AutoTokenizer.from_pretrained(source, token=token, local_files_only=offline)
    text = config.get_text_config()
    n_heads = text.num_attention_heads if hasattr(text, "num_attention_heads") else text.n_head
    d_model = text.hidden_size
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        family=family,
        n_layers=text.num_hidden_layers,
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=getattr(text, "num_key_value_heads", None) or n_heads,
        d_head=getattr(text, "head_dim", None) or d_model // n_heads,
        vocab_size=text.vocab_size,
        device=dev,
        dtype=torch_dtype,
        name=name if local else source,
    )


def model_load_kwargs(config: Any) -> dict[str, Any]:
    """Extra `from_pretrained` arguments a family needs so its activations are the reference model's.

    Eager attention where the config soft-caps attention logits (Gemma 2), which only eager attention applies;
    MXFP4 checkpoints (gpt-oss) are dequantized, as TransformerLens loads them, so activations do not depend on
    the quantization kernels.
    """
    extra: dict[str, Any] = {}
    if getattr(config.get_text_config(), "attn_logit_softcapping", None):
        extra["attn_implementation"] = "eager"
    quantization = getattr(config, "quantization_config", None)
    method = quantization.get("quant_method") if isinstance(quantization, dict) else getattr(
        quantization, "quant_method", None)
    if str(method).lower().endswith("mxfp4"):
        from transformers.utils.quantization_config import Mxfp4Config

        extra["quantization_config"] = Mxfp4Config(dequantize=True)
    return extra

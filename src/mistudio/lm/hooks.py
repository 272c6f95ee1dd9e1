"""TransformerLens hook names mapped onto HuggingFace modules; activation capture that stops at the hook.

Supported names (L = layer): `hook_embed`, `blocks.L.hook_resid_pre`, `blocks.L.hook_resid_mid`,
`blocks.L.hook_resid_post`, `blocks.L.hook_attn_out`, `blocks.L.hook_mlp_out`,
`blocks.L.attn.hook_q|hook_k|hook_v|hook_z`. Values equal TransformerLens `run_with_cache` on a model
loaded with `from_pretrained_no_processing` (see `lm.processing` for processed-weight variants):

* `hook_resid_*` are residual-stream states (never a norm's output); `hook_mlp_out`/`hook_attn_out` are
  what the sub-layer adds to the residual stream (for Gemma-2 after its post-MLP/post-attention norm).
* per-head hooks are `[batch, pos, heads, d_head]`; `hook_k`/`hook_v` of grouped-query models have
  `n_kv_heads` heads, as TransformerLens shows them; q/k are taken before rotary embeddings.

Padding: positions are derived from `attention_mask` (left or right padding both work); miStudio mostly
runs fixed, unpadded token windows, where the mask can be omitted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mistudio.errors import InvalidInputError
from mistudio.lm.loading import LoadedModel

LAYER_KINDS: tuple[str, ...] = (
    "hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out",
    "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_z",
)
GLOBAL_KINDS: tuple[str, ...] = ("hook_embed",)
HEAD_KINDS: tuple[str, ...] = ("attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_z")
_NAME = re.compile(r"blocks\.(\d+)\.(.+)")


@dataclass(frozen=True)
class _Layout:
    """Where a family keeps its modules (paths relative to the model, or to one decoder layer)."""

    embed: str
    layers: str
    attn_out: str  # output == hook_attn_out
    out_proj: str  # input == hook_z
    qkv: tuple[str, str, str] | str  # separate q/k/v projections, or one fused projection
    mlp_out: str  # output == hook_mlp_out
    mid_norm: str | None  # input == hook_resid_mid (None: parallel attention + MLP)


_LLAMA = _Layout("model.embed_tokens", "model.layers", "self_attn", "self_attn.o_proj",
                 ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "mlp", "post_attention_layernorm")
_LAYOUTS: dict[str, _Layout] = {
    "gpt2": _Layout("transformer.wte", "transformer.h", "attn", "attn.c_proj", "attn.c_attn", "mlp", "ln_2"),
    "gpt_neox": _Layout("gpt_neox.embed_in", "gpt_neox.layers", "attention", "attention.dense",
                        "attention.query_key_value", "mlp", None),
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "gemma": _LLAMA,
    "gemma2": _Layout("model.embed_tokens", "model.layers", "post_attention_layernorm", "self_attn.o_proj",
                      ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "post_feedforward_layernorm",
                      "pre_feedforward_layernorm"),
}

# A hook function gets (module args, module kwargs, module output or None) and returns the activation.
Extractor = Callable[[tuple[Any, ...], dict[str, Any], Any], torch.Tensor]


@dataclass(frozen=True)
class HookPoint:
    """A validated hook: the HF module to hook, whether to read its input or output, and how."""

    name: str
    kind: str
    layer: int | None
    module: nn.Module
    reads_input: bool
    extract: Extractor
    per_head: bool


class _StopForward(Exception):
    """Raised from a hook once every requested activation is captured, so later layers never run."""


def parse_hook_name(name: str) -> tuple[int | None, str]:
    """Split a TransformerLens hook name into (layer or None, kind), e.g. `(3, "hook_resid_post")`."""
    if name in GLOBAL_KINDS:
        return None, name
    match = _NAME.fullmatch(name)
    if match is None or match.group(2) not in LAYER_KINDS:
        raise InvalidInputError(
            f"Unsupported hook name {name!r}. Use hook_embed or blocks.<layer>.<kind> with kind one of "
            f"{', '.join(LAYER_KINDS)}."
        )
    return int(match.group(1)), match.group(2)


def _first(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, tuple) else value


def _hidden_in(args: tuple[Any, ...], kwargs: dict[str, Any], _out: Any) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _output(_args: tuple[Any, ...], _kwargs: dict[str, Any], out: Any) -> torch.Tensor:
    return _first(out)


def _split_heads(t: torch.Tensor, d_head: int) -> torch.Tensor:
    return t.reshape(*t.shape[:-1], t.shape[-1] // d_head, d_head)


def _head_extractor(loaded: LoadedModel, kind: str) -> tuple[str, bool, Extractor]:
    """(module path relative to the layer, reads input?, extractor) for a per-head hook."""
    layout = _LAYOUTS[loaded.family]
    d_head = loaded.d_head
    if kind == "attn.hook_z":
        return layout.out_proj, True, lambda a, k, o: _split_heads(_hidden_in(a, k, o), d_head)
    index = "qkv".index(kind[-1])
    if isinstance(layout.qkv, tuple):
        return layout.qkv[index], False, lambda a, k, o: _split_heads(_first(o), d_head)
    if loaded.family == "gpt2":  # [q | k | v] along the feature axis
        d_model = loaded.d_model
        return layout.qkv, False, lambda a, k, o: _split_heads(_first(o).split(d_model, dim=-1)[index], d_head)
    # GPT-NeoX: per head [q_h | k_h | v_h]
    return layout.qkv, False, lambda a, k, o: _split_heads(_first(o), 3 * d_head).chunk(3, dim=-1)[index]


def block_module(loaded: LoadedModel, layer: int) -> nn.Module:
    """The HF decoder layer `layer` of a loaded model."""
    layers = loaded.model.get_submodule(_LAYOUTS[loaded.family].layers)
    if not isinstance(layers, nn.ModuleList):
        raise TypeError(f"{_LAYOUTS[loaded.family].layers} of a {loaded.family} model is not a ModuleList")
    return layers[layer]


def resolve_hook(loaded: LoadedModel, hook_name: str) -> HookPoint:
    """Validate a hook name for this model (family, layer range, kind) and find its HF module."""
    if loaded.family not in _LAYOUTS:
        raise InvalidInputError(
            f"Hooks are not available for {loaded.family!r} models; supported: {', '.join(_LAYOUTS)}."
        )
    layer, kind = parse_hook_name(hook_name)
    layout = _LAYOUTS[loaded.family]
    model = loaded.model
    if layer is None:
        return HookPoint(hook_name, kind, None, model.get_submodule(layout.embed), False, _output, False)
    if not 0 <= layer < loaded.n_layers:
        raise InvalidInputError(
            f"Hook {hook_name!r} names layer {layer}, but {loaded.name} has layers 0..{loaded.n_layers - 1}."
        )
    block = block_module(loaded, layer)
    if kind == "hook_resid_pre":
        return HookPoint(hook_name, kind, layer, block, True, _hidden_in, False)
    if kind == "hook_resid_post":
        return HookPoint(hook_name, kind, layer, block, False, _output, False)
    if kind == "hook_attn_out":
        return HookPoint(hook_name, kind, layer, block.get_submodule(layout.attn_out), False, _output, False)
    if kind == "hook_mlp_out":
        return HookPoint(hook_name, kind, layer, block.get_submodule(layout.mlp_out), False, _output, False)
    if kind == "hook_resid_mid":
        mid_norm = layout.mid_norm
        if loaded.family == "gpt_neox" and not getattr(model.config, "use_parallel_residual", True):
            mid_norm = "post_attention_layernorm"
        if mid_norm is None:
            raise InvalidInputError(
                f"{loaded.name} runs attention and MLP in parallel, so it has no hook_resid_mid; "
                "use hook_resid_pre or hook_resid_post."
            )
        return HookPoint(hook_name, kind, layer, block.get_submodule(mid_norm), True, _hidden_in, False)
    path, reads_input, extract = _head_extractor(loaded, kind)
    return HookPoint(hook_name, kind, layer, block.get_submodule(path), reads_input, extract, True)


def _position_ids(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def capture_many(
    loaded: LoadedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    hooks: Sequence[str | HookPoint],
) -> dict[str, torch.Tensor]:
    """Run the model on `input_ids` [batch, pos] and return each hook's activation; stops after the last one."""
    resolved = [h if isinstance(h, HookPoint) else resolve_hook(loaded, h) for h in hooks]
    points = list({point.name: point for point in resolved}.values())
    if not points:
        raise InvalidInputError("No hook names given.")
    captured: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(point: HookPoint) -> Callable[..., None]:
        def hook(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any = None) -> None:
            captured[point.name] = point.extract(args, kwargs, output)
            if len(captured) == len(points):
                raise _StopForward

        return hook

    for point in points:
        if point.reads_input:
            handles.append(point.module.register_forward_pre_hook(make_hook(point), with_kwargs=True))
        else:
            handles.append(point.module.register_forward_hook(make_hook(point), with_kwargs=True))
    device = loaded.device
    mask = attention_mask.to(device) if attention_mask is not None else None
    position_ids = _position_ids(mask)
    try:
        with torch.inference_mode():
            loaded.model(input_ids=input_ids.to(device), attention_mask=mask, position_ids=position_ids,
                         use_cache=False)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    missing = [p.name for p in points if p.name not in captured]
    if missing:
        raise RuntimeError(f"Hooks never fired: {', '.join(missing)}")
    return captured


def capture_activations(
    loaded: LoadedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    hook_name: str | HookPoint,
    head_index: int | None = None,
) -> torch.Tensor:
    """Activations at one hook ([batch, pos, d] or [batch, pos, heads, d_head]; one head with `head_index`)."""
    point = hook_name if isinstance(hook_name, HookPoint) else resolve_hook(loaded, hook_name)
    if head_index is not None and not point.per_head:
        raise InvalidInputError(f"head_index applies only to per-head hooks ({', '.join(HEAD_KINDS)}).")
    acts = capture_many(loaded, input_ids, attention_mask, [point])[point.name]
    if head_index is None:
        return acts
    if not 0 <= head_index < acts.shape[-2]:
        raise InvalidInputError(f"head_index {head_index} is out of range 0..{acts.shape[-2] - 1} for {point.name}.")
    return acts[..., head_index, :].contiguous()

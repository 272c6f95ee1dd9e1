"""TransformerLens hook names and HF module paths mapped onto HF modules; capture that stops at the hook.

Supported names (L = layer):

* TransformerLens names: `hook_embed`, `blocks.L.hook_resid_pre`, `blocks.L.hook_resid_mid`,
  `blocks.L.hook_resid_post`, `blocks.L.hook_attn_out`, `blocks.L.hook_mlp_in`, `blocks.L.hook_mlp_out`,
  `blocks.L.attn.hook_q|hook_k|hook_v|hook_z`, `blocks.L.ln1.hook_normalized`, `blocks.L.ln2.hook_normalized`,
  and the TransformerBridge names `blocks.L.mlp.hook_in|hook_out`. Values equal TransformerLens `run_with_cache` on a
  model loaded with `from_pretrained_no_processing` (see `lm.processing` for processed-weight variants):

  - `hook_embed` is the embedding module's output: for Gemma 1/2/3 it includes the √d_model scale
    (transformers 5 applies it inside the embedding; TransformerLens folds it into W_E).
  - `hook_resid_*` are residual-stream states (never a norm's output); `hook_mlp_out`/`hook_attn_out` are
    what the sub-layer adds to the residual stream (for Gemma-2/3 after its post-MLP/post-attention norm;
    for hybrid Qwen3.5 / Qwen3-Next layers the token mixer's output, linear attention included; for MoE
    models the whole sparse block's output).
  - `hook_mlp_in` is TransformerLens' own: the residual stream entering the MLP branch, *before* its norm
    (`ln2`), i.e. `hook_resid_mid` (for parallel attention + MLP, `hook_resid_pre`). This is not what Gemma
    Scope 2 transcoders read: SAELens records those as `hook_mlp_in` with the HF path
    `model.layers.L.pre_feedforward_layernorm.output` (the normalised MLP input, gain applied), so use that
    path (the SAE's `hf_hook_name`) for them. `blocks.L.mlp.hook_in` / `mlp.hook_out` are the MLP module's own
    input (normalised, gain applied) and output (for Gemma-2/3 before the post-MLP norm): TransformerBridge's
    names, used by circuit-tracer transcoders.
  - `ln1|ln2.hook_normalized` are TransformerLens' normalised norm inputs *without* the gain: for RMSNorm
    `x / sqrt(mean(x²) + eps)`, for LayerNorm `(x - mean) / sqrt(var + eps)`; ln2 is the MLP's norm.
  - per-head hooks are `[batch, pos, heads, d_head]`; `hook_k`/`hook_v` of grouped-query models have
    `n_kv_heads` heads, as TransformerLens shows them; q/k are taken before q/k norms and rotary embeddings
    (Qwen3.5 / Qwen3-Next: the query half of the gated q projection); `hook_z` is the output projection's
    input (Qwen3.5 / Qwen3-Next: after the output gate). Linear-attention layers have no per-head hooks.

* HF module paths, as SAELens 6 records them in `hf_hook_name`: a module path of the causal LM ending in
  `.input` (the module's first input) or `.output` (its output; the first element when it returns a tuple),
  e.g. `model.layers.12.output`, `model.layers.12.pre_feedforward_layernorm.output`,
  `model.layers.3.self_attn.o_proj.input`; a bare module path (`model.layers.12`, as Qwen Scope records it)
  means its output. For the multimodal Gemma 3 (`Gemma3ForConditionalGeneration`, gemma-3-4b and larger)
  paths of the text-only layout (`model.layers.L…`, `model.embed_tokens`, `model.norm`, which SAELens's Gemma
  Scope 2 loader writes) resolve into its language model (`model.language_model.layers.L…`); the model's own
  paths (`model.language_model.…`) and transformers 4's `language_model.model.…` work too.

Padding: positions are derived from `attention_mask` (left or right padding both work); miStudio mostly
runs fixed, unpadded token windows, where the mask can be omitted.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mistudio.errors import InvalidInputError

if TYPE_CHECKING:  # annotations only: importing lm.loading pulls in transformers
    from mistudio.lm.loading import LoadedModel

LAYER_KINDS: tuple[str, ...] = (
    "hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_in", "hook_mlp_out",
    "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_z", "mlp.hook_in", "mlp.hook_out",
    "ln1.hook_normalized", "ln2.hook_normalized",
)
GLOBAL_KINDS: tuple[str, ...] = ("hook_embed",)
HEAD_KINDS: tuple[str, ...] = ("attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_z")
HF_KIND = "hf_module"  # the kind of a hook given as an HF module path
_NAME = re.compile(r"blocks\.(\d+)\.(.+)")
_HF_SUFFIXES = (".input", ".output")


@dataclass(frozen=True)
class _Layout:
    """Where a family keeps its modules: `embed`/`layers` relative to the model, the rest to one layer."""

    embed: str
    layers: str
    attn_out: tuple[str, ...]  # output == hook_attn_out (the first that exists in the layer)
    out_proj: str  # input == hook_z
    qkv: tuple[str, str, str] | str  # separate q/k/v projections, or one fused projection
    mlp: str  # the MLP (or sparse MoE) module: input == mlp.hook_in
    mlp_out: str  # output == hook_mlp_out
    attn_norm: str  # input == hook_resid_pre, ln1
    mid_norm: str | None  # input == hook_resid_mid == hook_mlp_in, ln2 (None: parallel attention + MLP)
    gated_query: bool = False  # q_proj emits [query | gate] per head (Qwen3.5, Qwen3-Next)
    # Path prefixes of another layout of the same weights (e.g. the text-only causal LM) → this model's.
    aliases: tuple[tuple[str, str], ...] = ()


_ATTN_QKV = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
_LLAMA = _Layout("model.embed_tokens", "model.layers", ("self_attn",), "self_attn.o_proj", _ATTN_QKV, "mlp",
                 "mlp", "input_layernorm", "post_attention_layernorm")
_GEMMA2 = _Layout("model.embed_tokens", "model.layers", ("post_attention_layernorm",), "self_attn.o_proj",
                  _ATTN_QKV, "mlp", "post_feedforward_layernorm", "input_layernorm",
                  "pre_feedforward_layernorm")
_GEMMA3_MULTIMODAL = _Layout(
    "model.language_model.embed_tokens", "model.language_model.layers", ("post_attention_layernorm",),
    "self_attn.o_proj", _ATTN_QKV, "mlp", "post_feedforward_layernorm", "input_layernorm",
    "pre_feedforward_layernorm",
    aliases=(("model.", "model.language_model."), ("language_model.model.", "model.language_model."),
             ("language_model.lm_head", "lm_head")),
)
_HYBRID = _Layout("model.embed_tokens", "model.layers", ("self_attn", "linear_attn"), "self_attn.o_proj",
                  _ATTN_QKV, "mlp", "mlp", "input_layernorm", "post_attention_layernorm", gated_query=True)
_LAYOUTS: dict[str, _Layout] = {
    "gpt2": _Layout("transformer.wte", "transformer.h", ("attn",), "attn.c_proj", "attn.c_attn", "mlp", "mlp",
                    "ln_1", "ln_2"),
    "gpt_neox": _Layout("gpt_neox.embed_in", "gpt_neox.layers", ("attention",), "attention.dense",
                        "attention.query_key_value", "mlp", "mlp", "input_layernorm", None),
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "qwen3_moe": _LLAMA,
    "gpt_oss": _LLAMA,
    "gemma": _LLAMA,
    "gemma2": _GEMMA2,
    "gemma3_text": _GEMMA2,
    "gemma3": _GEMMA3_MULTIMODAL,
    "qwen3_5": _HYBRID,
    "qwen3_5_text": _HYBRID,
    "qwen3_5_moe": _HYBRID,
    "qwen3_5_moe_text": _HYBRID,
    "qwen3_next": _HYBRID,
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
    """Split a TransformerLens hook name into (layer or None, kind), e.g. `(3, "hook_resid_post")`.

    Raises:
        InvalidInputError: the name is not a supported TransformerLens hook name.
    """
    if name in GLOBAL_KINDS:
        return None, name
    match = _NAME.fullmatch(name)
    if match is None or match.group(2) not in LAYER_KINDS:
        raise InvalidInputError(
            f"Unsupported hook name {name!r}. Use hook_embed, blocks.<layer>.<kind> with kind one of "
            f"{', '.join(LAYER_KINDS)}, or an HF module path ending in .input or .output "
            "(e.g. model.layers.3.output)."
        )
    return int(match.group(1)), match.group(2)


def is_hf_module_path(name: str) -> bool:
    """Whether a hook name is an HF module path (`model.layers.3.output`, `model.layers.3`) rather than a
    TransformerLens name (`hook_…`, `blocks.L.…`)."""
    return "." in name and not name.startswith(("blocks.", "hook_"))


def _first(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, tuple) else value


def _hidden_in(args: tuple[Any, ...], kwargs: dict[str, Any], _out: Any) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _module_input(args: tuple[Any, ...], kwargs: dict[str, Any], _out: Any) -> torch.Tensor:
    """A module's first input: its first positional tensor, else its first tensor keyword argument."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value
    raise RuntimeError("the hooked module was called without a tensor input")


def _output(_args: tuple[Any, ...], _kwargs: dict[str, Any], out: Any) -> torch.Tensor:
    return _first(out)


def _split_heads(t: torch.Tensor, d_head: int) -> torch.Tensor:
    return t.reshape(*t.shape[:-1], t.shape[-1] // d_head, d_head)


def _normalizer(norm: nn.Module) -> Extractor:
    """TransformerLens' `hook_normalized` of a norm, from its input: RMS- or Layer-normalised, no gain."""
    eps = float(getattr(norm, "eps", None) or getattr(norm, "variance_epsilon", None) or 1e-5)
    layer_norm = isinstance(norm, nn.LayerNorm)

    def normalized(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> torch.Tensor:
        x = _hidden_in(args, kwargs, out)
        x32 = x.float()
        if layer_norm:
            x32 = x32 - x32.mean(-1, keepdim=True)
        return (x32 / (x32.pow(2).mean(-1, keepdim=True) + eps).sqrt()).to(x.dtype)

    return normalized


def _head_extractor(loaded: LoadedModel, kind: str) -> tuple[str, bool, Extractor]:
    """(module path relative to the layer, reads input?, extractor) for a per-head hook."""
    layout = _LAYOUTS[loaded.family]
    d_head = loaded.d_head
    if kind == "attn.hook_z":
        return layout.out_proj, True, lambda a, k, o: _split_heads(_hidden_in(a, k, o), d_head)
    index = "qkv".index(kind[-1])
    if isinstance(layout.qkv, tuple):
        if index == 0 and layout.gated_query:  # per head [query | gate]
            return layout.qkv[0], False, lambda a, k, o: _split_heads(_first(o), 2 * d_head)[..., :d_head]
        return layout.qkv[index], False, lambda a, k, o: _split_heads(_first(o), d_head)
    if loaded.family == "gpt2":  # [q | k | v] along the feature axis
        d_model = loaded.d_model
        return layout.qkv, False, lambda a, k, o: _split_heads(_first(o).split(d_model, dim=-1)[index], d_head)
    # GPT-NeoX: per head [q_h | k_h | v_h]
    return layout.qkv, False, lambda a, k, o: _split_heads(_first(o), 3 * d_head).chunk(3, dim=-1)[index]


def _layout(loaded: LoadedModel) -> _Layout:
    if loaded.family not in _LAYOUTS:
        raise InvalidInputError(
            f"Hooks are not available for {loaded.family!r} models; supported: {', '.join(_LAYOUTS)}."
        )
    return _LAYOUTS[loaded.family]


def block_module(loaded: LoadedModel, layer: int) -> nn.Module:
    """The HF decoder layer `layer` of a loaded model."""
    path = _layout(loaded).layers
    layers = loaded.model.get_submodule(path)
    if not isinstance(layers, nn.ModuleList):
        raise TypeError(f"{path} of a {loaded.family} model is not a ModuleList")
    return layers[layer]


def _has_submodule(module: nn.Module, path: str) -> bool:
    try:
        module.get_submodule(path)
    except AttributeError:
        return False
    return True


def _layer_of(layout: _Layout, path: str) -> int | None:
    """The decoder layer a module path lies in (the index under the layers list), or None."""
    prefix = layout.layers + "."
    if not path.startswith(prefix):
        return None
    index = path[len(prefix):].split(".", 1)[0]
    return int(index) if index.isdigit() else None


def _candidate_paths(layout: _Layout, path: str) -> list[str]:
    """`path` and its translations through the layout's aliases (text-only layout → this model's)."""
    aliased = [target + path[len(source):] for source, target in layout.aliases if path.startswith(source)]
    return [path, *aliased]


def _nearest_paths(loaded: LoadedModel, path: str, suffix: str) -> list[str]:
    """Up to five hookable module paths close to `path` (else examples from the first decoder layer)."""
    layout = _layout(loaded)
    names = [name for name, module in loaded.model.named_modules()
             if name and not isinstance(module, (nn.ModuleList, nn.ModuleDict))]
    close = difflib.get_close_matches(_candidate_paths(layout, path)[-1], names, n=5, cutoff=0.6)
    if not close:
        first = f"{layout.layers}.0"
        children = [n for n in names if n.startswith(first + ".") and n.count(".") == first.count(".") + 1]
        close = [first, *children[:4]]
    return [name + suffix for name in close]


def _resolve_hf_path(loaded: LoadedModel, name: str) -> HookPoint:
    layout = _layout(loaded)
    reads_input = name.endswith(".input")
    suffix = ".input" if reads_input else ".output"
    path = name[: -len(suffix)] if name.endswith(_HF_SUFFIXES) else name
    for candidate in _candidate_paths(layout, path):
        if candidate and _has_submodule(loaded.model, candidate):
            module = loaded.model.get_submodule(candidate)
            extract = _module_input if reads_input else _output
            return HookPoint(name, HF_KIND, _layer_of(layout, candidate), module, reads_input, extract, False)
    layer = _layer_of(layout, _candidate_paths(layout, path)[-1])
    out_of_range = ""
    if layer is not None and layer >= loaded.n_layers:
        out_of_range = f" (it has layers 0..{loaded.n_layers - 1})"
    nearest = _nearest_paths(loaded, path, suffix)
    raise InvalidInputError(
        f"Hook {name!r}: {loaded.name} has no module {path!r}{out_of_range}. "
        f"Nearest valid paths: {', '.join(nearest)}. "
        "An HF hook path is a module path of the model followed by .input or .output."
    )


def _attention_layer_error(loaded: LoadedModel, layer: int, kind: str) -> InvalidInputError:
    layer_types = getattr(loaded.model.config.get_text_config(), "layer_types", None) or []
    full = [i for i, t in enumerate(layer_types) if t == "full_attention"]
    return InvalidInputError(
        f"Layer {layer} of {loaded.name} is a linear-attention layer, which has no {kind}; "
        f"per-head hooks exist on its full-attention layers ({', '.join(map(str, full))})."
    )


def resolve_hook(loaded: LoadedModel, hook_name: str) -> HookPoint:
    """Validate a hook name (TransformerLens name or HF module path) for this model and find its HF module.

    Raises:
        InvalidInputError: the family has no hook layout, the name is not a supported hook, its layer is out
            of range, or the HF module path does not exist in this model (the nearest valid paths are listed).
    """
    layout = _layout(loaded)
    if is_hf_module_path(hook_name):
        return _resolve_hf_path(loaded, hook_name)
    layer, kind = parse_hook_name(hook_name)
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
        path = next(p for p in layout.attn_out if _has_submodule(block, p))
        return HookPoint(hook_name, kind, layer, block.get_submodule(path), False, _output, False)
    if kind == "hook_mlp_out":
        return HookPoint(hook_name, kind, layer, block.get_submodule(layout.mlp_out), False, _output, False)
    if kind == "mlp.hook_in":
        return HookPoint(hook_name, kind, layer, block.get_submodule(layout.mlp), True, _hidden_in, False)
    if kind == "mlp.hook_out":
        return HookPoint(hook_name, kind, layer, block.get_submodule(layout.mlp), False, _output, False)
    if kind == "ln1.hook_normalized":
        norm = block.get_submodule(layout.attn_norm)
        return HookPoint(hook_name, kind, layer, norm, True, _normalizer(norm), False)
    mid_norm = layout.mid_norm
    if loaded.family == "gpt_neox" and not getattr(model.config, "use_parallel_residual", True):
        mid_norm = "post_attention_layernorm"
    if kind == "ln2.hook_normalized":
        norm = block.get_submodule(mid_norm or "post_attention_layernorm")
        return HookPoint(hook_name, kind, layer, norm, True, _normalizer(norm), False)
    if kind == "hook_mlp_in":
        if mid_norm is None:  # parallel attention + MLP: the MLP branch reads resid_pre
            return HookPoint(hook_name, kind, layer, block, True, _hidden_in, False)
        return HookPoint(hook_name, kind, layer, block.get_submodule(mid_norm), True, _hidden_in, False)
    if kind == "hook_resid_mid":
        if mid_norm is None:
            raise InvalidInputError(
                f"{loaded.name} runs attention and MLP in parallel, so it has no hook_resid_mid; "
                "use hook_resid_pre or hook_resid_post."
            )
        return HookPoint(hook_name, kind, layer, block.get_submodule(mid_norm), True, _hidden_in, False)
    path, reads_input, extract = _head_extractor(loaded, kind)
    if not _has_submodule(block, path):
        raise _attention_layer_error(loaded, layer, kind)
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
    """Run the model on `input_ids` [batch, pos] and return each hook's activation; stops after the last one.

    Raises:
        InvalidInputError: no hooks given, or a hook name does not resolve (see `resolve_hook`).
    """
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
    """Activations at one hook ([batch, pos, d] or [batch, pos, heads, d_head]; one head with `head_index`).

    Raises:
        InvalidInputError: the hook does not resolve, or `head_index` is given for a hook without heads or is
            out of range.
    """
    point = hook_name if isinstance(hook_name, HookPoint) else resolve_hook(loaded, hook_name)
    if head_index is not None and not point.per_head:
        raise InvalidInputError(f"head_index applies only to per-head hooks ({', '.join(HEAD_KINDS)}).")
    acts = capture_many(loaded, input_ids, attention_mask, [point])[point.name]
    if head_index is None:
        return acts
    if not 0 <= head_index < acts.shape[-2]:
        raise InvalidInputError(f"head_index {head_index} is out of range 0..{acts.shape[-2] - 1} for {point.name}.")
    return acts[..., head_index, :].contiguous()

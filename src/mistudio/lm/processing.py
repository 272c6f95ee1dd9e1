"""Reproduce TransformerLens weight processing on activations captured from the unprocessed HF model.

SAELens trains on `HookedTransformer.from_pretrained_no_processing(model, **model_from_pretrained_kwargs)`,
so an SAE whose config sets e.g. `center_writing_weights: true` saw activations of a processed model.
What each flag does to the activations miStudio captures (exact, checked against TransformerLens):

* `center_writing_weights` (LayerNorm models only: GPT-2, GPT-NeoX; TransformerLens skips RMSNorm models):
  every write to the residual stream (W_E, W_pos, W_O, b_O, W_out, b_out) is made mean-free over d_model,
  so `hook_embed`, `hook_resid_*`, `hook_attn_out`, `hook_mlp_out` become `x - x.mean(-1)`.
* `fold_value_biases`: the value bias moves into b_O, so `hook_v`/`hook_z` lose it: `x - b_V` per head
  (with `fold_ln` on a LayerNorm model the bias first absorbs `ln1.b @ W_V`).
* `fold_ln`, `center_unembed`: no effect on these hooks (only on weights and logits; see `lm.unembed`).
* `refactor_factored_attn_matrices`: changes q/k/v/z in a way that is not reproduced: refused for those hooks.

The transform takes the activations as `lm.hooks.capture_activations` returns them: per-head hooks
`[..., heads, d_head]` (or `[..., d_head]` for one head); an SAE over all heads flattens them afterwards.
An HF module path (`model.layers.3.output`) names a hook of the HF model itself, which SAELens reads without
TransformerLens processing: its transform is the identity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from mistudio.errors import InvalidInputError
from mistudio.lm.hooks import block_module, is_hf_module_path, parse_hook_name, resolve_hook
from mistudio.lm.loading import LoadedModel, module_tensor

Transform = Callable[[torch.Tensor], torch.Tensor]

_RESIDUAL_WRITES = {"hook_embed", "hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out",
                    "hook_mlp_out", "hook_mlp_in"}
# LayerNorm families and the norm in front of their attention.
_ATTN_LAYER_NORM = {"gpt2": "ln_1", "gpt_neox": "input_layernorm"}


def pretrained_kwargs(sae_cfg: Any) -> dict[str, Any]:
    """The `model_from_pretrained_kwargs` of an SAE config (dict or object), or the kwargs dict itself."""
    if isinstance(sae_cfg, Mapping):
        if "model_from_pretrained_kwargs" in sae_cfg:
            return dict(sae_cfg["model_from_pretrained_kwargs"] or {})
        return dict(sae_cfg)
    return dict(getattr(sae_cfg, "model_from_pretrained_kwargs", None) or {})


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _center(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(-1, keepdim=True)


def _value_bias(loaded: LoadedModel, layer: int, fold_ln: bool) -> torch.Tensor:
    """The per-head value bias TransformerLens folds away, [n_kv_heads, d_head]: v of a zero normalised input."""
    point = resolve_hook(loaded, f"blocks.{layer}.attn.hook_v")
    ref = next(point.module.parameters())
    norm_out = torch.zeros(1, 1, loaded.d_model, dtype=ref.dtype, device=ref.device)
    norm_path = _ATTN_LAYER_NORM.get(loaded.family)
    if fold_ln and norm_path is not None:
        norm = block_module(loaded, layer).get_submodule(norm_path)
        norm_out = norm_out + module_tensor(norm, "bias").to(ref.dtype)
    with torch.inference_mode():
        out = point.module(norm_out)
    return point.extract((norm_out,), {}, out)[0, 0].float()


def activation_transform_for(
    sae_cfg: Any, hook_name: str, loaded: LoadedModel, head_index: int | None = None
) -> Transform:
    """A function mapping activations from `lm.hooks.capture_activations` (same hook, same head_index) to the
    activations of the TransformerLens model the SAE was trained on (`model_from_pretrained_kwargs`)."""
    if is_hf_module_path(hook_name):
        return _identity
    kwargs = pretrained_kwargs(sae_cfg)
    layer, kind = parse_hook_name(hook_name)
    layer_norm_model = loaded.family in _ATTN_LAYER_NORM
    if kind in _RESIDUAL_WRITES:
        return _center if kwargs.get("center_writing_weights") and layer_norm_model else _identity
    if kwargs.get("refactor_factored_attn_matrices"):
        raise InvalidInputError(
            f"SAEs on {kind} of a model loaded with refactor_factored_attn_matrices=True are not supported."
        )
    if kind not in ("attn.hook_v", "attn.hook_z") or not kwargs.get("fold_value_biases"):
        return _identity
    assert layer is not None
    bias = _value_bias(loaded, layer, fold_ln=bool(kwargs.get("fold_ln")) and layer_norm_model)
    if kind == "attn.hook_z":
        bias = bias.repeat_interleave(loaded.n_heads // bias.shape[0], dim=0)
    if head_index is not None:
        bias = bias[head_index]

    def remove_value_bias(x: torch.Tensor) -> torch.Tensor:
        return x - bias.to(device=x.device, dtype=x.dtype)

    return remove_value_bias

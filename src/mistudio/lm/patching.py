"""Replace or modify the activation at a hook during a forward: the one place that writes activations.

`ActivationPatch(loaded, hook, edit)` registers a hook on the HF module `lm.hooks.resolve_hook` finds and
replaces the hook's tensor by `edit(activation)` (same shape) for every forward while installed. The activation
`edit` sees is the one `lm.hooks.capture_many` returns for that hook: per-head hooks (`attn.hook_z`) as
`[batch, pos, heads, d_head]` (with `split_heads=False`, the module's own `[batch, pos, heads·d_head]` tensor).
Evaluation splices an SAE's reconstruction (or zeros) in with it; steering adds its vectors with it.

Writable hooks are those whose value is the HF tensor itself: `hook_embed`, `hook_resid_pre`,
`hook_resid_post`, `hook_attn_out`, `hook_mlp_out`, `hook_mlp_in` (the MLP norm's input, which only the MLP
branch reads, as in TransformerLens), `mlp.hook_in`, `mlp.hook_out`, `attn.hook_z` and HF module paths
(`….input` / `….output`). The others are computed inside a module or are not the tensor the model passes on
(`ln1|ln2.hook_normalized`, `attn.hook_q|k|v`, `hook_resid_mid`, and `hook_mlp_in` of a parallel attention + MLP
model, whose value is the block's input); patching them raises `InvalidInputError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mistudio.errors import InvalidInputError
from mistudio.lm.hooks import HookPoint, block_module, resolve_hook

if TYPE_CHECKING:  # annotations only: importing lm.loading pulls in transformers
    from mistudio.lm.loading import LoadedModel

Edit = Callable[[torch.Tensor], torch.Tensor]

_COMPUTED_INSIDE = {
    "ln1.hook_normalized": "the normalised value is computed inside the norm",
    "ln2.hook_normalized": "the normalised value is computed inside the norm",
    "attn.hook_q": "q/k/v are computed inside attention (fused or gated projections, rotary embeddings)",
    "attn.hook_k": "q/k/v are computed inside attention (fused or gated projections, rotary embeddings)",
    "attn.hook_v": "q/k/v are computed inside attention (fused or gated projections, rotary embeddings)",
    "hook_resid_mid": "it is read at the MLP norm's input, which only the MLP branch sees, not the residual stream",
}


def check_writable(loaded: LoadedModel, point: HookPoint) -> None:
    """Refuse a hook whose value cannot be replaced by writing one HF tensor.

    Raises:
        InvalidInputError: the hook is not writable (the message says why and which hooks are).
    """
    reason = _COMPUTED_INSIDE.get(point.kind)
    if reason is None and point.kind == "hook_mlp_in" and point.layer is not None \
            and point.module is block_module(loaded, point.layer):
        reason = "this model runs attention and the MLP in parallel, so the MLP's input is the block's input"
    if reason is not None:
        raise InvalidInputError(
            f"{point.name} ({point.kind}) is not supported for writing activations: {reason}. Use the residual "
            "stream (hook_resid_pre/post), an attention or MLP output (hook_attn_out, hook_mlp_out, "
            "mlp.hook_out), mlp.hook_in, attn.hook_z or an HF module path.")


def _replaced_input(args: tuple[Any, ...], kwargs: dict[str, Any],
                    fn: Callable[[torch.Tensor], torch.Tensor]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) with the module's hooked input (the tensor `lm.hooks` reads) replaced by `fn(input)`."""
    if args and isinstance(args[0], torch.Tensor):
        return (fn(args[0]), *args[1:]), kwargs
    if isinstance(kwargs.get("hidden_states"), torch.Tensor):
        return args, {**kwargs, "hidden_states": fn(kwargs["hidden_states"])}
    for index, value in enumerate(args):
        if isinstance(value, torch.Tensor):
            return (*args[:index], fn(value), *args[index + 1:]), kwargs
    for key, value in kwargs.items():
        if isinstance(value, torch.Tensor):
            return args, {**kwargs, key: fn(value)}
    raise RuntimeError("the hooked module was called without a tensor input")


class ActivationPatch:
    """Replaces the activation at one hook by `edit(activation)` in every forward while `installed()`.

    Raises:
        InvalidInputError: the hook does not resolve or is not writable (see `check_writable`).
    """

    def __init__(self, loaded: LoadedModel, hook: str | HookPoint, edit: Edit, *, split_heads: bool = True) -> None:
        self.loaded = loaded
        self.point = hook if isinstance(hook, HookPoint) else resolve_hook(loaded, hook)
        check_writable(loaded, self.point)
        self.edit = edit
        self.d_head = loaded.d_head if self.point.per_head and split_heads else None

    def apply(self, h: torch.Tensor) -> torch.Tensor:
        """The replacement of the HF tensor `h` at the hook (`edit` of the hook's view of it, cast to h's dtype).

        Raises:
            ValueError: `edit` returned a tensor of another shape.
        """
        view = h.reshape(*h.shape[:-1], -1, self.d_head) if self.d_head is not None else h
        out = self.edit(view)
        if out.shape != view.shape:
            raise ValueError(f"{self.point.name}: the edit returned shape {tuple(out.shape)} for an activation of "
                             f"shape {tuple(view.shape)}")
        return out.reshape(h.shape).to(device=h.device, dtype=h.dtype)

    def _pre_hook(self, _module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return _replaced_input(args, kwargs, self.apply)

    def _post_hook(self, _module: nn.Module, _args: tuple[Any, ...], _kwargs: dict[str, Any], output: Any) -> Any:
        if isinstance(output, tuple):
            return (self.apply(output[0]), *output[1:])
        return self.apply(output)

    @contextmanager
    def installed(self) -> Iterator[ActivationPatch]:
        """Register the patch on the model for the duration of the block."""
        module = self.point.module
        if self.point.reads_input:
            handle = module.register_forward_pre_hook(self._pre_hook, with_kwargs=True)
        else:
            handle = module.register_forward_hook(self._post_hook, with_kwargs=True)
        try:
            yield self
        finally:
            handle.remove()


@contextmanager
def patch_activations(loaded: LoadedModel, edits: Sequence[tuple[str | HookPoint, Edit]], *,
                      split_heads: bool = True) -> Iterator[list[ActivationPatch]]:
    """Install one `ActivationPatch` per `(hook, edit)` for the duration of the block.

    Raises:
        InvalidInputError: a hook does not resolve or is not writable.
    """
    patches = [ActivationPatch(loaded, hook, edit, split_heads=split_heads) for hook, edit in edits]
    with ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch.installed())
        yield patches

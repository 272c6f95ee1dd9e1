"""How an SAE reads the model, shared by the extraction engine and live inference: the hooks it captures, the
transform from captured activations to the SAE's training distribution (one head, TransformerLens weight
processing, heads flattened), and which `expected_average_only_in` factor is folded into it.

Both the extraction and live inference call these functions, so a live activation equals the extraction's value
for the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from mistudio.errors import InvalidInputError

if TYPE_CHECKING:  # annotations only: importing lm.loading pulls in transformers
    from mistudio.lm.loading import LoadedModel
    from mistudio.saes.model import SAE, SAEConfig

Transform = Callable[[torch.Tensor], torch.Tensor]


def sae_hooks(sae: SAE, *, sae_id: str | None = None) -> tuple[str, str | None]:
    """(the hook the SAE reads, the hook a transcoder's reconstruction is judged against or None): the exact HF
    module path when the config records one (`hf_hook_name`, `hf_hook_name_out`), else the TransformerLens name.

    Raises:
        InvalidInputError: the SAE's config names no hook (the message starts with `sae_id` when given).
    """
    cfg = sae.cfg
    prefix = f"SAE {sae_id}: " if sae_id is not None else ""
    read = cfg.hf_hook_name or cfg.hook_name
    if not read:
        raise InvalidInputError(f"{prefix}the SAE does not say which hook it reads (no hook_name in its config)")
    if not sae.is_transcoder:
        return read, None
    out = cfg.hf_hook_name_out or cfg.hook_name_out
    if not out:
        raise InvalidInputError(
            f"{prefix}the transcoder does not say which hook it writes (no hook_name_out in its config)")
    return read, out


@dataclass(frozen=True)
class InputTransforms:
    """The hooks an SAE reads on one loaded model and the transforms of their captured activations."""

    hook: str
    hook_out: str | None
    head_index: int | None
    transform: Transform
    target_transform: Transform | None


def input_transforms(loaded: LoadedModel, sae: SAE, *, sae_id: str | None = None) -> InputTransforms:
    """The SAE's hooks resolved on `loaded` and the activation transforms of its config
    (`lm.processing.activation_transform_for`, input hook with the SAE's head index, a transcoder's output hook).

    Raises:
        InvalidInputError: the SAE names no hook (prefixed with `sae_id` when given), a hook does not exist in
            the model, or the weight processing is not reproducible for the hook.
    """
    from mistudio.lm.hooks import resolve_hook
    from mistudio.lm.processing import activation_transform_for

    hook, hook_out = sae_hooks(sae, sae_id=sae_id)
    resolve_hook(loaded, hook)
    transform = activation_transform_for(sae.cfg, hook, loaded, sae.cfg.hook_head_index)
    target_transform = None
    if hook_out is not None:
        resolve_hook(loaded, hook_out)
        target_transform = activation_transform_for(sae.cfg, hook_out, loaded)
    return InputTransforms(hook, hook_out, sae.cfg.hook_head_index, transform, target_transform)


def prepare_input(acts: torch.Tensor, transform: Transform | None, head_index: int | None, hook: str,
                  device: torch.device) -> torch.Tensor:
    """Captured activations (as `lm.hooks.capture_many` returns them) → the SAE's input on `device`: the head
    `head_index` of a per-head hook, the transform (built for the captured shape), heads flattened for an SAE
    over all heads.

    Raises:
        InvalidInputError: `head_index` is set but `hook` is not a per-head hook.
    """
    if head_index is not None:
        if acts.ndim != 4:
            raise InvalidInputError(f"hook_head_index is set but {hook} is not a per-head hook")
        acts = acts[..., head_index, :]
    if transform is not None:  # built for the captured shape ([..., heads, d_head] for per-head hooks)
        acts = transform(acts)
    if acts.ndim == 4:  # per-head hook (hook_z …) read by an SAE over all heads
        acts = acts.flatten(-2)
    return acts.to(device)


def known_norm_factor(cfg: SAEConfig, recorded: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `expected_average_only_in` factor to fold into an SAE whose config asks for one, as a manifest
    `normalization` entry without its `mode`: the release's (`extra["norm_scaling_factor"]`, not folded at load)
    first, else the one an extraction recorded (`recorded`, a manifest's `normalization`); None when the config
    asks for no such factor or it is still to be estimated."""
    if cfg.normalize_activations != "expected_average_only_in":
        return None
    known = cfg.extra.get("norm_scaling_factor")
    if known is not None:
        return {"factor": float(known), "source": "release"}
    if recorded and recorded.get("factor") is not None:
        return {k: v for k, v in recorded.items() if k != "mode"}
    return None

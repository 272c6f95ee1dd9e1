"""Logit lens: each feature's decoder direction, in the residual stream, through the (final-norm-folded)
unembedding.

Where the decoder writes decides the basis (`lens_basis`):
* a residual-stream hook (`hook_resid_*`, `hook_attn_out`, `hook_mlp_out`, `hook_mlp_in`, an HF layer output) of
  width d_model: `W_dec @ W_U` (a transcoder's decoder `[d_sae, d_out]` writes its output hook);
* `attn.hook_z` (the attention output projection's input): `W_dec @ W_O @ W_U`, with `W_O` the
  `[n_heads·d_head, d_model]` output projection (one head's `[d_head, d_model]` slice for a single-head SAE);
* `attn.hook_q/k/v` and any decoder whose width is not d_model: no logit lens (the reason is recorded).

Computed `chunk` features at a time on the device, so memory is O(chunk × vocab). Per feature: the top-k positive
and negative logits (ties broken by ascending token id among the `k + TIE_MARGIN` best candidates) and a
histogram of all vocabulary logits with `n_bins` equal bins over the feature's [min, max].
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from mistudio.saes.model import layer_from_hook_name

if TYPE_CHECKING:
    from mistudio.lm.loading import LoadedModel
    from mistudio.saes.model import SAE

TIE_MARGIN = 16


def _ranked(values: torch.Tensor, k: int, largest: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k (values, ids) per row (largest or smallest first), equal values ordered by ascending id."""
    vals, ids = torch.topk(values, min(values.shape[1], k + TIE_MARGIN), dim=1, largest=largest)
    ids, order = torch.sort(ids, dim=1, stable=True)
    vals = vals.gather(1, order)
    vals, order = torch.sort(vals, dim=1, descending=largest, stable=True)
    return vals[:, :k], ids.gather(1, order)[:, :k]


LENS_KEYS = ("pos_vals", "pos_ids", "neg_vals", "neg_ids", "hist_counts", "hist_min", "hist_max")
_QKV = re.compile(r"(attn\.hook_[qkv]|\.(q_proj|k_proj|v_proj|c_attn|query_key_value)\.output)$")
_Z = re.compile(r"(attn\.hook_z|(self_attn\.o_proj|attn\.c_proj|attention\.dense)\.input)$")


@dataclass(frozen=True)
class LensBasis:
    """How a decoder direction reaches the unembedding: `basis` is "residual" (W_dec @ W_U), "attn_z"
    (W_dec @ W_O @ W_U, all heads), "attn_z_head" (one head's W_O slice) or None (no logit lens, see
    `reason`); `hook` is the hook the decoder writes."""

    basis: str | None
    hook: str
    reason: str | None = None
    layer: int | None = None
    head: int | None = None

    def describe(self) -> dict[str, object]:
        """The manifest's record of the basis."""
        return {"basis": self.basis, "hook": self.hook, "reason": self.reason, "layer": self.layer,
                "head": self.head}


def decoder_hook(sae: SAE) -> str:
    """The hook the decoder writes: a transcoder's output hook (HF module path first), else the input hook."""
    cfg = sae.cfg
    out = (cfg.hf_hook_name_out or cfg.hook_name_out) if sae.is_transcoder else None
    return str(out or cfg.hf_hook_name or cfg.hook_name or "")


def lens_basis(sae: SAE, loaded: LoadedModel) -> LensBasis:
    """Decide how the SAE's decoder directions reach the unembedding of `loaded` (see the module docstring)."""
    hook = decoder_hook(sae)
    width = int(sae.W_dec.shape[1])
    layer = layer_from_hook_name(hook)
    if _QKV.search(hook):
        return LensBasis(None, hook, f"the decoder writes {hook}, a query/key/value space: it reaches the "
                         "residual stream only through attention, so no logit lens is defined", layer)
    if _Z.search(hook) and not sae.is_transcoder:
        head = sae.cfg.hook_head_index
        expected = loaded.d_head if head is not None else loaded.n_heads * loaded.d_head
        if layer is None or width != expected:
            return LensBasis(None, hook, f"the decoder width {width} does not match the attention output "
                             f"projection's input ({expected}) of {loaded.name}", layer, head)
        return LensBasis("attn_z_head" if head is not None else "attn_z", hook, None, layer, head)
    if width != loaded.d_model:
        return LensBasis(None, hook, f"the decoder width {width} is not the model's d_model {loaded.d_model}, so "
                         "its directions are not in the residual stream", layer)
    return LensBasis("residual", hook, None, layer)


@torch.no_grad()
def output_projection(loaded: LoadedModel, layer: int) -> torch.Tensor:
    """`W_O` of attention layer `layer` flattened over heads, `[n_heads·d_head, d_model]` (float32), read from
    the output projection (`nn.Linear`: weight transposed; GPT-2's Conv1D: its weight); any other module is
    probed with the identity, less its bias."""
    from mistudio.lm.hooks import resolve_hook

    module = resolve_hook(loaded, f"blocks.{layer}.attn.hook_z").module
    width = loaded.n_heads * loaded.d_head
    weight = getattr(module, "weight", None)
    if isinstance(module, torch.nn.Linear):
        return module.weight.detach().float().T
    if isinstance(weight, torch.Tensor) and tuple(weight.shape) == (width, loaded.d_model):  # x @ W + b
        return weight.detach().float()
    ref = next(module.parameters())
    eye = torch.eye(width, dtype=ref.dtype, device=ref.device)
    return (module(eye) - module(torch.zeros_like(eye[:1]))).float()


def lens_projection(loaded: LoadedModel, basis: LensBasis) -> torch.Tensor | None:
    """The matrix a decoder row goes through before the unembedding (None for the residual basis)."""
    if basis.basis not in ("attn_z", "attn_z_head"):
        return None
    assert basis.layer is not None
    W_O = output_projection(loaded, basis.layer)
    if basis.head is None:
        return W_O
    return W_O[basis.head * loaded.d_head:(basis.head + 1) * loaded.d_head]


def empty_logit_lens(n_features: int) -> dict[str, torch.Tensor]:
    """The logit-lens part of an SAE without a logit lens: zero-width rows."""
    out = {key: torch.zeros(n_features, 0) for key in ("pos_vals", "neg_vals")}
    out.update({key: torch.zeros(n_features, 0, dtype=torch.int64) for key in ("pos_ids", "neg_ids")})
    out["hist_counts"] = torch.zeros(n_features, 0, dtype=torch.int32)
    out.update({key: torch.zeros(n_features) for key in ("hist_min", "hist_max")})
    return out


@torch.no_grad()
def compute_logit_lens(W_dec: torch.Tensor, W_U: torch.Tensor, k: int = 50, n_bins: int = 50,
                       chunk: int = 1024, projection: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Top-k positive/negative logits and a logit histogram for every feature (CPU tensors); rows of `W_dec`
    go through `projection` (e.g. W_O) first when given."""
    W_U = W_U.float()
    proj = projection.to(W_U.device, torch.float32) if projection is not None else None
    parts: dict[str, list[torch.Tensor]] = {key: [] for key in LENS_KEYS}
    for lo in range(0, W_dec.shape[0], chunk):
        directions = W_dec[lo:lo + chunk].to(W_U.device, torch.float32)
        if proj is not None:
            directions = directions @ proj
        logits = directions @ W_U  # [F, V]
        n_f = logits.shape[0]
        pos_vals, pos_ids = _ranked(logits, k)
        neg_vals, neg_ids = _ranked(logits, k, largest=False)
        lmin, lmax = logits.amin(1), logits.amax(1)
        scale = (n_bins / (lmax - lmin).clamp(min=1e-12)).unsqueeze(1)
        keys = logits.sub_(lmin.unsqueeze(1)).mul_(scale).to(torch.int32).clamp_(0, n_bins - 1)  # in place
        keys += (torch.arange(n_f, device=keys.device, dtype=torch.int32) * n_bins).unsqueeze(1)
        counts = torch.bincount(keys.view(-1), minlength=n_f * n_bins).view(n_f, n_bins)
        for key, value in (("pos_vals", pos_vals), ("pos_ids", pos_ids), ("neg_vals", neg_vals),
                           ("neg_ids", neg_ids), ("hist_counts", counts.int()), ("hist_min", lmin),
                           ("hist_max", lmax)):
            parts[key].append(value.cpu())
    return {key: torch.cat(value) for key, value in parts.items()}

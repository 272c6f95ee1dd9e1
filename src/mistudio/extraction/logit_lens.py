"""Logit lens: each feature's decoder direction, in the residual stream, through the unembedding.

Where the decoder writes decides the basis (`lens_basis`, one rule for both conventions below; SAEDashboard's
`to_resid_direction`):
* a residual-stream hook (`hook_resid_*`, `hook_attn_out`, `hook_mlp_out`, `hook_mlp_in`, an HF layer output) of
  width d_model: `W_dec @ W_U` (a transcoder's decoder `[d_sae, d_out]` writes its output hook);
* `attn.hook_z` (the attention output projection's input): `W_dec @ W_O @ W_U`, with `W_O` the
  `[n_heads·d_head, d_model]` output projection (one head's `[d_head, d_model]` slice for a single-head SAE);
* the MLP's hidden neurons (`mlp.hook_pre`, `mlp.hook_post`, the down projection's input): `W_dec @ W_out @ W_U`;
* `attn.hook_q/k/v` and any decoder whose width is not d_model: no logit lens (the reason is recorded).

Two conventions for `W_U` (`lens_unembedding`):
* "folded" (our dashboard): the final norm's gain folded into `W_U` (`lm.unembed.logit_lens_matrix`, TransformerLens
  `fold_ln`), the SAE's decoder rows as they are;
* "neuronpedia" (what Neuronpedia shows; `extraction.related_weights`): the model as SAEDashboard's
  NeuronpediaRunner loads it, `HookedSAETransformer.from_pretrained(model, **model_from_pretrained_kwargs)`:
  TransformerLens's default processing (`fold_ln`, `center_unembed`, `center_writing_weights`) unless the SAE's
  kwargs turn a step off, as TransformerLens applies it: the final norm's gain folded into `W_U` (LayerNorm
  models: also centred over d_model), `W_U` centred over the vocabulary (not for models with a final logit
  softcap, which TransformerLens refuses to centre), `W_O` / `W_out` centred over d_model (LayerNorm models
  only); decoder rows folded to unit norm (`related_weights.folded_decoder`); no `b_U`.

Computed `chunk` features at a time on the device, so memory is O(chunk × vocab). Per feature, for our dashboard
(`compute_logit_lens`): the top-k positive and negative logits (ties broken by ascending token id among the
`k + TIE_MARGIN` best candidates) and a histogram of all vocabulary logits with `n_bins` equal bins over the
feature's [min, max]; for Neuronpedia (`neuronpedia_logit_rows`): SAEDashboard's logits table (`torch.topk`) and
its `torch.histc` histogram with its bar values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from mistudio.errors import InvalidInputError
from mistudio.saes.model import layer_from_hook_name

if TYPE_CHECKING:
    from mistudio.lm.loading import LoadedModel
    from mistudio.saes.model import SAE

TIE_MARGIN = 16
CONVENTIONS = ("neuronpedia", "folded")


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
_MLP_HIDDEN = re.compile(r"(mlp\.hook_(pre|pre_linear|post)|mlp\.(down_proj|c_proj|dense_4h_to_h|fc2)\.input)$")
_DOWN_PROJECTIONS = ("mlp.down_proj", "mlp.c_proj", "mlp.dense_4h_to_h", "mlp.fc2")


@dataclass(frozen=True)
class LensBasis:
    """How a decoder direction reaches the unembedding: `basis` is "residual" (W_dec @ W_U), "attn_z"
    (W_dec @ W_O @ W_U, all heads), "attn_z_head" (one head's W_O slice), "mlp_out" (W_dec @ W_out @ W_U) or
    None (no logit lens, see `reason`); `hook` is the hook the decoder writes."""

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
    if _MLP_HIDDEN.search(hook) and not sae.is_transcoder:
        down = _down_projection(loaded, hook, layer)
        d_mlp = _input_width(down) if down is not None else None
        if layer is None or d_mlp != width:
            return LensBasis(None, hook, f"the decoder width {width} does not match the input of the MLP's down "
                             f"projection ({d_mlp}) of {loaded.name}", layer)
        return LensBasis("mlp_out", hook, None, layer)
    if width != loaded.d_model:
        return LensBasis(None, hook, f"the decoder width {width} is not the model's d_model {loaded.d_model}, so "
                         "its directions are not in the residual stream", layer)
    return LensBasis("residual", hook, None, layer)


def _down_projection(loaded: LoadedModel, hook: str, layer: int | None) -> nn.Module | None:
    """The MLP's down projection whose input is `hook` (an HF `….input` path, or the TransformerLens MLP neuron
    hooks of block `layer`), or None when the model has none there."""
    from mistudio.lm.hooks import block_module, is_hf_module_path, resolve_hook

    if is_hf_module_path(hook):
        return resolve_hook(loaded, hook).module
    if layer is None or not 0 <= layer < loaded.n_layers:
        return None
    block = block_module(loaded, layer)
    for path in _DOWN_PROJECTIONS:
        try:
            return block.get_submodule(path)
        except AttributeError:
            continue
    return None


def _input_width(module: nn.Module) -> int | None:
    """The input width of a linear map (`nn.Linear`: in_features; GPT-2's Conv1D: its weight's rows)."""
    if isinstance(module, nn.Linear):
        return int(module.in_features)
    weight = getattr(module, "weight", None)
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) and weight.ndim == 2 else None


@torch.no_grad()
def _linear_matrix(module: nn.Module, width: int, d_model: int) -> torch.Tensor:
    """The `[width, d_model]` matrix (float32) of a linear map into the residual stream: `nn.Linear`'s weight
    transposed, GPT-2's Conv1D weight as it is; any other module is probed with the identity, less its bias."""
    weight = getattr(module, "weight", None)
    if isinstance(module, nn.Linear):
        return module.weight.detach().float().T
    if isinstance(weight, torch.Tensor) and tuple(weight.shape) == (width, d_model):  # x @ W + b
        return weight.detach().float()
    ref = next(module.parameters())
    eye = torch.eye(width, dtype=ref.dtype, device=ref.device)
    return (module(eye) - module(torch.zeros_like(eye[:1]))).float()


@torch.no_grad()
def output_projection(loaded: LoadedModel, layer: int) -> torch.Tensor:
    """`W_O` of attention layer `layer` flattened over heads, `[n_heads·d_head, d_model]` (float32), read from
    the output projection (`nn.Linear`: weight transposed; GPT-2's Conv1D: its weight); any other module is
    probed with the identity, less its bias."""
    from mistudio.lm.hooks import resolve_hook

    module = resolve_hook(loaded, f"blocks.{layer}.attn.hook_z").module
    return _linear_matrix(module, loaded.n_heads * loaded.d_head, loaded.d_model)


def lens_projection(loaded: LoadedModel, basis: LensBasis, *, center_writing: bool = False) -> torch.Tensor | None:
    """The matrix a decoder row goes through before the unembedding (None for the residual basis): `W_O` (or
    one head's slice) or `W_out`; `center_writing` makes it mean-free over d_model on LayerNorm models, as
    TransformerLens's `center_writing_weights` does (it leaves RMSNorm models alone)."""
    from mistudio.lm.unembed import uses_layer_norm

    if basis.basis is None or basis.basis == "residual":
        return None
    assert basis.layer is not None
    if basis.basis == "mlp_out":
        down = _down_projection(loaded, basis.hook, basis.layer)
        assert down is not None
        matrix = _linear_matrix(down, int(_input_width(down) or 0), loaded.d_model)
    else:
        matrix = output_projection(loaded, basis.layer)
        if basis.head is not None:
            matrix = matrix[basis.head * loaded.d_head:(basis.head + 1) * loaded.d_head]
    if center_writing and uses_layer_norm(loaded):
        matrix = matrix - matrix.mean(-1, keepdim=True)
    return matrix


def lens_unembedding(loaded: LoadedModel, sae: SAE, convention: str = "folded") -> torch.Tensor:
    """`[d_model, vocab]` (float32) the residual direction is multiplied by, in `convention` ("folded" or
    "neuronpedia", see the module docstring).

    Raises:
        InvalidInputError: an unknown convention.
    """
    from mistudio.lm.processing import pretrained_kwargs
    from mistudio.lm.unembed import logit_lens_matrix

    if convention == "folded":
        return logit_lens_matrix(loaded)
    if convention != "neuronpedia":
        raise InvalidInputError(f"unknown logit-lens convention {convention!r}; use one of {', '.join(CONVENTIONS)}")
    kwargs = pretrained_kwargs(sae.cfg)
    softcap = getattr(loaded.model.config.get_text_config(), "final_logit_softcapping", None)
    center_unembed = bool(kwargs.get("center_unembed", True)) and not (softcap is not None and softcap > 0)
    return logit_lens_matrix(loaded, center_unembed=center_unembed, fold_ln=bool(kwargs.get("fold_ln", True)))


def neuronpedia_projection(loaded: LoadedModel, sae: SAE, basis: LensBasis) -> torch.Tensor | None:
    """`lens_projection` as the model SAEDashboard loads has it (`center_writing_weights`, on by default, off when
    the SAE's `model_from_pretrained_kwargs` say so)."""
    from mistudio.lm.processing import pretrained_kwargs

    center = bool(pretrained_kwargs(sae.cfg).get("center_writing_weights", True))
    return lens_projection(loaded, basis, center_writing=center)


def decoder_as_extracted(sae: SAE, manifest: dict[str, object]) -> torch.Tensor:
    """The decoder the extraction ran with: an SAE not yet folded (`expected_average_only_in`, as a re-loaded
    SAE is) gets the manifest's normalisation factor divided out, as the extraction folded it."""
    W_dec = sae.W_dec.detach()
    normalization = manifest.get("normalization")
    factor = normalization.get("factor") if isinstance(normalization, dict) else None
    if sae.cfg.normalize_activations == "expected_average_only_in" and factor:
        W_dec = W_dec / float(factor)
    return W_dec


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


NEURONPEDIA_LOGIT_KEYS = ("logit_pos_ids", "logit_pos_values", "logit_neg_ids", "logit_neg_values",
                          "logit_hist_heights", "logit_hist_values")


def histc_range(vmin: torch.Tensor, vmax: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The outer edges `torch.histc` uses for data with this min and max (float32): [min − 1, max + 1] when
    they are equal, else [min, max]."""
    lo, hi = vmin.float(), vmax.float()
    same = lo == hi
    return torch.where(same, lo - 1, lo), torch.where(same, hi + 1, hi)


def histc_bins(values: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, n_bins: int = 50) -> torch.Tensor:
    """The bin `torch.histc` puts each value in (float32 arithmetic `(v − lo) × n_bins / (hi − lo)`, truncated,
    the top edge in the last bin), clamped to the bins for values outside [lo, hi]; `lo`/`hi` broadcast against
    `values` (the edges from `histc_range`)."""
    pos = ((values.float() - lo) * n_bins / (hi - lo)).to(torch.int64)
    return pos.clamp_(0, n_bins - 1)


@torch.no_grad()
def histc_counts(rows: torch.Tensor, vmin: torch.Tensor, vmax: torch.Tensor, n_bins: int) -> torch.Tensor:
    """`torch.histc(row, bins=n_bins)` of every row of `rows [F, N]` at once (int64 `[F, n_bins]`), each row
    with its own min and max `vmin`/`vmax [F]` (`histc_range`, `histc_bins`)."""
    lo, hi = histc_range(vmin, vmax)
    bins = histc_bins(rows, lo.unsqueeze(1), hi.unsqueeze(1), n_bins)
    return torch.zeros(rows.shape[0], n_bins, dtype=torch.int64, device=rows.device).scatter_add_(
        1, bins, torch.ones_like(bins))


def histc_bar_values(lo: list[float], hi: list[float], n_bins: int) -> torch.Tensor:
    """SAEDashboard's `HistogramData.from_data` bar values for data ranges [lo, hi] (float32 `[F, n_bins]`,
    before its `round(·, 5)`): `torch.linspace(lo, hi, n_bins + 1)[:-1] + (hi - lo) / n_bins / 2`, computed with
    torch.linspace itself, one range at a time (its vectorised kernel rounds differently from any closed form)."""
    out = torch.empty(len(lo), n_bins, dtype=torch.float32)
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        out[i] = torch.linspace(a, b, n_bins + 1)[:-1] + (b - a) / n_bins / 2
    return out


@torch.no_grad()
def neuronpedia_logit_rows(directions: torch.Tensor, W_U: torch.Tensor, projection: torch.Tensor | None = None,
                           k: int = 10, n_bins: int = 50) -> dict[str, torch.Tensor]:
    """SAEDashboard's logit table and logits histogram for decoder directions `[F, width]` (already folded):
    `to_resid_direction` (`@ projection`), `@ W_U`, then `torch.topk` of the largest / smallest `k`
    (`get_logits_table_data`) and the 50-bin `LogitsHistogramData.from_data` over the whole vocabulary. Returns
    CPU tensors keyed by `NEURONPEDIA_LOGIT_KEYS` (ids int64, values float32, heights int64)."""
    directions = directions.to(W_U.device, torch.float32)
    if projection is not None:
        directions = directions @ projection.to(W_U.device, torch.float32)
    logits = directions @ W_U.float()
    k = min(k, logits.shape[1])
    top = torch.topk(logits, k, dim=1, largest=True)
    bottom = torch.topk(logits, k, dim=1, largest=False)
    lo, hi = logits.amin(1), logits.amax(1)
    heights = histc_counts(logits, lo, hi, n_bins)
    values = histc_bar_values(lo.tolist(), hi.tolist(), n_bins)
    return {"logit_pos_ids": top.indices.cpu(), "logit_pos_values": top.values.cpu(),
            "logit_neg_ids": bottom.indices.cpu(), "logit_neg_values": bottom.values.cpu(),
            "logit_hist_heights": heights.cpu(), "logit_hist_values": values}


def empty_neuronpedia_logits(n_features: int) -> dict[str, torch.Tensor]:
    """The Neuronpedia logit fields of an SAE without a logit lens: zero-width rows."""
    return {key: torch.zeros(n_features, 0, dtype=torch.int64 if key.endswith(("ids", "heights")) else torch.float32)
            for key in NEURONPEDIA_LOGIT_KEYS}

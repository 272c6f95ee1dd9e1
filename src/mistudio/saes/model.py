"""The in-memory SAE: one `nn.Module` for every supported architecture, with SAELens 6 inference semantics.

Conventions (identical to SAELens): `W_enc [d_in, d_sae]`, `b_enc [d_sae]`, `W_dec [d_sae, d_in]`, `b_dec [d_in]`.

* standard:  f = relu(x' @ W_enc + b_enc)
* jumprelu:  f = relu(h) * (h > threshold),  h = x' @ W_enc + b_enc
* batchtopk: at inference a BatchTopK SAE is a JumpReLU SAE with its learned (global) threshold — SAELens saves
  it as `jumprelu`; `k` is kept as information only.
* topk:      h (optionally times the decoder row norms) → keep the k largest per row, relu them.
* gated:     f = (x' @ W_enc + b_gate > 0) * relu(x' @ (W_enc * exp(r_mag)) + b_mag)

where x' = normalize(x) - b_dec * apply_b_dec_to_input.  Decoding is f @ W_dec + b_dec (topk with
`rescale_acts_by_decoder_norm` divides f by the decoder row norms first), followed by the inverse of a run-time
normalisation (`constant_norm_rescale`, `layer_norm`).  `expected_average_only_in` is a no-op at inference
(SAELens folds the dataset scaling factor into the weights; see `fold_activation_norm_scaling_factor`).

Transcoders (SAELens `transcoder`, `jumprelu_transcoder`, `skip_transcoder`, `jumprelu_skip_transcoder`) read
one hook and write another (`hook_name_out`, width `d_out`): `architecture` is their activation (`standard` or
`jumprelu`), `W_dec [d_sae, d_out]`, `b_dec [d_out]`, and b_dec is never subtracted from the input.  Decoding
is f @ W_dec + b_dec with no output normalisation; a skip transcoder (`skip_connection`) adds x @ W_skip
(`W_skip [d_in, d_out]`, the transpose of SAELens's `[d_out, d_in]`) in `forward`.  A cross-layer transcoder
taken layer by layer (as SAELens takes it) is a plain transcoder whose decoder is the sum over target layers.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mistudio.errors import InvalidInputError

ARCHITECTURES = ("standard", "jumprelu", "topk", "batchtopk", "gated", "temporal")
TRANSCODER_ACTIVATIONS = ("standard", "jumprelu")
NORMALIZATIONS = ("none", "expected_average_only_in", "constant_norm_rescale", "layer_norm", "constant_scalar_rescale")
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}
DEFAULT_CHUNK = 4096

_LAYER_RE = re.compile(r"(?:^|\.)(?:blocks|layers|h|layer)[._](\d+)(?:\.|$)")


def layer_from_hook_name(hook_name: str | None) -> int | None:
    """The layer number inside a TransformerLens-style hook name (`blocks.5.hook_resid_post` → 5), else None."""
    if not hook_name:
        return None
    match = _LAYER_RE.search(hook_name)
    return int(match.group(1)) if match else None


# TransformerLens-style names of an MLP's own input and output (circuit-tracer's `mlp.hook_in` / `mlp.hook_out`,
# TransformerLens's `ln2.hook_normalized`) → the HF module path of the same tensor in `model.layers.L`
_HF_MLP_HOOKS = {"mlp.hook_in": "mlp.input", "ln2.hook_normalized": "mlp.input", "mlp.hook_out": "mlp.output"}


def hf_mlp_hook(hook_name: str | None) -> str | None:
    """The HF module path of an MLP input/output hook (`blocks.3.mlp.hook_in` → `model.layers.3.mlp.input`),
    else None (the TransformerLens name is resolved as it is)."""
    layer = layer_from_hook_name(hook_name)
    if hook_name is None or layer is None:
        return None
    kind = hook_name.split(f"{layer}.", 1)[-1]
    return f"model.layers.{layer}.{_HF_MLP_HOOKS[kind]}" if kind in _HF_MLP_HOOKS else None


def dtype_from_str(name: str | torch.dtype) -> torch.dtype:
    """`"float32"` / `"torch.float32"` / a torch dtype → the torch dtype."""
    if isinstance(name, torch.dtype):
        return name
    key = str(name).removeprefix("torch.")
    if key not in DTYPES:
        raise InvalidInputError(f"unsupported dtype {name!r}; use one of {', '.join(DTYPES)}")
    return DTYPES[key]


def dtype_to_str(dtype: torch.dtype) -> str:
    """A torch dtype → its short name (`torch.float32` → `"float32"`)."""
    return str(dtype).removeprefix("torch.")


@dataclass
class SAEConfig:
    """Everything needed to run an SAE and to say where its inputs come from."""

    d_in: int
    d_sae: int
    architecture: str = "standard"
    k: int | float | None = None
    model_name: str | None = None
    hook_name: str | None = None
    hook_layer: int | None = None
    hook_head_index: int | None = None
    context_size: int | None = None
    prepend_bos: bool = True
    normalize_activations: str = "none"
    apply_b_dec_to_input: bool = True
    rescale_acts_by_decoder_norm: bool = False
    dataset_path: str | None = None
    dtype: str = "float32"
    model_from_pretrained_kwargs: dict[str, Any] = field(default_factory=dict)
    neuronpedia_id: str | None = None
    d_out: int | None = None
    hook_name_out: str | None = None
    hf_hook_name: str | None = None
    hf_hook_name_out: str | None = None
    skip_connection: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_transcoder(self) -> bool:
        """True when the SAE writes another hook than it reads (a transcoder)."""
        return self.d_out is not None or self.hook_name_out is not None or self.skip_connection

    @property
    def output_width(self) -> int:
        """Width of the decoder's output: `d_out` for a transcoder, else `d_in`."""
        return self.d_out if self.d_out is not None else self.d_in

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise InvalidInputError(
                f"unsupported SAE architecture {self.architecture!r}; supported: {', '.join(ARCHITECTURES)}"
            )
        if self.normalize_activations not in NORMALIZATIONS:
            raise InvalidInputError(
                f"unsupported normalize_activations {self.normalize_activations!r}; "
                f"supported: {', '.join(NORMALIZATIONS)}"
            )
        if self.normalize_activations == "constant_scalar_rescale" and self.architecture != "temporal":
            raise InvalidInputError("normalize_activations constant_scalar_rescale is only defined for temporal SAEs")
        if self.architecture == "topk" and (self.k is None or int(self.k) < 1):
            raise InvalidInputError("a topk SAE needs a positive integer k")
        if self.d_in < 1 or self.d_sae < 1:
            raise InvalidInputError(f"d_in and d_sae must be positive (got {self.d_in}, {self.d_sae})")
        if self.is_transcoder:
            if self.architecture not in TRANSCODER_ACTIVATIONS:
                raise InvalidInputError(
                    f"a transcoder's activation must be one of {', '.join(TRANSCODER_ACTIVATIONS)} "
                    f"(got {self.architecture!r})"
                )
            if self.apply_b_dec_to_input:
                raise InvalidInputError(
                    "a transcoder never subtracts b_dec from its input; set apply_b_dec_to_input to false"
                )
            if self.d_out is not None and self.d_out < 1:
                raise InvalidInputError(f"d_out must be positive (got {self.d_out})")
        self.dtype = dtype_to_str(dtype_from_str(self.dtype))
        if self.hook_layer is None:
            self.hook_layer = layer_from_hook_name(self.hook_name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAEConfig:
        """Build from `to_dict()` output; unknown keys go into `extra`."""
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        unknown = {k: v for k, v in data.items() if k not in names}
        extra = known.get("extra") or {}
        if not isinstance(extra, dict):
            raise InvalidInputError(f"SAE config `extra` should be an object, not {type(extra).__name__}")
        known["extra"] = {**unknown, **extra}
        try:
            return cls(**known)
        except (TypeError, ValueError, OverflowError) as exc:  # missing d_in/d_sae, values of the wrong type
            raise InvalidInputError(f"malformed SAE config ({exc}); it needs integer d_in and d_sae and "
                                    "fields of the documented types") from None


def _param(*shape: int, dtype: torch.dtype) -> nn.Parameter:
    return nn.Parameter(torch.zeros(*shape, dtype=dtype), requires_grad=False)


class SAE(nn.Module):
    """A sparse autoencoder for inference (SAELens 6 semantics). Parameters are created as zeros."""

    TEMPORAL = False

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        if cfg.architecture == "temporal" and not self.TEMPORAL:
            raise InvalidInputError("a temporal SAE is built by mistudio.saes.temporal.TemporalSAE (or "
                                    "SAE.from_state_dict), not by SAE")
        self.cfg = cfg
        self._init_parameters(cfg, dtype_from_str(cfg.dtype))

    def _init_parameters(self, cfg: SAEConfig, dt: torch.dtype) -> None:
        self.W_enc = _param(cfg.d_in, cfg.d_sae, dtype=dt)
        self.W_dec = _param(cfg.d_sae, cfg.output_width, dtype=dt)
        self.b_dec = _param(cfg.output_width, dtype=dt)
        if cfg.skip_connection:
            self.W_skip = _param(cfg.d_in, cfg.output_width, dtype=dt)
        if cfg.architecture == "gated":
            self.b_gate = _param(cfg.d_sae, dtype=dt)
            self.r_mag = _param(cfg.d_sae, dtype=dt)
            self.b_mag = _param(cfg.d_sae, dtype=dt)
        else:
            self.b_enc = _param(cfg.d_sae, dtype=dt)
        if cfg.architecture in ("jumprelu", "batchtopk"):
            self.threshold = _param(cfg.d_sae, dtype=dt)

    # ----- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_state_dict(cls, cfg: SAEConfig, tensors: dict[str, torch.Tensor]) -> SAE:
        """Build an SAE from SAELens-named tensors; shapes are checked, values cast to `cfg.dtype`
        (a `temporal` config builds a `mistudio.saes.temporal.TemporalSAE`)."""
        if cfg.architecture == "temporal" and cls is SAE:
            from mistudio.saes.temporal import TemporalSAE

            return TemporalSAE.from_state_dict(cfg, tensors)
        with torch.device("meta"):  # shapes first: a config claiming huge widths must not allocate them
            expected = cls(cfg).expected_shapes()
        missing = sorted(set(expected) - set(tensors))
        if missing:
            raise InvalidInputError(
                f"{cfg.architecture} SAE weights are missing {', '.join(missing)} (found {', '.join(sorted(tensors))})"
            )
        for name, shape in expected.items():
            if tuple(tensors[name].shape) != shape:
                raise InvalidInputError(f"tensor {name} has shape {tuple(tensors[name].shape)}, expected {shape}")
        sae = cls(cfg)
        dt = dtype_from_str(cfg.dtype)
        with torch.no_grad():
            for name in expected:
                sae.get_parameter(name).copy_(tensors[name].to(dt))
        return sae

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Tensor name → shape that this architecture stores."""
        return {name: tuple(p.shape) for name, p in self.named_parameters()}

    # ----- info ---------------------------------------------------------------------------------------------
    @property
    def is_transcoder(self) -> bool:
        """True for a transcoder (reads `hook_name`, writes `hook_name_out`; see the module docstring)."""
        return self.cfg.is_transcoder

    @property
    def dtype(self) -> torch.dtype:
        """The parameters' dtype."""
        return self.W_enc.dtype

    @property
    def device(self) -> torch.device:
        """The parameters' device."""
        return self.W_enc.device

    def num_parameters(self) -> int:
        """Number of scalar parameters."""
        return sum(p.numel() for p in self.parameters())

    def weights_nbytes(self, dtype: torch.dtype | str | None = None) -> int:
        """Bytes the weights take in `dtype` (default: their current dtype)."""
        dt = dtype_from_str(dtype) if dtype is not None else self.dtype
        return self.num_parameters() * torch.empty((), dtype=dt).element_size()

    def _apply(self, fn: Any, recurse: bool = True) -> SAE:  # keeps cfg.dtype in step with `.to(dtype)`
        out = super()._apply(fn, recurse)
        self.cfg.dtype = dtype_to_str(self.W_enc.dtype)
        return out

    # ----- forward pieces -----------------------------------------------------------------------------------
    def _normalize(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Run-time input normalisation; returns the normalised input and what undoes it (scale, shift)."""
        mode = self.cfg.normalize_activations
        if mode == "constant_norm_rescale":
            coeff = (self.cfg.d_in**0.5) / x.norm(dim=-1, keepdim=True)
            return x * coeff, (1.0 / coeff, torch.zeros_like(coeff))
        if mode == "layer_norm":
            mu = x.mean(dim=-1, keepdim=True)
            centered = x - mu
            std = centered.std(dim=-1, keepdim=True)
            return centered / (std + 1e-5), (std, mu)
        return x, None

    def process_input(self, x: torch.Tensor) -> torch.Tensor:
        """Cast, normalise and subtract b_dec (if `apply_b_dec_to_input`): the encoder's input."""
        x = x.to(self.dtype)
        x, _ = self._normalize(x)
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        return x

    def _decoder_norms(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        return self.W_dec[start:stop].norm(dim=-1)

    def _pre_acts(self, sae_in: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Pre-activations of features [start, stop) (gated: the magnitude path's)."""
        W = self.W_enc[:, start:stop]
        if self.cfg.architecture == "gated":
            return sae_in @ (W * self.r_mag[start:stop].exp()) + self.b_mag[start:stop]
        hidden = sae_in @ W + self.b_enc[start:stop]
        if self.cfg.architecture == "topk" and self.cfg.rescale_acts_by_decoder_norm:
            hidden = hidden * self._decoder_norms(start, stop)
        return hidden

    def _activate(self, sae_in: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Activations of features [start, stop) for the element-wise architectures."""
        hidden = self._pre_acts(sae_in, start, stop)
        arch = self.cfg.architecture
        if arch == "gated":
            gate = (sae_in @ self.W_enc[:, start:stop] + self.b_gate[start:stop]) > 0
            return gate.to(hidden.dtype) * hidden.relu()
        if arch in ("jumprelu", "batchtopk"):
            return hidden.relu() * (hidden > self.threshold[start:stop]).to(hidden.dtype)
        return hidden.relu()

    def _global_topk(self, sae_in: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row top-k (values, indices) over all features, computed `chunk` features at a time."""
        k = int(self.cfg.k)  # type: ignore[arg-type]
        best_v: torch.Tensor | None = None
        best_i: torch.Tensor | None = None
        for lo in range(0, self.cfg.d_sae, chunk):
            hi = min(lo + chunk, self.cfg.d_sae)
            vals = self._pre_acts(sae_in, lo, hi)
            idx = torch.arange(lo, hi, device=vals.device).expand_as(vals)
            if best_v is not None and best_i is not None:
                vals = torch.cat([best_v, vals], dim=-1)
                idx = torch.cat([best_i, idx], dim=-1)
            take = min(k, vals.shape[-1])
            best_v, pos = torch.topk(vals, take, dim=-1, sorted=False)
            best_i = torch.gather(idx, -1, pos)
        assert best_v is not None and best_i is not None
        return best_v, best_i

    # ----- public API ---------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Feature activations `[..., d_sae]` for inputs `[..., d_in]`."""
        sae_in = self.process_input(x)
        if self.cfg.architecture == "topk":
            hidden = self._pre_acts(sae_in, 0, self.cfg.d_sae)
            values, indices = torch.topk(hidden, int(self.cfg.k), dim=-1, sorted=False)  # type: ignore[arg-type]
            return torch.zeros_like(hidden).scatter_(-1, indices, values.relu())
        return self._activate(sae_in, 0, self.cfg.d_sae)

    def encode_range(
        self, x: torch.Tensor, start: int, stop: int, chunk_size: int = DEFAULT_CHUNK
    ) -> torch.Tensor:
        """Activations of features `[start, stop)` only, equal to `encode(x)[..., start:stop]`.

        topk needs the global per-row top-k; it is found `chunk_size` features at a time so memory stays
        O(rows × (k + chunk_size)) whatever d_sae is.
        """
        if not 0 <= start <= stop <= self.cfg.d_sae:
            raise InvalidInputError(f"feature range [{start}, {stop}) is outside [0, {self.cfg.d_sae})")
        sae_in = self.process_input(x)
        if self.cfg.architecture != "topk":
            return self._activate(sae_in, start, stop)
        return self._topk_slice(self._global_topk(sae_in, max(1, chunk_size)), start, stop)

    def encode_chunks(self, x: torch.Tensor, chunk_size: int = DEFAULT_CHUNK,
                      start: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
        """`encode(x)` `chunk_size` features at a time from feature `start` on: yields `(lo, acts[..., lo:hi])`.
        Unlike calling `encode_range` per chunk, a topk SAE's global top-k is found once."""
        sae_in = self.process_input(x)
        chunk = max(1, chunk_size)
        top = self._global_topk(sae_in, chunk) if self.cfg.architecture == "topk" else None
        for lo in range(start, self.cfg.d_sae, chunk):
            hi = min(lo + chunk, self.cfg.d_sae)
            yield lo, self._activate(sae_in, lo, hi) if top is None else self._topk_slice(top, lo, hi)

    @staticmethod
    def _topk_slice(top: tuple[torch.Tensor, torch.Tensor], start: int, stop: int) -> torch.Tensor:
        """Dense activations of features `[start, stop)` from the per-row top-k (values, indices)."""
        values, indices = top
        width = stop - start
        inside = (indices >= start) & (indices < stop)
        slot = torch.where(inside, indices - start, torch.full_like(indices, width))
        out = torch.zeros(*values.shape[:-1], width + 1, dtype=values.dtype, device=values.device)
        out.scatter_(-1, slot, torch.where(inside, values.relu(), torch.zeros_like(values)))
        return out[..., :width]

    def decode(self, feature_acts: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction `[..., d_in]`; pass the original input `x` to undo a run-time input normalisation."""
        f = feature_acts.to(self.dtype)
        if self.cfg.architecture == "topk" and self.cfg.rescale_acts_by_decoder_norm:
            f = f / self._decoder_norms()
        out = f @ self.W_dec + self.b_dec
        if x is not None and not self.cfg.is_transcoder:
            _, undo = self._normalize(x.to(self.dtype))
            if undo is not None:
                scale, shift = undo
                out = out * scale + shift
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of `x` (encode then decode, undoing any run-time normalisation); a transcoder's
        prediction of its output hook (plus `x @ W_skip` for a skip transcoder)."""
        out = self.decode(self.encode(x), x)
        if self.cfg.skip_connection:
            out = out + x.to(self.dtype) @ self.W_skip
        return out

    @torch.no_grad()
    def fold_activation_norm_scaling_factor(self, scaling_factor: float) -> None:
        """Fold an `expected_average_only_in` dataset scaling factor into the weights (as SAELens does)."""
        self.W_enc.mul_(scaling_factor)
        self.W_dec.div_(scaling_factor)
        self.b_dec.div_(scaling_factor)
        self.cfg.normalize_activations = "none"

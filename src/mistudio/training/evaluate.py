"""Held-out evaluation of an SAE or transcoder with SAELens's definitions (`sae_lens.evals`: `run_evals` with
`get_downstream_reconstruction_metrics` and `get_sparsity_and_variance_metrics`, special tokens excluded).

Each batch of windows runs the model three times: clean, with the SAE's reconstruction spliced in at its hook
(`lm.patching`), and with the hook zero-ablated. A transcoder reads its input hook and is spliced in at its output
hook (`hook_out`): its prediction replaces the output, the output is zero-ablated, and the reconstruction metrics
judge the prediction against the output hook's clean value. The activations the SAE reads and writes are the
spliced forward's own (upstream of the hook the model is still clean), so no separate capture pass is needed.

Over the tokens that are not special tokens (every token with `exclude_special_tokens=False`; a list of ids
excludes those) — SAELens's `get_special_token_ids`: the tokenizer's BOS, EOS, PAD, SEP and decoder-start ids, not
its other added special tokens (chat-template markers stay in):

* `l0` = mean number of non-zero features per token; `l1` = mean Σ|f|;
* `explained_variance` = 1 − Σ‖x − x̂‖² / Σ‖x − x̄‖² and `mse_per_element` (`extraction.reconstruction`, float64);
  `mse` = mean per-token Σ_dims (x − x̂)² (SAELens's); `cossim` = mean cos(x, x̂);
* `l2_norm_in` / `l2_norm_out` = mean ‖x‖ / ‖x̂‖, `l2_ratio` = mean ‖x̂‖/‖x‖ (‖x‖ < 1e-4 counts as 1),
  `relative_reconstruction_bias` = Σ‖x̂‖² / Σ x·x̂ over all tokens (SAELens averages that ratio per batch);
* density = the fraction of tokens a feature fires on; `dead_fraction` = features that never fire,
  `dense_fraction` = features firing on more than `dense_threshold` of the tokens (default 0.1: Gemma Scope's
  "high-frequency latents"); `density_histogram` = counts of log10(density + 1e-10) (what SAELens logs as its
  feature-density histogram) on fixed edges −10 … 0 in steps of 0.25, so dead features fall in the first bin;
* `ce_loss_clean|sae|zero` = mean next-token cross-entropy at the positions whose (input) token is not special;
  `ce_loss_recovered` = (CE_zero − CE_sae) / (CE_zero − CE_clean) (SAELens's `ce_loss_score`);
* `kl_div` = mean KL(clean ‖ spliced) of the next-token distributions (SAELens's `kl_div_with_sae`),
  `kl_div_zero` the same for the ablation, `kl_div_score` = (KL_zero − KL_sae) / KL_zero.

As in SAELens, the reconstruction is written only at the non-special positions and the ablation zeroes every
position (for an SAE on one head of `hook_z`, that head only). `norm_factor` is SAELens's `ActivationScaler`:
the SAE reads `activation · norm_factor` and its output is divided by `norm_factor_out` (default `norm_factor`),
so every metric is in the model's units. An SAE whose config asks for TransformerLens weight processing reads
the transformed activation (`lm.processing`); its change is written back as a difference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import nn

from mistudio.errors import InvalidInputError
from mistudio.extraction.reconstruction import Reconstruction
from mistudio.extraction.sae_inputs import prepare_input
from mistudio.lm.hooks import HookPoint, capture_many, resolve_hook
from mistudio.lm.patching import ActivationPatch
from mistudio.lm.processing import activation_transform_for
from mistudio.saes.model import SAE

if TYPE_CHECKING:  # annotations only: importing these pulls in transformers
    from mistudio.datasets.windows import Windows
    from mistudio.lm.loading import LoadedModel

Transform = Callable[[torch.Tensor], torch.Tensor]

DENSITY_EPS = 1e-10
DENSITY_EDGES: tuple[float, ...] = tuple(-10.0 + 0.25 * i for i in range(41))
DEFAULT_DENSE_THRESHOLD = 0.1
_SPECIAL_TOKEN_ATTRS = ("bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id")


class DensityHistogram(BaseModel):
    """Feature counts per log10-density bin (`edges` has one more entry than `counts`)."""

    edges: list[float]
    counts: list[int]


class EvalMetrics(BaseModel):
    """SAELens's evaluation metrics of one SAE on held-out tokens (CE/KL fields None when not computed)."""

    n_tokens: int
    explained_variance: float | None
    mse: float | None
    mse_per_element: float | None
    l0: float
    l1: float
    dead_fraction: float
    dense_fraction: float
    cossim: float
    l2_norm_in: float
    l2_norm_out: float
    l2_ratio: float
    relative_reconstruction_bias: float | None
    ce_loss_clean: float | None = None
    ce_loss_sae: float | None = None
    ce_loss_zero: float | None = None
    ce_loss_recovered: float | None = None
    kl_div: float | None = None
    kl_div_zero: float | None = None
    kl_div_score: float | None = None
    density_histogram: DensityHistogram
    feature_density: list[float] = Field(default_factory=list, exclude=True)

    def log_feature_density(self) -> torch.Tensor:
        """log10(density + 1e-10) per feature (SAELens's `sparsity.safetensors` values)."""
        return torch.log10(torch.tensor(self.feature_density, dtype=torch.float64) + DENSITY_EPS).float()


def density_histogram(density: torch.Tensor) -> DensityHistogram:
    """Counts of log10(density + 1e-10) on `DENSITY_EDGES` (values clamped into the range; right edge closed)."""
    logd = torch.log10(density.double().cpu() + DENSITY_EPS).clamp(DENSITY_EDGES[0], DENSITY_EDGES[-1])
    edges = torch.tensor(DENSITY_EDGES, dtype=torch.float64)
    index = (torch.bucketize(logd, edges, right=True) - 1).clamp(0, len(DENSITY_EDGES) - 2)
    counts = torch.bincount(index, minlength=len(DENSITY_EDGES) - 1)
    return DensityHistogram(edges=list(DENSITY_EDGES), counts=[int(c) for c in counts])


class _Sums:
    """float64 running sums of the per-token metrics over the evaluated tokens."""

    def __init__(self, d_out: int, d_sae: int, device: torch.device) -> None:
        self.reconstruction = Reconstruction(d_out, device)
        self.fired = torch.zeros(d_sae, dtype=torch.int64, device=device)
        self.totals: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, values: torch.Tensor) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + float(values.double().sum())
        self.counts[name] = self.counts.get(name, 0) + int(values.numel())

    def mean(self, name: str) -> float | None:
        count = self.counts.get(name, 0)
        return self.totals[name] / count if count else None

    @torch.no_grad()
    def fold(self, features: torch.Tensor, recon: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:
        """One batch: features [B, C, d_sae], reconstruction and target [B, C, d_out] (model units), mask [B, C]."""
        keep = mask.to(features.device)
        f = features[keep].float()
        x = target.to(features.device)[keep].float()
        x_hat = recon.to(features.device)[keep].float()
        self.reconstruction.add(x_hat, x, torch.ones(x.shape[0], dtype=torch.bool, device=x.device))
        self.fired += (f != 0).sum(0).to(self.fired.device)
        self.add("l0", (f != 0).sum(-1).float())
        self.add("l1", f.abs().sum(-1))
        self.add("mse", (x - x_hat).square().sum(-1))
        norm_in, norm_out = x.norm(dim=-1), x_hat.norm(dim=-1)
        self.add("l2_norm_in", norm_in)
        self.add("l2_norm_out", norm_out)
        self.add("l2_ratio", norm_out / torch.where(norm_in.abs() < 1e-4, torch.ones_like(norm_in), norm_in))
        self.add("x_hat_sq", norm_out.square())
        self.add("x_dot_x_hat", (x * x_hat).sum(-1))
        self.add("cossim", (x / norm_in.unsqueeze(-1) * (x_hat / norm_out.unsqueeze(-1))).sum(-1))


def excluded_token_ids(tokenizer: Any, exclude_special_tokens: bool | Sequence[int]) -> list[int]:
    """The token ids left out of the evaluation: SAELens's structural special tokens for True, none for False,
    or the given ids."""
    if exclude_special_tokens is True:
        ids = {getattr(tokenizer, attr, None) for attr in _SPECIAL_TOKEN_ATTRS}
        return sorted(int(i) for i in ids if i is not None)
    if exclude_special_tokens is False:
        return []
    return sorted({int(i) for i in exclude_special_tokens})


def _window_tokens(windows: torch.Tensor | Windows, n_windows: int | None) -> torch.Tensor:
    tokens = windows if isinstance(windows, torch.Tensor) else windows.tokens
    if tokens.ndim != 2 or tokens.shape[0] == 0:
        raise InvalidInputError(
            f"evaluation needs token windows [n_windows, context_size]; got shape {tuple(tokens.shape)}")
    if n_windows is not None:
        if n_windows < 1:
            raise InvalidInputError(f"n_windows must be at least 1 (got {n_windows})")
        tokens = tokens[:n_windows]
    return tokens.long()


class _SAESide:
    """How the SAE reads its hook and writes back: head selection, weight-processing transform, scaling."""

    def __init__(self, loaded: LoadedModel, sae: SAE, hook: str, hook_out: str | None,
                 norm_factor: float | None, norm_factor_out: float | None) -> None:
        self.sae = sae
        self.hook, self.hook_out = hook, hook_out
        self.head_index = sae.cfg.hook_head_index
        self.transform = activation_transform_for(sae.cfg, hook, loaded, self.head_index)
        self.target_transform = activation_transform_for(sae.cfg, hook_out, loaded) if hook_out else None
        self.scale_in = 1.0 if norm_factor is None else float(norm_factor)
        out = norm_factor_out if norm_factor_out is not None else norm_factor
        self.scale_out = 1.0 if out is None else float(out)

    def read(self, view: torch.Tensor) -> torch.Tensor:
        """The SAE's input (model units, SAE space) from the hook's view of its activation."""
        return prepare_input(view, self.transform, self.head_index, self.hook, self.sae.device).float()

    def target(self, view: torch.Tensor) -> torch.Tensor:
        """A transcoder's target (model units) from its output hook's view."""
        assert self.hook_out is not None
        return prepare_input(view, self.target_transform, None, self.hook_out, self.sae.device).float()

    @torch.no_grad()
    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, reconstruction in model units) of SAE inputs `x` in model units."""
        scaled = x * self.scale_in
        features = self.sae.encode(scaled)
        recon = self.sae.decode(features, scaled)
        if self.sae.cfg.skip_connection:
            recon = recon + scaled.to(self.sae.dtype) @ self.sae.W_skip
        return features, recon.float() / self.scale_out

    def write(self, view: torch.Tensor, current: torch.Tensor, new: torch.Tensor, mask: torch.Tensor,
              head_index: int | None) -> torch.Tensor:
        """`view` with the SAE-space value `current` moved to `new` at the `mask` positions."""
        delta = torch.where(mask.to(new.device).unsqueeze(-1), new - current, torch.zeros_like(new))
        delta = delta.to(view.device)
        if head_index is not None:
            out = view.float().clone()
            out[..., head_index, :] += delta
            return out
        return (view.float() + delta.reshape(view.shape)).to(view.dtype)

    def zero(self, view: torch.Tensor, head_index: int | None) -> torch.Tensor:
        if head_index is None:
            return torch.zeros_like(view)
        out = view.clone()
        out[..., head_index, :] = 0
        return out


def _reader(point: HookPoint, store: dict[str, torch.Tensor]) -> Callable[..., None]:
    def hook(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any = None) -> None:
        store["x"] = point.extract(args, kwargs, output)

    return hook


@contextmanager
def _reading(point: HookPoint, store: dict[str, torch.Tensor]) -> Iterator[None]:
    """Record the hook's activation (as `capture_many` shows it) in `store["x"]` on every forward."""
    if point.reads_input:
        handle = point.module.register_forward_pre_hook(_reader(point, store), with_kwargs=True)
    else:
        handle = point.module.register_forward_hook(_reader(point, store), with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def _logits(loaded: LoadedModel, tokens: torch.Tensor) -> torch.Tensor:
    return loaded.model(input_ids=tokens.to(loaded.device), use_cache=False).logits.float()


def _ce_per_token(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy [B, C-1] (TransformerLens `loss_per_token`)."""
    target = tokens[:, 1:].to(logits.device)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), target.flatten(), reduction="none").view(target.shape)


def _kl_per_token(clean: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """KL(clean ‖ new) per position [B, C] (SAELens's `_kl`)."""
    return F.kl_div(F.log_softmax(new, dim=-1), F.softmax(clean, dim=-1), reduction="none").sum(-1)


def _check_hooks(sae: SAE, hook: str, hook_out: str | None) -> None:
    if sae.is_transcoder and hook_out is None:
        raise InvalidInputError(
            f"the SAE is a transcoder (it writes {sae.cfg.hook_name_out or 'another hook'}); pass hook_out, the hook "
            "its prediction is judged against and spliced in at")
    if hook_out is not None and hook_out == hook:
        raise InvalidInputError(f"hook_out equals hook ({hook}); a transcoder reads one hook and writes another")
    if sae.cfg.architecture == "temporal":
        raise InvalidInputError("a temporal SAE's reconstruction depends on the context; it cannot be evaluated here")


@torch.no_grad()
def evaluate_sae(loaded: LoadedModel, sae: SAE, windows: torch.Tensor | Windows, *, hook: str,
                 hook_out: str | None = None, n_windows: int | None = None, batch_size: int = 8,
                 norm_factor: float | None = None, norm_factor_out: float | None = None,
                 exclude_special_tokens: bool | Sequence[int] = True, compute_ce: bool = True,
                 dense_threshold: float = DEFAULT_DENSE_THRESHOLD) -> EvalMetrics:
    """SAELens's evaluation metrics of `sae` at `hook` (a transcoder: from `hook` to `hook_out`) on held-out
    token windows (the first `n_windows`), `batch_size` windows per forward.

    Raises:
        InvalidInputError: a hook does not resolve or cannot be written, a transcoder without `hook_out`, the
            windows are not a [n, context] tensor, `batch_size`/`n_windows` below 1, or the SAE's width does not
            fit the hook.
    """
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be at least 1 (got {batch_size})")
    _check_hooks(sae, hook, hook_out)
    tokens = _window_tokens(windows, n_windows)
    side = _SAESide(loaded, sae, hook, hook_out, norm_factor, norm_factor_out)
    read_point = resolve_hook(loaded, hook)
    write_point = resolve_hook(loaded, hook_out) if hook_out is not None else read_point
    write_head = side.head_index if hook_out is None else None
    special = torch.tensor(excluded_token_ids(loaded.tokenizer, exclude_special_tokens), dtype=torch.int64)
    sums = _Sums(sae.cfg.output_width, sae.cfg.d_sae, sae.device)
    was_training = loaded.model.training
    loaded.model.eval()
    try:
        for start in range(0, tokens.shape[0], batch_size):
            batch = tokens[start:start + batch_size]
            mask = ~torch.isin(batch, special)
            if compute_ce:
                _ce_batch(loaded, side, sums, batch, mask, read_point, write_point, write_head)
            else:
                _capture_batch(loaded, side, sums, batch, mask, read_point, write_point)
    finally:
        loaded.model.train(was_training)
    return _metrics(sums, dense_threshold, compute_ce)


def _check_width(sae: SAE, x: torch.Tensor, hook: str) -> None:
    if x.shape[-1] != sae.cfg.d_in:
        raise InvalidInputError(
            f"the SAE reads {sae.cfg.d_in}-wide activations but {hook} gives {x.shape[-1]}; evaluate it on the "
            "model and hook it was trained on")


def _capture_batch(loaded: LoadedModel, side: _SAESide, sums: _Sums, batch: torch.Tensor, mask: torch.Tensor,
                   read_point: HookPoint, write_point: HookPoint) -> None:
    points = [read_point] if side.hook_out is None else [read_point, write_point]
    acts = capture_many(loaded, batch, None, points)
    x = side.read(acts[read_point.name])
    _check_width(side.sae, x, side.hook)
    features, recon = side.run(x)
    target = x if side.hook_out is None else side.target(acts[write_point.name])
    sums.fold(features, recon, target, mask)


def _ce_batch(loaded: LoadedModel, side: _SAESide, sums: _Sums, batch: torch.Tensor, mask: torch.Tensor,
              read_point: HookPoint, write_point: HookPoint, write_head: int | None) -> None:
    clean = _logits(loaded, batch)
    store: dict[str, torch.Tensor] = {}

    def splice(view: torch.Tensor) -> torch.Tensor:
        if side.hook_out is None:
            x = side.read(view)
            _check_width(side.sae, x, side.hook)
            target = x
        else:
            if "x" not in store:
                raise RuntimeError(f"{side.hook} did not run before {side.hook_out}; a transcoder's input hook must "
                                   "come before its output hook")
            x = side.read(store.pop("x"))
            _check_width(side.sae, x, side.hook)
            target = side.target(view)
        features, recon = side.run(x)
        if recon.shape != target.shape:
            raise InvalidInputError(f"the transcoder writes {recon.shape[-1]}-wide outputs but {side.hook_out} is "
                                    f"{target.shape[-1]} wide")
        sums.fold(features, recon, target, mask)
        return side.write(view, target, recon, mask, write_head)

    ce_mask, kl_mask = mask[:, :-1].to(clean.device), mask.to(clean.device)
    sums.add("ce_clean", _ce_per_token(clean, batch)[ce_mask])
    patch = ActivationPatch(loaded, write_point, splice)
    with patch.installed(), _reading(read_point, store) if side.hook_out is not None else _no_reading():
        spliced = _logits(loaded, batch)
    sums.add("ce_sae", _ce_per_token(spliced, batch)[ce_mask])
    sums.add("kl_sae", _kl_per_token(clean, spliced)[kl_mask])
    del spliced  # one vocabulary-wide tensor at a time besides the clean logits
    with ActivationPatch(loaded, write_point, lambda view: side.zero(view, write_head)).installed():
        zeroed = _logits(loaded, batch)
    sums.add("ce_zero", _ce_per_token(zeroed, batch)[ce_mask])
    sums.add("kl_zero", _kl_per_token(clean, zeroed)[kl_mask])


@contextmanager
def _no_reading() -> Iterator[None]:
    yield


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0 or math.isnan(den):
        return None
    return num / den


def _metrics(sums: _Sums, dense_threshold: float, compute_ce: bool) -> EvalMetrics:
    rec = sums.reconstruction.result()
    n = int(rec["n_tokens"])
    if n == 0:
        raise InvalidInputError("the evaluation windows hold no tokens that are not special tokens")
    density = sums.fired.double().cpu() / n
    x_hat_sq, x_dot = sums.mean("x_hat_sq"), sums.mean("x_dot_x_hat")
    out: dict[str, Any] = {
        "n_tokens": n, "explained_variance": rec["explained_variance"], "mse": sums.mean("mse"),
        "mse_per_element": rec["mse"], "l0": sums.mean("l0"), "l1": sums.mean("l1"),
        "dead_fraction": float((sums.fired == 0).double().mean()),
        "dense_fraction": float((density > dense_threshold).double().mean()),
        "cossim": sums.mean("cossim"), "l2_norm_in": sums.mean("l2_norm_in"),
        "l2_norm_out": sums.mean("l2_norm_out"), "l2_ratio": sums.mean("l2_ratio"),
        "relative_reconstruction_bias": _ratio(x_hat_sq, x_dot),
        "density_histogram": density_histogram(density), "feature_density": density.tolist(),
    }
    if compute_ce:
        clean, with_sae, zero = sums.mean("ce_clean"), sums.mean("ce_sae"), sums.mean("ce_zero")
        kl_sae, kl_zero = sums.mean("kl_sae"), sums.mean("kl_zero")
        out.update(ce_loss_clean=clean, ce_loss_sae=with_sae, ce_loss_zero=zero, kl_div=kl_sae, kl_div_zero=kl_zero)
        if clean is not None and with_sae is not None and zero is not None:
            out["ce_loss_recovered"] = _ratio(zero - with_sae, zero - clean)
        if kl_sae is not None and kl_zero is not None:
            out["kl_div_score"] = _ratio(kl_zero - kl_sae, kl_zero)
    return EvalMetrics(**out)

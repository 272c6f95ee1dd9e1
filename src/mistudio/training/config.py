"""What to train (`SAESpec`) and how fast (`Schedule`), with defaults chosen for the token budget.

`SAESpec` carries SAELens's training-config knobs under SAELens's names and defaults (`decoder_init_norm` 0.1,
`aux_loss_coefficient` 1, `rescale_acts_by_decoder_norm` for the TopK family, `topk_threshold_lr` 0.01, the
JumpReLU bandwidth 0.05, initial threshold 0.01 and the `step` L0 penalty, no pre-activation loss).

`default_schedule` differs from SAELens's runner defaults on purpose.  SAELens's defaults (lr 3e-4, constant, no
warm-up or decay, 4096-token batches, L1 coefficient 1 without warm-up) are tuned for runs of hundreds of millions
to billions of tokens; a 400k-token run with them takes ~100 Adam steps of size ~3e-4 and stops far from a good
dictionary (on the synthetic dictionary of the tests: explained variance 0.09 where a tuned plain loop reaches
0.91 and these defaults 0.90).  What matters is the number of optimiser
steps, so the defaults are written in terms of it:

* batch: 4096 tokens (SAELens's) once the budget gives at least `MIN_STEPS` steps with it, else the largest power
  of two ≥ 256 that does — short runs buy steps with smaller batches;
* learning rate: SAELens's 3e-4 for long runs (≥ `LONG_RUN_STEPS` steps), rising as 1/steps for shorter ones
  up to `MAX_LR` (Adam moves each weight by about lr per step, so a run with fewer steps needs larger ones to
  travel as far; on a tiny model's activations at 1.5k steps the best constant lr was ~1e-2, 4e-2 diverged),
  scaled by 1/sqrt(d_sae / 16384) above 16k latents as in the OpenAI scaling recipe, so wide SAEs stay stable;
* linear warm-up over 5 % of the steps (at most 1000, SAELens's usual choice for long runs): the first steps of
  Adam are the large ones, and at billions of tokens a cold start at full lr is what diverges;
* linear decay to zero over the last 20 % of the steps (the SAELens docs' recommended `lr_decay_steps`), which is
  where most of the final explained variance is gained in short runs;
* L1 / L0 coefficient warm-up over 5 % of the steps (SAELens's `l1_warm_up_steps`), so features form before the
  sparsity penalty prunes them;
* gradient-norm clipping at 1 and Adam betas (0.9, 0.999) as SAELens's trainer; dead = no firing for
  `dead_feature_window` steps, SAELens's 1000, shortened to 10 % of the steps for short runs so the TopK
  auxiliary loss can revive dead latents before the run ends.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from mistudio.errors import InvalidInputError

ARCHITECTURES = ("standard", "topk", "batchtopk", "jumprelu", "matryoshka_batchtopk")
TOPK_FAMILY = ("topk", "batchtopk", "matryoshka_batchtopk")
SPARSITY_LOSS_MODES = ("step", "tanh")

DEFAULT_K = 32
DEFAULT_L1_COEFFICIENT = 1.0
DEFAULT_L0_COEFFICIENT = 1.0
SAELENS_LR = 3e-4
SAELENS_BATCH_TOKENS = 4096
MIN_BATCH_TOKENS = 256
MIN_STEPS = 1500
LONG_RUN_STEPS = 30_000
MAX_LR = 1e-2
WARM_UP_FRACTION = 0.05
MAX_WARM_UP_STEPS = 1000
DECAY_FRACTION = 0.2
SPARSITY_WARM_UP_FRACTION = 0.05
DEAD_FEATURE_WINDOW = 1000


@dataclass
class SAESpec:
    """One SAE (or transcoder) to train: its shape, architecture, sparsity and SAELens's recipe knobs.

    `None` for `k`, `l1_coefficient`, `l0_coefficient` means the default (`resolved()` fills them in); `lr` None
    means `default_schedule`'s.  A transcoder reads `hook_name` and predicts `hook_name_out` (`d_out` wide).
    """

    architecture: str
    hook_name: str
    d_in: int
    d_sae: int
    k: float | None = None
    l1_coefficient: float | None = None
    l0_coefficient: float | None = None
    hook_name_out: str | None = None
    d_out: int | None = None
    skip_connection: bool = False
    matryoshka_widths: list[int] | None = None
    lr: float | None = None
    seed: int = 0
    name: str | None = None
    decoder_init_norm: float | None = 0.1
    aux_loss_coefficient: float = 1.0
    aux_k: int | None = None
    rescale_acts_by_decoder_norm: bool = True
    topk_threshold_lr: float = 0.01
    jumprelu_init_threshold: float = 0.01
    jumprelu_bandwidth: float = 0.05
    jumprelu_sparsity_loss_mode: str = "step"
    jumprelu_tanh_scale: float = 4.0
    jumprelu_ste_to_input: bool = False
    pre_act_loss_coefficient: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise InvalidInputError(
                f"unknown training architecture {self.architecture!r}; use one of {', '.join(ARCHITECTURES)}"
            )
        for name in ("d_in", "d_sae"):
            if int(getattr(self, name)) < 1:
                raise InvalidInputError(f"{name} must be a positive integer (got {getattr(self, name)!r})")
        if self.d_out is not None and self.d_out < 1:
            raise InvalidInputError(f"d_out must be a positive integer (got {self.d_out!r})")
        if self.k is not None and not 0 < float(self.k) <= self.d_sae:
            raise InvalidInputError(f"k must be in (0, d_sae={self.d_sae}] (got {self.k!r})")
        if self.architecture == "topk" and self.k is not None and float(self.k) != int(self.k):
            raise InvalidInputError(f"a topk SAE needs an integer k (got {self.k!r}); batchtopk takes a mean k")
        for name in ("l1_coefficient", "l0_coefficient", "lr"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise InvalidInputError(f"{name} must be a non-negative number (got {value!r})")
        if self.lr is not None and self.lr == 0:
            raise InvalidInputError("lr must be positive")
        if self.jumprelu_sparsity_loss_mode not in SPARSITY_LOSS_MODES:
            raise InvalidInputError(f"jumprelu_sparsity_loss_mode must be one of {', '.join(SPARSITY_LOSS_MODES)} "
                                    f"(got {self.jumprelu_sparsity_loss_mode!r})")
        if self.is_transcoder and self.architecture == "topk":
            raise InvalidInputError("a topk transcoder cannot be saved in SAELens's format (it has no topk "
                                    "transcoder); train a batchtopk transcoder, saved as jumprelu_transcoder")
        if self.skip_connection and not self.is_transcoder:
            raise InvalidInputError("skip_connection is for transcoders; give hook_name_out")
        if self.architecture == "matryoshka_batchtopk":
            self.matryoshka_widths = matryoshka_levels(self.matryoshka_widths, self.d_sae)
        elif self.matryoshka_widths:
            raise InvalidInputError("matryoshka_widths is only for the matryoshka_batchtopk architecture")

    @property
    def is_transcoder(self) -> bool:
        """True when the SAE predicts another hook than it reads."""
        return (self.hook_name_out is not None and self.hook_name_out != self.hook_name) or (
            self.d_out is not None and self.d_out != self.d_in
        ) or self.skip_connection

    @property
    def output_width(self) -> int:
        """Width of the decoder's output (`d_out` for a transcoder, else `d_in`)."""
        return self.d_out if self.d_out is not None else self.d_in

    @property
    def sparsity_coefficient(self) -> float:
        """The coefficient of the architecture's sparsity penalty (0 for the TopK family, which has none)."""
        if self.architecture == "standard":
            return float(DEFAULT_L1_COEFFICIENT if self.l1_coefficient is None else self.l1_coefficient)
        if self.architecture == "jumprelu":
            return float(DEFAULT_L0_COEFFICIENT if self.l0_coefficient is None else self.l0_coefficient)
        return 0.0

    def resolved(self) -> SAESpec:
        """A copy with the defaults filled in for `k`, `l1_coefficient` and `l0_coefficient`."""
        k = self.k
        if k is None and self.architecture in TOPK_FAMILY:
            k = min(DEFAULT_K, self.d_sae)
        l1 = self.l1_coefficient
        if l1 is None and self.architecture == "standard":
            l1 = DEFAULT_L1_COEFFICIENT
        l0 = self.l0_coefficient
        if l0 is None and self.architecture == "jumprelu":
            l0 = DEFAULT_L0_COEFFICIENT
        if self.architecture == "topk" and k is not None:
            k = int(k)
        return dataclasses.replace(self, k=k, l1_coefficient=l1, l0_coefficient=l0,
                                   matryoshka_widths=list(self.matryoshka_widths or []) or None,
                                   extra=dict(self.extra))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAESpec:
        """Build from `to_dict()` output.

        Raises:
            InvalidInputError: unknown keys, missing required fields or values of the wrong type.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidInputError(f"unknown SAE training field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise InvalidInputError(f"malformed SAE training spec ({exc}); it needs architecture, hook_name, d_in "
                                    "and d_sae") from None


def matryoshka_levels(widths: list[int] | None, d_sae: int) -> list[int]:
    """The nested widths of a Matryoshka SAE, strictly increasing and ending at `d_sae` (appended when missing,
    as SAELens does); default: d_sae/16, d_sae/4, d_sae.

    Raises:
        InvalidInputError: widths not positive or not strictly increasing, or above d_sae.
    """
    if not widths:
        levels = sorted({w for w in (d_sae // 16, d_sae // 4) if 0 < w < d_sae})
        return [*levels, d_sae]
    levels = [int(w) for w in widths]
    if any(w <= 0 for w in levels) or any(b <= a for a, b in zip(levels, levels[1:], strict=False)):
        raise InvalidInputError(f"matryoshka_widths must be positive and strictly increasing (got {widths})")
    if levels[-1] > d_sae:
        raise InvalidInputError(f"matryoshka_widths end at {levels[-1]}, above d_sae={d_sae}")
    if levels[-1] != d_sae:
        levels.append(d_sae)
    return levels


@dataclass
class Schedule:
    """The optimiser's schedule: Adam with a linear warm-up, a constant phase and a linear decay to zero
    (SAELens's `constant` scheduler with `lr_warm_up_steps` / `lr_decay_steps`), plus the sparsity-coefficient
    warm-up (SAELens's `l1_warm_up_steps` / `l0_warm_up_steps`)."""

    lr: float
    total_steps: int
    batch_tokens: int
    warm_up_steps: int = 0
    decay_steps: int = 0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip_norm: float | None = 1.0
    sparsity_warm_up_steps: int = 0
    dead_feature_window: int = DEAD_FEATURE_WINDOW

    def __post_init__(self) -> None:
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InvalidInputError(f"the learning rate must be positive (got {self.lr!r})")
        if self.total_steps < 1 or self.batch_tokens < 1:
            raise InvalidInputError(f"total_steps and batch_tokens must be positive (got {self.total_steps}, "
                                    f"{self.batch_tokens}); give more tokens or a smaller batch")
        if self.warm_up_steps < 0 or self.decay_steps < 0 or self.warm_up_steps + self.decay_steps > self.total_steps:
            raise InvalidInputError(f"warm_up_steps ({self.warm_up_steps}) + decay_steps ({self.decay_steps}) must "
                                    f"fit in total_steps ({self.total_steps})")

    def lr_at(self, step: int) -> float:
        """The learning rate of optimiser step `step` (0-based), exactly as SAELens's `get_lr_scheduler`
        ("constant" with warm-up and decay) sets it."""
        factor = 1.0
        warm = self.warm_up_steps
        if warm > 0 and step < warm:
            factor = 1.0 / warm + (1.0 - 1.0 / warm) * (step / (warm - 1) if warm > 1 else 1.0)
        decay_start = self.total_steps - self.decay_steps
        if self.decay_steps > 0 and step >= decay_start:
            factor = max(0.0, 1.0 - (step - decay_start) / self.decay_steps)
        return self.lr * factor

    def sparsity_scale_at(self, step: int) -> float:
        """The fraction of the sparsity coefficient used at step `step` (SAELens's `CoefficientScheduler`)."""
        if self.sparsity_warm_up_steps <= 0:
            return 1.0
        return min(1.0, step / self.sparsity_warm_up_steps)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        """Build from `to_dict()` output.

        Raises:
            InvalidInputError: unknown keys or missing fields.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidInputError(f"unknown schedule field(s) {', '.join(unknown)}")
        values = dict(data)
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise InvalidInputError(f"malformed training schedule ({exc})") from None


def default_batch_tokens(n_tokens: int) -> int:
    """SAELens's 4096-token batch when the budget allows `MIN_STEPS` steps with it, else the largest power of
    two ≥ `MIN_BATCH_TOKENS` that does."""
    batch = SAELENS_BATCH_TOKENS
    while batch > MIN_BATCH_TOKENS and n_tokens // batch < MIN_STEPS:
        batch //= 2
    return batch


def default_lr(total_steps: int, d_sae: int) -> float:
    """SAELens's 3e-4 for runs of `LONG_RUN_STEPS` steps or more, ∝ 1/steps down to `MIN_STEPS` steps and
    constant below (capped at `MAX_LR`), scaled by 1/sqrt(d_sae/16384) above 16k latents.

    Below `MIN_STEPS` the steps are few because the batch was chosen large: its gradients are less noisy, not more,
    and a larger lr only overshoots (tiny GPT-2, TopK 2048, 98 steps of 4096 tokens: lr 1e-2 ends at explained
    variance -0.09, 4e-3 at 0.62; both SAELens's trainer and ours)."""
    lr = SAELENS_LR * LONG_RUN_STEPS / min(max(total_steps, MIN_STEPS), LONG_RUN_STEPS)
    lr = min(lr, MAX_LR)
    if d_sae > 16384:
        lr /= math.sqrt(d_sae / 16384)
    return lr


def default_schedule(spec: SAESpec, n_tokens: int, batch_tokens: int | None = None) -> Schedule:
    """The budget-aware schedule for training `spec` on `n_tokens` tokens (see the module docstring).

    Raises:
        InvalidInputError: fewer tokens than one batch.
    """
    batch = int(batch_tokens) if batch_tokens else default_batch_tokens(int(n_tokens))
    if batch < 1:
        raise InvalidInputError(f"batch_tokens must be positive (got {batch_tokens!r})")
    total = int(n_tokens) // batch
    if total < 1:
        raise InvalidInputError(f"n_tokens ({n_tokens}) is less than one batch of {batch} tokens; train on more "
                                "tokens or use a smaller --batch-tokens")
    warm_up = min(MAX_WARM_UP_STEPS, int(total * WARM_UP_FRACTION))
    decay = int(total * DECAY_FRACTION)
    return Schedule(
        lr=float(spec.lr) if spec.lr is not None else default_lr(total, spec.d_sae),
        total_steps=total,
        batch_tokens=batch,
        warm_up_steps=warm_up,
        decay_steps=decay,
        sparsity_warm_up_steps=int(total * SPARSITY_WARM_UP_FRACTION) if spec.architecture in ("standard", "jumprelu")
        else 0,
        dead_feature_window=min(DEAD_FEATURE_WINDOW, max(10, total // 10)),
    )

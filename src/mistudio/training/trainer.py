"""`SAETrainer`: one optimisation step at a time on batches of activations, with SAELens's trainer semantics.

Per step (SAELens's `SAETrainer._train_step`): the dead mask of the steps so far, the architecture's training
forward pass (MSE + its terms, the sparsity coefficient warmed up by the schedule), the firing counters, backward,
gradient-norm clipping, Adam at the schedule's learning rate.  SAELens 6 never renormalises the decoder during
training: the standard SAE's L1 is weighted by the decoder row norms and the TopK family scales its
pre-activations by them, so neither gains from growing or shrinking decoder rows; we do the same.

State is flat tensors (`state_dict`), so a checkpoint is one safetensors file and a resumed run takes exactly the
steps an uninterrupted one takes (the schedule is a pure function of the step; the optimiser state and counters
are restored; the one random generator, used for initialisation, is restored too).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch

from mistudio.errors import InvalidInputError
from mistudio.saes.model import SAE, SAEConfig
from mistudio.training.architectures import LossInput, TrainingArchitecture, build_architecture
from mistudio.training.config import SAESpec, Schedule


class GradientSync(Protocol):
    """What the trainer needs from `training.distributed.DistributedContext`."""

    world_size: int

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None: ...

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor: ...

    def max_(self, tensor: torch.Tensor) -> torch.Tensor: ...


@dataclass
class StepMetrics:
    """What one step measured on its batch (SAELens's train-step log: `explained_variance` = 1 − mean squared
    error / mean total variance of the target)."""

    step: int
    tokens: int
    loss: float
    mse: float
    l0: float
    explained_variance: float
    dead_fraction: float
    lr: float
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


class SAETrainer:
    """Trains one SAE or transcoder described by `spec` with `schedule`.

    Raises:
        InvalidInputError: (from `step`) batches of the wrong width, or a transcoder stepped without a target.
    """

    def __init__(self, spec: SAESpec, schedule: Schedule, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, dist: GradientSync | None = None) -> None:
        self.spec = spec.resolved()
        self.schedule = schedule
        self.device = torch.device(device)
        self.dtype = dtype
        self.dist = dist
        self.generator = torch.Generator().manual_seed(int(self.spec.seed))
        self.module: TrainingArchitecture = build_architecture(self.spec, generator=self.generator)
        self.module.to(self.device, dtype)
        self._params = [p for _, p in self.module.named_parameters()]
        self._param_names = [n for n, _ in self.module.named_parameters()]
        options: dict[str, Any] = {"fused": True} if self.device.type == "cuda" else {}
        self.optimizer = torch.optim.Adam(self._params, lr=schedule.lr, betas=schedule.betas, **options)
        self.steps = 0
        self.tokens_seen = 0
        d_sae = self.spec.d_sae
        self.steps_since_fired = torch.zeros(d_sae, device=self.device)
        self.firing_counts = torch.zeros(d_sae, device=self.device)
        self.density_rows = 0

    # ----- counters ----------------------------------------------------------------------------------------
    def dead_mask(self) -> torch.Tensor:
        """Latents that have not fired for more than `dead_feature_window` steps (SAELens's `dead_neurons`)."""
        return self.steps_since_fired > self.schedule.dead_feature_window

    def feature_density(self) -> torch.Tensor:
        """Each latent's firing frequency since the start or the last `reset_density()`."""
        return self.firing_counts / max(1, self.density_rows)

    def log_feature_density(self) -> torch.Tensor:
        """log10(density + 1e-10) on the CPU, the values of SAELens's `sparsity.safetensors`."""
        return torch.log10(self.feature_density() + 1e-10).detach().cpu()

    def reset_density(self) -> None:
        """Start a new density window (SAELens resets it every `feature_sampling_window` steps)."""
        self.firing_counts.zero_()
        self.density_rows = 0

    # ----- the step ----------------------------------------------------------------------------------------
    def _check(self, x: torch.Tensor, width: int, what: str) -> torch.Tensor:
        if x.ndim != 2 or x.shape[-1] != width:
            raise InvalidInputError(f"{what} batch has shape {tuple(x.shape)}; expected [batch, {width}]")
        return x.to(self.device, self.dtype)

    def step(self, x: torch.Tensor, target: torch.Tensor | None = None) -> StepMetrics:
        """One optimisation step on `x [B, d_in]` (and `target [B, d_out]` for a transcoder; an SAE's target is
        `x`), both already normalised by the stream."""
        x = self._check(x, self.spec.d_in, "input")
        if target is None:
            if self.spec.is_transcoder:
                raise InvalidInputError("a transcoder trains on (input, target) pairs; pass the output hook's "
                                        "activations as target")
            target = x
        else:
            target = self._check(target, self.spec.output_width, "target")
        self.module.train()
        dead = self.dead_mask()
        coefficient = self.spec.sparsity_coefficient * self.schedule.sparsity_scale_at(self.steps)
        output = self.module.training_forward(LossInput(x, target, coefficient, dead))
        with torch.no_grad():
            counts = (output.feature_acts != 0).sum(0).float()
            rows = x.shape[0]
            if self.dist is not None:  # every rank steps on an equal shard of the global batch
                self.dist.sum_(counts)
                rows *= self.dist.world_size
            self.steps_since_fired += 1
            self.steps_since_fired[counts > 0] = 0
            self.firing_counts += counts
            self.density_rows += rows
        output.loss.backward()
        if self.dist is not None:
            self.dist.average_gradients(self._params)
        if self.schedule.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self._params, self.schedule.grad_clip_norm)
        lr = self.schedule.lr_at(self.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.dist is not None:
            self.module.synchronise(self.dist)
        self.steps += 1
        self.tokens_seen += rows
        return self._metrics(output.loss, output.losses, output.metrics, output.feature_acts, output.out, target, lr)

    @torch.no_grad()
    def _metrics(self, loss: torch.Tensor, losses: dict[str, torch.Tensor], extra: dict[str, torch.Tensor],
                 acts: torch.Tensor, out: torch.Tensor, target: torch.Tensor, lr: float) -> StepMetrics:
        target = target.float()
        l2 = (out.float() - target).pow(2).sum(-1)
        variance = (target - target.mean(0)).pow(2).sum(-1)
        names = list(losses) + list(extra)
        values = torch.stack([
            loss.detach().float(), l2.mean(), (acts != 0).sum(-1).float().mean(),
            1 - l2.mean() / variance.mean(), self.dead_mask().float().mean(),
            *[v.detach().float().reshape(()) for v in losses.values()],
            *[v.detach().float().reshape(()) for v in extra.values()],
        ]).tolist()
        return StepMetrics(step=self.steps, tokens=self.tokens_seen, loss=values[0], mse=values[1], l0=values[2],
                           explained_variance=values[3], dead_fraction=values[4], lr=lr,
                           extra=dict(zip(names, values[5:], strict=True)))

    # ----- checkpoints -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat tensors: weights and buffers (`module.*`), Adam's moments and step counts (`optimizer.*`), the
        counters (`trainer.*`) and the random generator (`rng.generator`)."""
        out: dict[str, torch.Tensor] = {}
        for name, tensor in self.module.state_dict().items():
            out[f"module.{name}"] = tensor.detach().clone()
        for name, param in zip(self._param_names, self._params, strict=True):
            for key, value in self.optimizer.state.get(param, {}).items():
                if isinstance(value, torch.Tensor):
                    out[f"optimizer.{name}.{key}"] = value.detach().clone()
        out["trainer.steps"] = torch.tensor(self.steps, dtype=torch.int64)
        out["trainer.tokens_seen"] = torch.tensor(self.tokens_seen, dtype=torch.int64)
        out["trainer.density_rows"] = torch.tensor(self.density_rows, dtype=torch.int64)
        out["trainer.steps_since_fired"] = self.steps_since_fired.detach().clone()
        out["trainer.firing_counts"] = self.firing_counts.detach().clone()
        out["rng.generator"] = self.generator.get_state()
        return {k: v.contiguous() for k, v in out.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore `state_dict()` output (of a trainer built with the same spec and schedule).

        Raises:
            InvalidInputError: tensors missing or of another shape (a checkpoint of another SAE).
        """
        module_state = {k.removeprefix("module."): v for k, v in state.items() if k.startswith("module.")}
        try:
            self.module.load_state_dict(module_state)
        except RuntimeError as exc:
            raise InvalidInputError(f"the checkpoint does not match this SAE ({exc}); it belongs to another "
                                    "training run") from None
        opt_state: dict[int, dict[str, torch.Tensor]] = {}
        for index, name in enumerate(self._param_names):
            entries = {key.removeprefix(f"optimizer.{name}."): value for key, value in state.items()
                       if key.startswith(f"optimizer.{name}.") and "." not in key.removeprefix(f"optimizer.{name}.")}
            if entries:
                opt_state[index] = entries
        saved_groups = self.optimizer.state_dict()["param_groups"]
        self.optimizer.load_state_dict({"state": opt_state, "param_groups": saved_groups})
        for key in ("trainer.steps", "trainer.tokens_seen", "trainer.density_rows", "trainer.steps_since_fired",
                    "trainer.firing_counts", "rng.generator"):
            if key not in state:
                raise InvalidInputError(f"the checkpoint lacks {key}; it was not written by SAETrainer.state_dict")
        self.steps = int(state["trainer.steps"])
        self.tokens_seen = int(state["trainer.tokens_seen"])
        self.density_rows = int(state["trainer.density_rows"])
        self.steps_since_fired = state["trainer.steps_since_fired"].to(self.device).clone()
        self.firing_counts = state["trainer.firing_counts"].to(self.device).clone()
        self.generator.set_state(state["rng.generator"].clone())

    # ----- the result --------------------------------------------------------------------------------------
    def inference_sae(self, *, norm_factor: float | None = None, norm_factor_out: float | None = None,
                      **cfg_fields: Any) -> SAE:
        """The trained SAE as our inference module (SAELens semantics: TopK's decoder norms folded into the
        encoder, BatchTopK/Matryoshka as JumpReLU with the learned threshold), float32 on the CPU.

        `norm_factor` is the factor the stream multiplied inputs by (`norm_factor_out`: targets, default the
        same); it is folded into the weights as SAELens's `fold_activation_norm_scaling_factor` does, so the SAE
        takes raw activations.  `cfg_fields` are further `SAEConfig` fields (model_name, context_size, ...).

        Raises:
            InvalidInputError: an unknown config field.
        """
        scale_in = float(norm_factor) if norm_factor is not None else 1.0
        scale_out = float(norm_factor_out) if norm_factor_out is not None else scale_in
        tensors = self.module.inference_tensors(scale_in, scale_out)
        fields: dict[str, Any] = {
            "d_in": self.spec.d_in,
            "d_sae": self.spec.d_sae,
            "hook_name": self.spec.hook_name,
            "apply_b_dec_to_input": not self.spec.is_transcoder,
            **self.module.inference_fields(),
        }
        extra = {"training_architecture": self.spec.architecture, **dict(cfg_fields.pop("extra", None) or {})}
        if self.spec.is_transcoder:
            fields.update(d_out=self.spec.output_width, hook_name_out=self.spec.hook_name_out,
                          skip_connection=self.spec.skip_connection)
            if fields["architecture"] == "batchtopk":
                fields["architecture"] = "jumprelu"
                extra["k"] = fields.pop("k")
        fields.update(cfg_fields)
        fields["extra"] = extra
        try:
            cfg = SAEConfig(**fields)
        except TypeError as exc:
            raise InvalidInputError(f"unknown SAE config field ({exc}); see saes.model.SAEConfig") from None
        return SAE.from_state_dict(cfg, tensors)

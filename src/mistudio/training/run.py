"""The training run: one activation stream feeds every SAE of the run (several hooks, widths or k values share
each forward pass), with periodic held-out evaluations, curves and atomic checkpoints.

`run_dir` holds `run.json` (the run's config), `metrics.jsonl` (one line per logged step: step, tokens, elapsed_s
and one entry per SAE), `evals.jsonl` (one line per evaluation: step, tokens and one `evaluate_sae` result per SAE)
and `checkpoint/` (every trainer's state, the stream's state, and `state.json`: step, tokens, elapsed seconds, the
curves' byte lengths, the norm factors). A checkpoint is written every `checkpoint_every_tokens` and when `check`
raises (pause, cancel), replacing the previous one atomically. A run started again in the same folder continues
from its checkpoint (the curves cut back to the checkpoint's lengths), so a paused, crashed or killed run ends
with the same weights and curves as an uninterrupted one: the stream resumes at the same window and buffer, every
trainer at the same optimiser state and RNG.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mistudio.errors import InvalidInputError
from mistudio.fsutil import atomic_dir, atomic_write_bytes, atomic_write_text
from mistudio.training.activations import ActivationStream, HookRead, split_held_out, windows_needed
from mistudio.training.config import SAESpec, Schedule, default_batch_tokens, default_schedule

if TYPE_CHECKING:
    from mistudio.datasets.windows import Windows
    from mistudio.lm.loading import LoadedModel
    from mistudio.saes.model import SAE
    from mistudio.training.trainer import SAETrainer

ProgressFn = Callable[[dict[str, Any]], None]
CHECKPOINT = "checkpoint"
METRICS, EVALS, RUN_CONFIG, STREAMS = "metrics.jsonl", "evals.jsonl", "run.json", "streams"
STEP_FIELDS = ("loss", "mse", "l0", "explained_variance", "dead_fraction", "lr")


class RunStopped(Exception):  # noqa: N818 - a stop, not a failure
    """Raised by `run_training(stop_after_tokens=…)`: the run stopped as a killed process would, without writing
    a checkpoint (tests of crash recovery)."""


@dataclass
class RunConfig:
    """Everything a run needs besides the loaded model: what to train (`specs`, the first being the main SAE), on
    which data, for how long, and how often to evaluate, checkpoint and log."""

    model: str
    dataset: str
    specs: list[SAESpec]
    n_tokens: int
    batch_tokens: int | None = None
    context_size: int = 128
    seed: int = 0
    text_field: str = "text"
    split: str = "train"
    prepend_bos: bool = True
    eval_windows: int = 16
    eval_every_tokens: int | None = None
    checkpoint_every_tokens: int | None = None
    normalize_activations: str = "expected_average_only_in"
    norm_sample_windows: int = 64
    exclude_special_tokens: bool = True
    buffer_windows: int | None = None
    forward_batch_windows: int = 16
    mix_fraction: float = 0.5
    log_every_steps: int | None = None
    epochs: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.specs:
            raise InvalidInputError("a training run needs at least one SAE")
        if self.normalize_activations not in ("expected_average_only_in", "none"):
            raise InvalidInputError(f"normalize_activations must be expected_average_only_in or none, not "
                                    f"{self.normalize_activations!r}")
        if self.n_tokens < 1:
            raise InvalidInputError(f"n_tokens must be positive (got {self.n_tokens})")
        if self.epochs < 1:
            raise InvalidInputError(f"epochs must be at least 1 (got {self.epochs})")

    @property
    def resolved_batch_tokens(self) -> int:
        """Tokens per step: given, else `config.default_batch_tokens` for the budget."""
        return int(self.batch_tokens or default_batch_tokens(self.n_tokens))

    @property
    def resolved_buffer_windows(self) -> int:
        """Windows the shuffling buffer holds: given, else about 16 batches' worth (at least 64 windows)."""
        if self.buffer_windows:
            return int(self.buffer_windows)
        return max(64, math.ceil(16 * self.resolved_batch_tokens / max(1, self.context_size - 1)))

    def schedules(self) -> list[Schedule]:
        """Each SAE's budget-aware schedule (`config.default_schedule`)."""
        return [default_schedule(spec, self.n_tokens, self.resolved_batch_tokens) for spec in self.specs]

    def total_steps(self) -> int:
        """Optimisation steps of the run."""
        return self.n_tokens // self.resolved_batch_tokens

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (specs as `SAESpec.to_dict()`)."""
        out = dataclasses.asdict(self)
        out["specs"] = [spec.to_dict() for spec in self.specs]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from `to_dict()` output.

        Raises:
            InvalidInputError: unknown or malformed fields.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidInputError(f"unknown training run field(s) {', '.join(unknown)}")
        values = {**data, "specs": [SAESpec.from_dict(s) for s in data.get("specs") or []]}
        try:
            return cls(**values)
        except TypeError as exc:
            raise InvalidInputError(f"malformed training run config ({exc})") from None


@dataclass
class RunResult:
    """What a finished run produced: one inference SAE per spec (norm factor folded in), their final evaluations,
    and the run's totals."""

    saes: list[SAE]
    evals: list[dict[str, Any]]
    tokens_seen: int
    steps: int
    wall_time_s: float
    norm_factors: dict[str, float]
    resumed_from_tokens: int
    data_exhausted: bool
    sparsity: list[torch.Tensor] = field(default_factory=list)  # log10 feature densities per SAE (SAELens's)


def load_windows(loaded: LoadedModel, cfg: RunConfig) -> tuple[Windows, Windows]:
    """(training windows, held-out windows) of the run's dataset, tokenised as the extraction does (SAELens's
    concat/BOS rules) in a seeded random order; the held-out windows are never trained on.

    Raises:
        InvalidInputError: the dataset is too small to hold out the evaluation windows.
    """
    from mistudio.datasets.sources import load_texts
    from mistudio.datasets.windows import tokenize_windows

    source = load_texts(cfg.dataset, text_field=cfg.text_field, split=cfg.split)
    per_epoch = math.ceil(cfg.n_tokens / cfg.epochs)
    n = windows_needed(per_epoch, cfg.context_size, cfg.exclude_special_tokens) + cfg.eval_windows
    windows = tokenize_windows(source, loaded.tokenizer, context_size=cfg.context_size, n_windows=n,
                               prepend_bos=cfg.prepend_bos, shuffle=True, seed=cfg.seed, pool_factor=1)
    return split_held_out(windows, cfg.eval_windows)


def _every(value: int | None, n_tokens: int, times: int, batch: int) -> int:
    """A token interval: `value`, else `n_tokens / times`, at least one batch."""
    return max(batch, int(value) if value else n_tokens // times)


def _crossed(before: int, after: int, every: int) -> bool:
    return after // every > before // every


class _Curves:
    """An append-only JSONL file whose length is recorded with each checkpoint and cut back to on resume."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def reset(self, length: int) -> None:
        if not self.enabled:
            return
        if length == 0:
            self.path.unlink(missing_ok=True)
        elif self.path.exists():
            with self.path.open("r+b") as fh:
                fh.truncate(length)

    def append(self, row: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")

    def length(self) -> int:
        return self.path.stat().st_size if self.enabled and self.path.exists() else 0


def _checkpoint_dir(run_dir: Path) -> Path | None:
    """The latest complete checkpoint (the previous one when a swap was cut short), or None."""
    for candidate in (run_dir / CHECKPOINT, run_dir / f".{CHECKPOINT}.old"):
        if (candidate / "state.json").exists():
            return candidate
    return None


def has_checkpoint(run_dir: Path) -> bool:
    """Whether `run_dir` holds a checkpoint a run would resume from."""
    return _checkpoint_dir(Path(run_dir)) is not None


def checkpoint_tokens(run_dir: Path) -> int:
    """Tokens trained at `run_dir`'s checkpoint (0 without one)."""
    found = _checkpoint_dir(Path(run_dir))
    if found is None:
        return 0
    return int(json.loads((found / "state.json").read_text())["tokens"])


def clear_checkpoint(run_dir: Path) -> None:
    """Remove `run_dir`'s checkpoint (once the run's SAEs are saved elsewhere)."""
    for name in (CHECKPOINT, f".{CHECKPOINT}.old", STREAMS):
        shutil.rmtree(Path(run_dir) / name, ignore_errors=True)


def _tensor_bytes(state: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().contiguous().cpu() for k, v in state.items()})


def _save_checkpoint(run_dir: Path, trainers: list[SAETrainer], stream: ActivationStream | None,
                     state: dict[str, Any]) -> None:
    with atomic_dir(run_dir / CHECKPOINT, overwrite=True) as tmp:
        for i, trainer in enumerate(trainers):
            (tmp / f"trainer-{i}.safetensors").write_bytes(_tensor_bytes(trainer.state_dict()))
        if stream is not None:
            (tmp / "stream.safetensors").write_bytes(_tensor_bytes(stream.state_dict()))
        atomic_write_text(tmp / "state.json", json.dumps(state, indent=2))


def _rank_stream_file(run_dir: Path, rank: int, step: int) -> Path:
    """Under torch.distributed, rank `rank`'s stream state at `step` (beside the checkpoint, which names the step)."""
    return run_dir / STREAMS / f"rank{rank}-step{step}.safetensors"


def _eval_metrics(result: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    if hasattr(result, "model_dump"):
        return dict(result.model_dump())
    return dict(result)


class _Run:
    """The state of one `run_training` call."""

    def __init__(self, loaded: LoadedModel, cfg: RunConfig, run_dir: Path, *, device: torch.device,
                 dist: Any, progress: ProgressFn | None) -> None:
        from mistudio.training.trainer import SAETrainer

        self.loaded, self.cfg, self.run_dir, self.device, self.dist = loaded, cfg, run_dir, device, dist
        self.progress = progress
        self.main = dist is None or bool(dist.is_main)
        self.batch = cfg.resolved_batch_tokens
        self.schedules = cfg.schedules()
        self.total_steps = cfg.total_steps()
        self.trainers = [SAETrainer(spec, schedule, device=device, dist=dist)
                         for spec, schedule in zip(cfg.specs, self.schedules, strict=True)]
        self.metrics = _Curves(run_dir / METRICS, self.main)
        self.evals = _Curves(run_dir / EVALS, self.main)
        self.eval_every = _every(cfg.eval_every_tokens, cfg.n_tokens, 10, self.batch)
        self.checkpoint_every = _every(cfg.checkpoint_every_tokens, cfg.n_tokens, 20, self.batch)
        self.log_every = cfg.log_every_steps or max(1, self.total_steps // 2000)
        self.step, self.tokens, self.elapsed_before = 0, 0, 0.0
        self.norm_factors: dict[str, float] = {}
        self.last_eval: list[dict[str, Any]] = []
        self.last_eval_tokens = -1
        self.train_windows, self.held_out = load_windows(loaded, cfg)
        hooks: dict[str, HookRead] = {}
        for spec in cfg.specs:
            for name in (spec.hook_name, spec.hook_name_out):
                if name is not None:
                    hooks.setdefault(name, HookRead(name))
        world = int(dist.world_size) if dist is not None else 1
        if self.batch % world:
            raise InvalidInputError(f"batch_tokens ({self.batch}) is the global batch: it must divide into the "
                                    f"{world} ranks")
        self.stream = ActivationStream(loaded, self.train_windows, list(hooks.values()),
                                       batch_tokens=self.batch // world,
                                       buffer_windows=cfg.resolved_buffer_windows,
                                       forward_batch_windows=cfg.forward_batch_windows,
                                       mix_fraction=cfg.mix_fraction, seed=cfg.seed,
                                       exclude_special_tokens=cfg.exclude_special_tokens, device=device, dist=dist,
                                       epochs=cfg.epochs)
        self.t0 = time.monotonic()
        self.session_tokens = 0
        self.completed = False

    # -- state ---------------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.t0

    def restore(self) -> bool:
        """Continue from the run folder's checkpoint; False when there is none."""
        from safetensors.torch import load_file

        found = _checkpoint_dir(self.run_dir)
        if found is None:
            return False
        state = json.loads((found / "state.json").read_text())
        for i, trainer in enumerate(self.trainers):
            trainer.load_state_dict(load_file(str(found / f"trainer-{i}.safetensors"), device=str(self.device)))
        self.step, self.tokens = int(state["step"]), int(state["tokens"])
        stream_file = found / "stream.safetensors" if self.dist is None else \
            _rank_stream_file(self.run_dir, self.dist.rank, self.step)
        if stream_file.exists():
            self.stream.load_state_dict(load_file(str(stream_file)))
        self.elapsed_before = float(state["elapsed_s"])
        self.norm_factors = {k: float(v) for k, v in state["norm_factors"].items()}
        self.stream.norm_factors = dict(self.norm_factors)
        self.last_eval = state.get("last_eval") or []
        self.last_eval_tokens = int(state.get("last_eval_tokens", -1))
        self.metrics.reset(int(state["metrics_bytes"]))
        self.evals.reset(int(state["evals_bytes"]))
        self.completed = bool(state.get("completed"))
        return True

    def save(self, *, completed: bool = False) -> None:
        """Checkpoint the run. Under torch.distributed every rank first writes its own stream state (named by
        the step), then the main rank swaps in the checkpoint naming that step, then older stream files go."""
        dist = self.dist
        if dist is not None and not completed:
            atomic_write_bytes(_rank_stream_file(self.run_dir, dist.rank, self.step),
                               _tensor_bytes(self.stream.state_dict()))
            dist.barrier()
        if self.main:
            state = {"step": self.step, "tokens": self.tokens, "elapsed_s": self.elapsed(),
                     "metrics_bytes": self.metrics.length(), "evals_bytes": self.evals.length(),
                     "norm_factors": self.norm_factors, "last_eval": self.last_eval,
                     "last_eval_tokens": self.last_eval_tokens, "completed": completed}
            stream = None if completed or dist is not None else self.stream
            _save_checkpoint(self.run_dir, self.trainers, stream, state)
        if dist is not None:
            dist.barrier()
            current = _rank_stream_file(self.run_dir, dist.rank, self.step).name
            for old in (self.run_dir / STREAMS).glob(f"rank{dist.rank}-step*.safetensors"):
                if old.name != current or completed:
                    old.unlink(missing_ok=True)

    # -- the loop --------------------------------------------------------------------------------------------
    def scaled(self, batch: dict[str, torch.Tensor], spec: SAESpec) -> tuple[torch.Tensor, torch.Tensor | None]:
        """An SAE's input (and a transcoder's target), scaled by its input hook's norm factor."""
        factor = self.norm_factors.get(spec.hook_name, 1.0)
        x = batch[spec.hook_name]
        target = batch[spec.hook_name_out] if spec.hook_name_out is not None else None
        if factor != 1.0:
            x = x * factor
            target = target * factor if target is not None else None
        return x, target

    def inference_saes(self) -> list[SAE]:
        cfg = self.cfg
        return [trainer.inference_sae(norm_factor=self.norm_factors.get(spec.hook_name), model_name=cfg.model,
                                      context_size=cfg.context_size, prepend_bos=cfg.prepend_bos,
                                      dataset_path=cfg.dataset)
                for trainer, spec in zip(self.trainers, cfg.specs, strict=True)]

    def evaluate(self) -> list[dict[str, Any]]:
        """Every SAE's held-out evaluation at the current step (appended to `evals.jsonl`)."""
        from mistudio.training.evaluate import evaluate_sae

        results = []
        for sae, spec in zip(self.inference_saes(), self.cfg.specs, strict=True):
            metrics = evaluate_sae(self.loaded, sae, self.held_out, hook=spec.hook_name, hook_out=spec.hook_name_out,
                                   n_windows=len(self.held_out), batch_size=self.cfg.forward_batch_windows)
            results.append(_eval_metrics(metrics))
        self.last_eval, self.last_eval_tokens = results, self.tokens
        self.evals.append({"step": self.step, "tokens": self.tokens, "elapsed_s": round(self.elapsed(), 3),
                           "saes": results})
        return results

    def report(self, rows: list[dict[str, float]]) -> None:
        if self.progress is None:
            return
        session_s = max(time.monotonic() - self.t0, 1e-9)
        rate = self.session_tokens / session_s
        left = self.total_steps * self.batch - self.tokens
        self.progress({"step": self.step, "total_steps": self.total_steps, "tokens": self.tokens,
                       "n_tokens": self.total_steps * self.batch, "fraction": self.step / self.total_steps,
                       "tokens_per_s": rate, "eta_s": left / rate if rate > 0 else None, "elapsed_s": self.elapsed(),
                       "saes": rows})

    def checked(self, check: Callable[[], None] | None) -> None:
        """Run `check` (the main rank's, under torch.distributed, where every rank stops at the same step); when
        it raises, checkpoint and raise."""
        if check is None and self.dist is None:
            return
        error: BaseException | None = None
        if self.main and check is not None:
            try:
                check()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the checkpoint
                error = exc
        stop = error is not None if self.dist is None else self.dist.any_(error is not None)
        if stop:
            self.save()
            raise error if error is not None else RunStopped("stopped by the main rank")

    def loop(self, check: Callable[[], None] | None, stop_after_tokens: int | None) -> bool:
        """Train to the end; True when the data ran out first."""
        while self.step < self.total_steps:
            self.checked(check)
            batch = self.stream.next_batch()
            if self.dist is not None and self.dist.any_(batch is None):
                return True  # every rank stops at the step the first rank runs out of windows
            if batch is None:
                return True
            rows = []
            for trainer, spec in zip(self.trainers, self.cfg.specs, strict=True):
                x, target = self.scaled(batch, spec)
                metrics = trainer.step(x, target)
                rows.append({name: float(getattr(metrics, name)) for name in STEP_FIELDS})
            before = self.tokens
            self.step += 1
            self.tokens += self.batch
            self.session_tokens += self.batch
            if self.step % self.log_every == 0 or self.step == self.total_steps:
                self.metrics.append({"step": self.step, "tokens": self.tokens, "elapsed_s": round(self.elapsed(), 3),
                                     "saes": rows})
            if self.main and _crossed(before, self.tokens, self.eval_every) and self.step < self.total_steps:
                self.evaluate()
            if _crossed(before, self.tokens, self.checkpoint_every) and self.step < self.total_steps:
                self.save()
            self.report(rows)
            if stop_after_tokens is not None and self.tokens >= stop_after_tokens:
                raise RunStopped(f"stopped after {self.tokens} tokens")
        return False


def run_training(loaded: LoadedModel, cfg: RunConfig, run_dir: str | Path, *, progress: ProgressFn | None = None,
                 check: Callable[[], None] | None = None, dist: Any = None,
                 device: torch.device | str | None = None, stop_after_tokens: int | None = None) -> RunResult:
    """Train every SAE of `cfg` on `loaded`'s activations, continuing from `run_dir`'s checkpoint if it has one.

    `progress` gets a dict per step (step, tokens, tokens_per_s, eta_s, elapsed_s, one metrics row per SAE);
    `check` is called before each step (a raise saves a checkpoint and propagates: pause/cancel); `dist` (a
    `training.distributed.DistributedContext`) shards the windows by rank (each rank reads `batch_tokens /
    world_size` positions per step: `batch_tokens` stays the global batch, so the schedule is a single process's),
    averages gradients in the trainers, takes the main rank's norm factors and pause, and lets only the main rank
    write the curves and checkpoints (each rank writes its own stream state beside them). `stop_after_tokens` makes the run stop as a killed one would (no
    checkpoint), raising `RunStopped`.

    Raises:
        InvalidInputError: a bad config, a dataset too small, or a run folder holding another run.
        RunStopped: `stop_after_tokens` was reached.
    """
    run_dir = Path(run_dir)
    dev = torch.device(device) if device is not None else loaded.device
    if (run_dir / RUN_CONFIG).exists():
        recorded = json.loads((run_dir / RUN_CONFIG).read_text())
        if recorded != json.loads(json.dumps(cfg.to_dict())):
            raise InvalidInputError(f"{run_dir} holds another training run; use a new run folder")
    run = _Run(loaded, cfg, run_dir, device=dev, dist=dist, progress=progress)
    if run.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / RUN_CONFIG, json.dumps(cfg.to_dict(), indent=2))
    resumed = run.restore()
    resumed_from = run.tokens if resumed else 0
    exhausted = False
    if not resumed:
        run.metrics.reset(0)
        run.evals.reset(0)
        if cfg.normalize_activations == "expected_average_only_in":
            run.norm_factors = run.stream.estimate_norm_factors(cfg.norm_sample_windows)
            if dist is not None:  # one factor for every rank: the main rank's estimate
                run.norm_factors = dict(dist.broadcast_object(run.norm_factors))
    if not run.completed:
        exhausted = run.loop(check, stop_after_tokens)
        if run.main and run.last_eval_tokens != run.tokens:
            run.evaluate()
        run.save(completed=True)
    return RunResult(saes=run.inference_saes(), evals=run.last_eval, tokens_seen=run.tokens, steps=run.step,
                     wall_time_s=run.elapsed(), norm_factors=run.norm_factors, resumed_from_tokens=resumed_from,
                     data_exhausted=exhausted, sparsity=[t.log_feature_density() for t in run.trainers])

"""The ranks of a `torchrun` training run that are not rank 0: they never open the studio (no database, no
catalogue, no curves or checkpoints) — rank 0's training job tells them what to train, and they step in lockstep
with it. Each rank writes only its own stream state into the run folder (`streams/rank{r}-step{step}`), so a
resumed torchrun run continues every rank's shard exactly.

    torchrun --standalone --nproc-per-node 2 -m mistudio.cli.main train --model M --hook H --n-tokens N ...

Rank 0 runs `mistudio train` as usual (the job, the catalog, checkpoints, curves); right before training it calls
`lead(dist, cfg, run_dir, dtype=...)`; every other rank calls `follow(dist)`, which waits for that
message, loads the same model on its own device and runs `training.run.run_training` with `dist` (it reads rank
0's checkpoint when the run resumes).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mistudio.training.distributed import DistributedContext
    from mistudio.training.run import RunConfig, RunResult


def lead(dist: DistributedContext, cfg: RunConfig, run_dir: str | Path, *, dtype: str | None = None) -> None:
    """Rank 0: tell the other ranks which run to train (its config, its folder, the model's dtype)."""
    dist.broadcast_object({"run_config": cfg.to_dict(), "run_dir": str(run_dir), "dtype": dtype})


def follow(dist: DistributedContext) -> RunResult:
    """A rank other than 0: receive rank 0's run, load the model on this rank's device and train in lockstep."""
    from mistudio.lm.loading import load_model
    from mistudio.training.run import RunConfig, run_training

    message: dict[str, Any] = dist.broadcast_object(None)
    cfg = RunConfig.from_dict(message["run_config"])
    loaded = load_model(cfg.model, device=str(dist.device), dtype=message.get("dtype"))
    return run_training(loaded, cfg, Path(message["run_dir"]), dist=dist, device=dist.device)

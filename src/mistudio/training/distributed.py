"""Data-parallel training under `torchrun` (torch.distributed): every rank holds the whole SAE, reads its own shard
of the windows, and averages gradients after each backward, so the ranks' weights stay identical.

Launch `mistudio train` under torchrun with the same arguments on every rank, e.g. two processes on one machine::

    torchrun --standalone --nproc-per-node 2 -m mistudio.cli.main train --model M --hook H --n-tokens N ...

(`--nproc-per-node` = the number of GPUs; on CPU-only machines the gloo backend runs the same code). torchrun
sets `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR` and `MASTER_PORT`; `init_distributed()` reads them. Rank 0
alone writes the database, the run folder and the checkpoints (`DistributedContext.is_main`); the other ranks only
compute. Step `s` on rank `r` uses rows `shard(B·world_size)` of the global batch, so with a loss that is a mean
over the batch, the averaged gradient is the one-process gradient of the whole batch.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as torch_dist

from mistudio.errors import InvalidInputError

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
_current: DistributedContext | None = None


@dataclass
class DistributedContext:
    """This process's place in a data-parallel group and the collectives training needs."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the database, the run folder and checkpoints."""
        return self.rank == 0

    def _on_backend(self, t: torch.Tensor) -> torch.Tensor:
        """`t` itself when the backend can reduce it where it lies, else a copy on the backend's device."""
        wants_cuda = self.backend == "nccl"
        return t if (t.device.type == "cuda") == wants_cuda else t.to(self.device if wants_cuda else "cpu")

    def _all_reduce_(self, t: torch.Tensor, op: torch_dist.ReduceOp.RedOpType) -> torch.Tensor:
        work = self._on_backend(t)
        torch_dist.all_reduce(work, op=op)
        if work is not t:
            t.copy_(work)
        return t

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """Sum `t` over the ranks, in place; returns `t`."""
        return self._all_reduce_(t, torch_dist.ReduceOp.SUM)

    def max_(self, t: torch.Tensor) -> torch.Tensor:
        """Element-wise maximum of `t` over the ranks, in place; returns `t`."""
        return self._all_reduce_(t, torch_dist.ReduceOp.MAX)

    def min_(self, t: torch.Tensor) -> torch.Tensor:
        """Element-wise minimum of `t` over the ranks, in place; returns `t`."""
        return self._all_reduce_(t, torch_dist.ReduceOp.MIN)

    def broadcast_(self, t: torch.Tensor, src: int = 0) -> torch.Tensor:
        """Overwrite `t` with rank `src`'s value, in place; returns `t`."""
        work = self._on_backend(t)
        torch_dist.broadcast(work, src=src)
        if work is not t:
            t.copy_(work)
        return t

    def broadcast_object(self, obj: Any = None, src: int = 0) -> Any:
        """Rank `src`'s picklable `obj` on every rank (what the others pass is ignored)."""
        box = [obj if self.rank == src else None]
        torch_dist.broadcast_object_list(box, src=src, device=self.device if self.backend == "nccl" else None)
        return box[0]

    def any_(self, flag: bool) -> bool:
        """Whether `flag` is true on any rank (e.g. rank 0 was asked to pause: every rank stops at the same
        step)."""
        return bool(self.max_(torch.tensor([1.0 if flag else 0.0], device=self.device)).item())

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Replace every parameter's `.grad` by its mean over the ranks (one all-reduce per dtype and device;
        parameters without a gradient are skipped — every rank must have the same ones)."""
        groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
        for p in params:
            if p.grad is not None:
                groups.setdefault((p.grad.dtype, p.grad.device), []).append(p.grad)
        for grads in groups.values():
            flat = torch.cat([g.reshape(-1) for g in grads])
            self.sum_(flat)
            flat.div_(self.world_size)
            offset = 0
            for g in grads:
                n = g.numel()
                g.copy_(flat[offset:offset + n].view_as(g))
                offset += n

    def shard(self, n: int) -> range:
        """This rank's contiguous block of `n` items (windows, rows of a global batch): `n // world_size` items;
        the last `n % world_size` are dropped so every rank runs the same number of steps."""
        per_rank = n // self.world_size
        return range(self.rank * per_rank, (self.rank + 1) * per_rank)

    def barrier(self) -> None:
        """Wait until every rank reaches this point."""
        if self.backend == "nccl":
            torch_dist.barrier(device_ids=[self.device.index or 0])
        else:
            torch_dist.barrier()

    def close(self) -> None:
        """Leave the process group."""
        global _current
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()
        if _current is self:
            _current = None


def current() -> DistributedContext | None:
    """The context `init_distributed()` set up in this process (None outside torchrun), so code running inside
    a job (rank 0's training job) finds the group without it being passed through the job runner."""
    return _current


def _env_int(name: str) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value)
    except ValueError:
        raise InvalidInputError(f"torchrun's {name} is {value!r}, not an integer; launch with torchrun") from None


def init_distributed(*, backend: str | None = None, timeout_s: float = 1800.0) -> DistributedContext | None:
    """Join the process group torchrun set up (its `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`/`PORT`), or
    None when this process was not started by torchrun with more than one rank. The backend is nccl when CUDA is
    available (each rank on `cuda:LOCAL_RANK`), else gloo on the CPU.

    Raises:
        InvalidInputError: torchrun's variables are incomplete or not integers, or CUDA has fewer devices than
            LOCAL_RANK needs.
    """
    if "WORLD_SIZE" not in os.environ:
        return None
    world_size = _env_int("WORLD_SIZE")
    if world_size <= 1:
        return None
    missing = [name for name in (*_ENV, "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise InvalidInputError(f"WORLD_SIZE is set but {', '.join(missing)} are not; launch with torchrun")
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK")
    chosen = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if chosen == "nccl":
        if local_rank >= torch.cuda.device_count():
            raise InvalidInputError(
                f"LOCAL_RANK {local_rank} needs {local_rank + 1} CUDA devices but {torch.cuda.device_count()} "
                "are visible; set --nproc-per-node to the number of GPUs")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    global _current
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(chosen, init_method="env://", rank=rank, world_size=world_size,
                                      timeout=datetime.timedelta(seconds=timeout_s))
    _current = DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, backend=chosen,
                                  device=device)
    return _current

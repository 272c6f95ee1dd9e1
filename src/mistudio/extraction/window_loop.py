"""The checkpointed loop over an extraction's windows that both passes (the dashboard pass and the Neuronpedia
pass) run: batches in order, a checkpoint every `checkpoint_every` batches, a checkpoint and a stop when the
`check` callback raises (cancel/pause), and progress with tokens/s and ETA."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

ProgressFn = Callable[[dict[str, Any]], None]


def is_oom(exc: BaseException) -> bool:
    """True for a (CUDA) out-of-memory error."""
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def halve_after_oom(exc: BaseException, idx: torch.Tensor) -> int:
    """After an exception while processing windows `idx`: the size of the first half to retry with when it is
    an out-of-memory error on more than one window (the CUDA cache emptied first); otherwise raise it again."""
    if not is_oom(exc) or len(idx) == 1:
        raise exc
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return len(idx) // 2


@dataclass
class LoopResult:
    """What a finished loop measured."""

    elapsed_s: float
    tokens_done: int

    @property
    def tokens_per_s(self) -> float:
        """Tokens per second over the loop."""
        return self.tokens_done / max(self.elapsed_s, 1e-9)


def run_window_loop(n: int, context_size: int, start: int, *, batch_size: Callable[[], int],
                    process: Callable[[torch.Tensor], None], save: Callable[[int], None],
                    stopped: Callable[[int], None], checkpoint_every: int,
                    check: Callable[[], None] | None = None, progress: ProgressFn | None = None,
                    stage: str | None = None) -> LoopResult:
    """Process windows `[start, n)` in batches of `batch_size()` (read before each batch: it may shrink after an
    out-of-memory error). `save(pos)` writes a checkpoint every `checkpoint_every` batches; when `check` raises,
    `save(pos)` and `stopped(pos)` run and the exception propagates."""
    pos, t0, tokens_done, batches = start, time.monotonic(), 0, 0
    while pos < n:
        if check is not None:
            try:
                check()
            except BaseException:
                save(pos)
                stopped(pos)
                raise
        idx = torch.arange(pos, min(pos + batch_size(), n))
        process(idx)
        pos += len(idx)
        batches += 1
        tokens_done += len(idx) * context_size
        if batches % checkpoint_every == 0 and pos < n:
            save(pos)
        if progress is not None:
            rate = tokens_done / max(time.monotonic() - t0, 1e-9)
            report: dict[str, Any] = {"windows_done": pos, "n_windows": n, "fraction": pos / n,
                                      "tokens_per_s": rate,
                                      "eta_s": (n - pos) * context_size / rate if rate else None,
                                      "batch_size": batch_size()}
            if stage is not None:
                report["stage"] = stage
            progress(report)
    return LoopResult(time.monotonic() - t0, tokens_done)

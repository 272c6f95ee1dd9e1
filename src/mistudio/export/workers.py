"""Worker processes of an export: how many to use, and how they are started."""

from __future__ import annotations

import os
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.context import BaseContext

# below this many features, starting worker processes costs more than it saves
PARALLEL_MIN_FEATURES = 2048


def default_workers(n_features: int, requested: int | None) -> int:
    """Worker processes for an export of `n_features`: `requested`, else one per core for large exports."""
    if requested is not None:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if n_features >= PARALLEL_MIN_FEATURES else 1


def pool_context() -> BaseContext:
    """Worker processes are forked where the OS can (no re-import of the caller's modules — spawning re-runs the
    main module, seconds per worker); they run only numpy, zlib and orjson code and touch no locks or database."""
    return get_context("fork" if "fork" in get_all_start_methods() else "spawn")

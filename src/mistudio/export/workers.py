"""Worker processes of an export: how many to use, and how they are started so they never outlive their parent.

Workers are started from a fork server (a fresh single-threaded interpreter started with exec, so it holds none of
the caller's file descriptors — no listening socket of an API server — and forking it never forks a threaded
process). Each worker then ties its life to the process that asked for it, twice over: on Linux the kernel kills it
(`PR_SET_PDEATHSIG`) when the fork server dies, which happens as soon as the parent is gone; everywhere, a
watchdog thread waits on the parent's sentinel pipe and ends the worker the moment that pipe closes — SIGKILL of
the parent included. Workers take the default SIGTERM action, so `kill` ends them too.

As with any spawned or fork-server worker, a Python script that runs a multi-process export must keep its
top-level code under `if __name__ == "__main__":` (the workers import the script's module; the `mistudio` command,
the server and notebooks need nothing).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
from multiprocessing.context import BaseContext

# below this many features, starting worker processes costs more than it saves
PARALLEL_MIN_FEATURES = 2048
# imported once by the fork server, so every worker forked from it starts with them loaded
_PRELOAD = ["mistudio.export.batches", "mistudio.export.archive.deterministic_zip",
            "mistudio.export.neuronpedia.activation_shards", "mistudio.dashboards.reader"]
_PR_SET_PDEATHSIG = 1


def default_workers(n_features: int, requested: int | None) -> int:
    """Worker processes for an export of `n_features`: `requested`, else one per core for large exports."""
    if requested is not None:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if n_features >= PARALLEL_MIN_FEATURES else 1


def die_with_parent() -> None:
    """End this (worker) process as soon as the process that started it is gone, however that one ended."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    if not parent.is_alive():  # it died before the watchdog could start
        os._exit(1)

    def watch() -> None:
        parent.join()  # returns when the parent's end of the sentinel pipe closes
        os._exit(1)

    threading.Thread(target=watch, name="mistudio-parent-watchdog", daemon=True).start()


if sys.platform != "win32":
    from multiprocessing.context import ForkServerContext as _BaseContext
    from multiprocessing.context import ForkServerProcess as _BaseProcess
else:  # no fork server: spawned processes (fresh interpreters, nothing inherited)
    from multiprocessing.context import SpawnContext as _BaseContext
    from multiprocessing.context import SpawnProcess as _BaseProcess


class _WorkerProcess(_BaseProcess):
    """A fork-server (or spawned) process that dies with its parent."""

    def run(self) -> None:
        die_with_parent()
        super().run()


class _WorkerContext(_BaseContext):
    Process = _WorkerProcess


_CONTEXT = _WorkerContext()
if sys.platform != "win32":
    _CONTEXT.set_forkserver_preload(_PRELOAD)


def warm_up() -> None:
    """Start the fork server now (it imports the worker modules in the background) so the first pool starts fast."""
    if sys.platform != "win32":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def pool_context() -> BaseContext:
    """The multiprocessing context of every export worker pool (see the module's docstring)."""
    return _CONTEXT

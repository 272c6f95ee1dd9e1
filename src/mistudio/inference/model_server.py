"""The studio's model server: models (and SAEs) loaded once per process and kept, memory-bounded.

`model_server(studio)` is the one server of a Studio in this process. `lease(model_ref)` yields the loaded model:
the first request loads it (every concurrent request for the same model waits for that one load), later ones get
it at once. A lease is exclusive and first come, first served per model: hooks are registered on the model's
modules while a request runs, so two requests never run one model at the same time, and none is overtaken.
Different models run in parallel. Whatever is held counts against a memory budget (`MISTUDIO_MODEL_MEMORY_GB`;
default 80% of the GPU's memory when models go to a GPU, else half the RAM): before and after each load the least
recently used models and SAEs no request holds are unloaded until the total fits. `resident(...)` keeps other
objects built from a model (a prepared SAE) under the same budget, built once. `listing()` is what
`GET /api/v1/models/loaded` shows: each entry's state (loading, ready, failed), bytes, age and users.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from mistudio.inference.schemas import LoadState, ResidentInfo, ResidentList

if TYPE_CHECKING:
    from mistudio.lm.loading import LoadedModel
    from mistudio.studio import Studio

T = TypeVar("T")
ModelLoader = Callable[..., "LoadedModel"]
StateCallback = Callable[[ResidentInfo], None]
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


class FifoLock:
    """A re-entrant lock granted in the order it was asked for."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self._owner: int | None = None
        self._depth = 0

    @property
    def waiting(self) -> int:
        """Threads queued for the lock."""
        return len(self._queue)

    def acquire(self) -> None:
        """Wait for the turn of this thread (at once when it already holds the lock)."""
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return
            ticket = object()
            self._queue.append(ticket)
            while self._owner is not None or self._queue[0] is not ticket:
                self._cond.wait()
            self._queue.popleft()
            self._owner, self._depth = me, 1

    def release(self) -> None:
        """Release one level; the next thread in the queue gets the lock when none is left."""
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("FifoLock released by a thread that does not hold it")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()


@dataclass(eq=False)
class _Entry:
    kind: str
    key: tuple[Any, ...]
    ref: str
    device: str
    dtype: str | None
    expected_bytes: int | None = None
    state: LoadState = "loading"
    value: Any = None
    name: str | None = None
    nbytes: int = 0
    error: BaseException | None = None
    started: float = field(default_factory=time.monotonic)
    load_s: float | None = None
    last_used: float = field(default_factory=time.monotonic)
    users: int = 0
    ready: threading.Event = field(default_factory=threading.Event)
    lock: FifoLock = field(default_factory=FifoLock)

    def info(self) -> ResidentInfo:
        now = time.monotonic()
        return ResidentInfo(
            kind="model" if self.kind == "model" else "sae", ref=self.ref, name=self.name, device=self.device,
            dtype=self.dtype, state=self.state, bytes=self.nbytes if self.state == "ready" else None,
            expected_bytes=self.expected_bytes, elapsed_s=round(self.load_s if self.load_s is not None
                                                                 else now - self.started, 3),
            in_use=self.users, idle_s=round(now - self.last_used, 3) if self.state == "ready" else None,
            error=f"{type(self.error).__name__}: {self.error}" if self.error is not None else None)


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes held by a module's parameters and buffers (each storage counted once)."""
    seen: set[int] = set()
    total = 0
    for tensor in (*module.parameters(), *module.buffers()):
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in seen:
            continue
        seen.add(ptr)
        total += tensor.untyped_storage().nbytes()
    return total


def default_budget_bytes(device: torch.device) -> int:
    """80% of the GPU's memory for a CUDA device, else half the RAM (16 GiB when the RAM is unknown)."""
    if device.type == "cuda" and torch.cuda.is_available():
        return int(0.8 * torch.cuda.get_device_properties(device.index or 0).total_memory)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        ram = 32 * 1024**3
    return int(0.5 * ram)


def _weight_files_bytes(ref: str) -> int | None:
    """Size of a local model folder's weight files (None for a hub id)."""
    path = Path(ref)
    if not path.is_dir():
        return None
    return sum(p.stat().st_size for p in path.iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file()) or None


class ModelServer:
    """Loads models once, keeps them under a memory budget, and hands them out one request at a time per model.

    `loader` is `lm.loading.load_model` unless given (tests pass a counting wrapper); `budget_bytes` None means
    the default for the default device.
    """

    def __init__(self, budget_bytes: int | None = None, *, loader: ModelLoader | None = None,
                 device: str | None = None) -> None:
        from mistudio.lm.loading import pick_device

        self._default_device = device
        self.budget_bytes = int(budget_bytes) if budget_bytes is not None else default_budget_bytes(
            pick_device(device))
        self._loader = loader
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, ...], _Entry] = {}
        self._sizes: dict[tuple[Any, ...], int] = {}  # bytes of earlier loads: the estimate for a reload

    # ----- keys ---------------------------------------------------------------------------------------------
    def model_key(self, model_ref: str, device: str | None = None,
                  dtype: str | torch.dtype | None = None) -> tuple[str, str, str]:
        """(normalised reference, device, dtype) naming one loaded model: a local folder by its resolved path,
        a hub or TransformerLens name by its hub id.

        Raises:
            InvalidInputError: an unknown device or dtype.
        """
        from mistudio.lm.loading import hf_id_for, pick_device, pick_dtype

        path = Path(model_ref).expanduser()
        ref = str(path.resolve()) if path.exists() else hf_id_for(str(model_ref))
        dev = pick_device(device if device is not None else self._default_device)
        return ref, str(dev), str(pick_dtype(dtype, dev)).removeprefix("torch.")

    # ----- models -------------------------------------------------------------------------------------------
    @contextmanager
    def lease(self, model_ref: str, *, device: str | None = None, dtype: str | torch.dtype | None = None,
              on_state: StateCallback | None = None) -> Iterator[LoadedModel]:
        """The loaded model, for the duration of the `with` block, exclusively (first come, first served).

        Loads it when it is not held (`on_state` hears when the load starts and ends); a request arriving while
        another loads it waits for that load. A failed load raises its error to every waiting request; the next
        request tries again.

        Raises:
            InvalidInputError | NotFoundError | HubError: the model cannot be loaded (see `lm.loading.load_model`).
        """
        ref, dev, dt = self.model_key(model_ref, device, dtype)
        entry, load = self._claim(("model", ref, dev, dt), "model", ref, dev, dt)
        try:
            if load:
                self._load_model(entry, on_state)
            self._wait_ready(entry)
            entry.lock.acquire()
            try:
                entry.last_used = time.monotonic()
                yield entry.value
            finally:
                entry.last_used = time.monotonic()
                entry.lock.release()
        finally:
            with self._lock:
                entry.users -= 1
            self._evict(0, keep=entry)  # over the budget while requests held several models

    def resident(self, key: tuple[Any, ...], build: Callable[[], T], *, ref: str, device: str,
                 nbytes: Callable[[T], int], kind: str = "sae") -> T:
        """An object built once by `build()` (a prepared SAE), kept under the memory budget until evicted.
        Concurrent callers with the same key wait for the one build; a failed build raises to all of them.

        Raises:
            whatever `build` raises.
        """
        entry, load = self._claim((kind, *key), kind, ref, device, None)
        try:
            if load:
                self._evict(self._sizes.get(entry.key, 0), keep=entry)
                try:
                    value = build()
                except BaseException as exc:
                    self._failed(entry, exc)
                    raise
                self._ready(entry, value, nbytes(value), None)
            self._wait_ready(entry)
            entry.last_used = time.monotonic()
            return entry.value
        finally:
            with self._lock:
                entry.users -= 1

    def _claim(self, key: tuple[Any, ...], kind: str, ref: str, device: str,
               dtype: str | None) -> tuple[_Entry, bool]:
        """The entry for `key` with one more user, and whether this caller must load it."""
        with self._lock:
            entry = self._entries.get(key)
            load = entry is None or entry.state == "failed"
            if load:
                entry = _Entry(kind, key, ref, device, dtype,
                               expected_bytes=_weight_files_bytes(ref) if kind == "model" else None)
                self._entries[key] = entry
            assert entry is not None
            entry.users += 1
            return entry, load

    def _load_model(self, entry: _Entry, on_state: StateCallback | None) -> None:
        if on_state is not None:
            on_state(entry.info())
        self._evict(self._sizes.get(entry.key) or entry.expected_bytes or 0, keep=entry)
        from mistudio.lm.loading import load_model

        loader = self._loader or load_model
        try:
            loaded = loader(entry.ref, device=entry.device, dtype=entry.dtype)
        except BaseException as exc:
            self._failed(entry, exc)
            if on_state is not None:
                on_state(entry.info())
            raise
        self._ready(entry, loaded, module_bytes(loaded.model), loaded.name)
        if on_state is not None:
            on_state(entry.info())

    def _ready(self, entry: _Entry, value: Any, nbytes: int, name: str | None) -> None:
        with self._lock:
            entry.value, entry.nbytes, entry.name = value, int(nbytes), name
            entry.state, entry.load_s = "ready", time.monotonic() - entry.started
            entry.last_used = time.monotonic()
            self._sizes[entry.key] = int(nbytes)
        entry.ready.set()
        self._evict(0, keep=entry)

    def _failed(self, entry: _Entry, exc: BaseException) -> None:
        with self._lock:
            entry.state, entry.error, entry.load_s = "failed", exc, time.monotonic() - entry.started
        entry.ready.set()

    @staticmethod
    def _wait_ready(entry: _Entry) -> None:
        entry.ready.wait()
        if entry.state == "failed" and entry.error is not None:
            raise entry.error

    # ----- memory -------------------------------------------------------------------------------------------
    @property
    def used_bytes(self) -> int:
        """Bytes held by everything loaded."""
        with self._lock:
            return sum(e.nbytes for e in self._entries.values() if e.state == "ready")

    def _evict(self, needed: int, *, keep: _Entry) -> None:
        """Unload the least recently used idle entries until `needed` more bytes fit in the budget."""
        dropped: list[_Entry] = []
        with self._lock:
            used = sum(e.nbytes for e in self._entries.values() if e.state == "ready")
            idle = sorted((e for e in self._entries.values()
                           if e is not keep and e.users == 0 and e.state in ("ready", "failed")),
                          key=lambda e: e.last_used)
            for entry in idle:
                if used + needed <= self.budget_bytes:
                    break
                if entry.state == "ready":
                    used -= entry.nbytes
                del self._entries[entry.key]
                dropped.append(entry)
        if dropped:
            self._release(dropped)

    def unload(self, model_ref: str, *, device: str | None = None, dtype: str | torch.dtype | None = None) -> bool:
        """Unload a model no request holds; False when it is not loaded or in use."""
        key = ("model", *self.model_key(model_ref, device, dtype))
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.users > 0:
                return False
            del self._entries[key]
        self._release([entry])
        return True

    def clear(self) -> None:
        """Unload everything no request holds."""
        with self._lock:
            dropped = [e for e in self._entries.values() if e.users == 0]
            for entry in dropped:
                del self._entries[entry.key]
        self._release(dropped)

    @staticmethod
    def _release(entries: list[_Entry]) -> None:
        on_cuda = any(e.device.startswith("cuda") for e in entries)
        for entry in entries:
            entry.value = None
        gc.collect()
        if on_cuda and torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ----- listing ------------------------------------------------------------------------------------------
    def listing(self) -> ResidentList:
        """Every model and SAE held or loading, most recently used first."""
        with self._lock:
            entries = sorted(self._entries.values(), key=lambda e: e.last_used, reverse=True)
            items = [e.info() for e in entries]
            used = sum(e.nbytes for e in entries if e.state == "ready")
        return ResidentList(items=items, budget_bytes=self.budget_bytes, used_bytes=used)

    def loaded(self) -> list[ResidentInfo]:
        """The models (not SAEs) held or loading."""
        return [item for item in self.listing().items if item.kind == "model"]


_SERVERS: dict[int, tuple[weakref.ref[Studio], ModelServer]] = {}
_SERVERS_LOCK = threading.Lock()


def model_server(studio: Studio) -> ModelServer:
    """The model server of `studio` in this process (created on first use, budget from its settings)."""
    with _SERVERS_LOCK:
        held = _SERVERS.get(id(studio))
        if held is not None and held[0]() is studio:
            return held[1]
        for key in [k for k, (ref, _) in _SERVERS.items() if ref() is None]:
            del _SERVERS[key]
        gb = studio.settings.model_memory_gb
        server = ModelServer(int(gb * 1024**3) if gb is not None else None, device=studio.settings.device)
        _SERVERS[id(studio)] = (weakref.ref(studio), server)
        return server

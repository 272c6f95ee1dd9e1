"""Job types: a name → handler table that the runner dispatches on."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mistudio.db.models import Job
    from mistudio.jobs.context import JobContext

JobHandler = Callable[["JobContext[Any]", dict[str, Any]], dict[str, Any] | None]
# (runner owner, session, job row): called inside the runner's transaction after the runner itself moved a job of
# the type to a new status outside its handler (interrupted, cancelled while not running, re-queued)
StatusHook = Callable[[Any, "Session", "Job"], None]

_HANDLERS: dict[str, JobHandler] = {}
_STATUS_HOOKS: dict[str, StatusHook] = {}


def register_job_type(name: str) -> Callable[[JobHandler], JobHandler]:
    """Decorator registering `fn(ctx, params) -> result dict` as the handler of job type `name`."""

    def decorate(fn: JobHandler) -> JobHandler:
        _HANDLERS[name] = fn
        return fn

    return decorate


def register_status_hook(name: str) -> Callable[[StatusHook], StatusHook]:
    """Decorator registering `fn(owner, session, job)`, which keeps job type `name`'s own rows (an export record, an
    extraction row) in step when the runner interrupts, cancels or re-queues one of its jobs outside the handler."""

    def decorate(fn: StatusHook) -> StatusHook:
        _STATUS_HOOKS[name] = fn
        return fn

    return decorate


def get_status_hook(name: str) -> StatusHook | None:
    """The status hook of job type `name`, if it has one."""
    load_builtin_job_types()
    return _STATUS_HOOKS.get(name)


def get_handler(name: str) -> JobHandler:
    """The handler for job type `name`, importing the built-in job modules on first use."""
    load_builtin_job_types()
    try:
        return _HANDLERS[name]
    except KeyError as exc:
        raise KeyError(f"unknown job type {name!r}; known: {sorted(_HANDLERS)}") from exc


def load_builtin_job_types() -> None:
    """Import the modules that register miStudio's job types (download, extraction, export)."""
    import importlib

    for module in ("mistudio.catalog.jobs", "mistudio.extraction.jobs", "mistudio.export.jobs",
                   "mistudio.export.hf_publish", "mistudio.training.jobs", "mistudio.autointerp.scoring",
                   "mistudio.autointerp.explain"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise

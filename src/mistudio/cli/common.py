"""Helpers shared by CLI commands: opening the studio, one-line errors, JSON output, job progress bars."""

from __future__ import annotations

import functools
import importlib
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mistudio.errors import MiStudioError
from mistudio.jobs.schemas import Job
from mistudio.studio import Studio

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def cli_errors(fn: F) -> F:
    """Turn MiStudioError (and a few common errors) into a one-line message and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MiStudioError as exc:
            err_console.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except (FileNotFoundError, PermissionError) as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


class _LazyModule:
    """Stands for a module and imports it on first attribute access."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


def lazy_module(name: str) -> Any:
    """Module `name`, imported when first used: commands that compute nothing (`--help`, listings) then start
    without loading torch."""
    return _LazyModule(name)


def human_bytes(n: int | None) -> str:
    """1536 → '1.5 KB' (empty when unknown)."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def open_studio() -> Studio:
    """The studio for the configured MISTUDIO_HOME / database."""
    return Studio.open()


def print_json(data: Any) -> None:
    """Print `data` as JSON on stdout (for scripts)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def run_job_with_progress(studio: Studio, job_id: str, quiet: bool = False) -> Job:
    """Run a created job inline with a Rich progress bar and return its final state.

    Raises:
        MiStudioError: the job did not complete.
    """
    if quiet:
        state = studio.runner.run_inline(job_id)
    else:
        with Progress(TextColumn("[bold]{task.fields[stage]}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                      TextColumn("{task.fields[message]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=err_console, transient=False) as progress:
            task = progress.add_task("job", total=1.0, stage="starting", message="")

            def listener(event: dict[str, Any]) -> None:
                progress.update(task, completed=event["progress"], stage=event.get("stage") or "",
                                message=event.get("message") or "")

            state = studio.runner.run_inline(job_id, listener=listener)
    if state.status != "completed":
        raise MiStudioError(f"job {job_id} {state.status}: {state.error_message or ''}".strip())
    return state

"""`mistudio jobs list|show|resume|cancel`: background jobs (downloads, extractions, exports) from the command
line, including those a killed server or command left interrupted."""

from __future__ import annotations

import typer
from rich.table import Table

from mistudio.cli.common import (
    cli_errors,
    console,
    err_console,
    open_studio,
    print_json,
    run_job_with_progress,
)
from mistudio.cli.ids import resolve_id, short_id
from mistudio.jobs.schemas import Job

jobs_app = typer.Typer(help="Background jobs: list, show, resume, cancel.", no_args_is_help=True)

_STATUS_STYLE = {"completed": "green", "failed": "red", "interrupted": "yellow", "paused": "yellow",
                 "cancelled": "dim", "running": "cyan", "pending": "cyan"}


def _status(job: Job) -> str:
    style = _STATUS_STYLE.get(job.status, "")
    return f"[{style}]{job.status}[/{style}]" if style else job.status


@jobs_app.command("list")
@cli_errors
def list_cmd(status: str = typer.Option(None, help="Only jobs in this status (running, interrupted, …)."),
             job_type: str = typer.Option(None, "--type", help="sae_download | extraction | export"),
             sae: str = typer.Option(None, "--sae", help="Only jobs of this SAE (id or prefix)."),
             limit: int = typer.Option(50, help="At most this many, newest first."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """List recent jobs, newest first (a job whose process died reads `interrupted`)."""
    studio = open_studio()
    sae_id = resolve_id(studio, "SAE", sae) if sae else None
    jobs = studio.runner.list(limit=limit, status=status, sae_id=sae_id, job_type=job_type)
    if as_json:
        print_json({"items": [j.json_view() for j in jobs]})
        return
    table = Table(title=f"jobs ({len(jobs)})")
    for col in ("id", "type", "status", "stage", "progress", "sae", "created", "message"):
        table.add_column(col, no_wrap=col in ("id", "sae", "status"))
    for j in jobs:
        note = j.error_message if j.status in ("failed", "interrupted", "cancelled") else ""
        table.add_row(short_id(j.id), j.type, _status(j), j.current_stage or "", f"{j.progress:.0%}",
                      short_id(j.sae_id) if j.sae_id else "", (j.created_at or "")[:19].replace("T", " "),
                      note or "")
    console.print(table)


@jobs_app.command("show")
@cli_errors
def show_cmd(job_id: str = typer.Argument(..., help="Job id or a unique prefix."),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Show one job: status, stages with timings, error, result."""
    studio = open_studio()
    job = studio.runner.get(resolve_id(studio, "job", job_id))
    if as_json:
        print_json(job.json_view())
        return
    console.print(f"[bold]{job.type}[/bold] job {job.id}: {_status(job)}  {job.progress:.0%}"
                  f"{'  (resumable)' if job.resumable and job.status != 'completed' else ''}", highlight=False)
    if job.sae_id:
        console.print(f"SAE {job.sae_id}", highlight=False)
    for st in job.stages:
        elapsed = f"  {st.elapsed_s:.1f} s" if st.elapsed_s is not None else ""
        console.print(f"  {st.status:<11} {st.name}{elapsed}", highlight=False)
    if job.error_message:
        console.print(f"[red]{job.error_message}[/red]", highlight=False)
    if job.status in ("interrupted", "paused"):
        console.print(f"`mistudio jobs resume {short_id(job.id)}` continues it; `mistudio jobs cancel "
                      f"{short_id(job.id)}` ends it", highlight=False)


@jobs_app.command("resume")
@cli_errors
def resume_cmd(job_id: str = typer.Argument(..., help="Job id or a unique prefix."),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Resume an interrupted, paused or failed job here, from its last checkpoint, and wait for it."""
    studio = open_studio()
    job_id = resolve_id(studio, "job", job_id)
    studio.runner.resume(job_id, enqueue=False)
    if not as_json:
        err_console.print(f"resuming job {short_id(job_id)}", highlight=False)
    state = run_job_with_progress(studio, job_id, quiet=as_json)
    if as_json:
        print_json(state.json_view())
    else:
        console.print(f"job {short_id(job_id)} {state.status}", highlight=False)


@jobs_app.command("cancel")
@cli_errors
def cancel_cmd(job_id: str = typer.Argument(..., help="Job id or a unique prefix."),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """End a job: a running one stops at its next check point, any other unfinished one at once."""
    studio = open_studio()
    state = studio.runner.cancel(resolve_id(studio, "job", job_id))
    if as_json:
        print_json(state.json_view())
    elif state.status == "running":
        console.print(f"job {short_id(state.id)}: cancel asked; it stops at its next check point", highlight=False)
    else:
        console.print(f"job {short_id(state.id)} {state.status}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.add_typer(jobs_app, name="jobs", help="Background jobs: list, show, resume, cancel.")

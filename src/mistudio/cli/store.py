"""`mistudio exports list|delete`, `mistudio gc` and `mistudio info`: what the store holds and cleaning it up."""

from __future__ import annotations

import typer
from rich.table import Table

from mistudio import __version__
from mistudio.cli.common import cli_errors, console, human_bytes, open_studio, print_json
from mistudio.cli.ids import resolve_id, short_id

exports_app = typer.Typer(help="Export archives: list and delete.", no_args_is_help=True)


@exports_app.command("list")
@cli_errors
def exports_list(sae: str = typer.Option(None, "--sae", help="Only exports of this SAE (id or prefix)."),
                 page: int = typer.Option(1), page_size: int = typer.Option(50),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """List exports, newest first."""
    from mistudio.export.service import list_exports

    studio = open_studio()
    sae_id = resolve_id(studio, "SAE", sae) if sae else None
    studio.runner.reconcile()
    with studio.sessions() as s:
        result = list_exports(s, sae_id, page, page_size)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    table = Table(title=f"exports ({result.total})")
    for col in ("id", "sae", "job", "status", "features", "size", "created", "archive"):
        table.add_column(col, no_wrap=col in ("id", "sae", "job", "status"))
    for e in result.items:
        table.add_row(short_id(e.id), short_id(e.sae_id), short_id(e.job_id) if e.job_id else "", e.status,
                      str(e.feature_count or ""), human_bytes(e.file_size_bytes),
                      (e.created_at or "")[:19].replace("T", " "), e.output_path or "")
    console.print(table)


@exports_app.command("delete")
@cli_errors
def exports_delete(export_id: str = typer.Argument(..., help="Export id or a unique prefix."),
                   yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
                   as_json: bool = typer.Option(False, "--json")) -> None:
    """Delete an export: its archive, work folder and record."""
    from mistudio.export.service import delete_export

    studio = open_studio()
    export_id = resolve_id(studio, "export", export_id)
    if not yes and not as_json and not typer.confirm(f"Delete export {export_id} and its archive?"):
        raise typer.Exit(1)
    delete_export(studio, export_id)
    if as_json:
        print_json({"deleted": export_id})
    else:
        console.print(f"deleted export {export_id}", highlight=False)


@cli_errors
def gc(dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed."),
       min_age_hours: float = typer.Option(1.0, help="Keep unclaimed temporary folders younger than this."),
       as_json: bool = typer.Option(False, "--json")) -> None:
    """Remove what nothing refers to: work folders of finished or vanished jobs (never of a job that runs or can
    resume), archives without a record, feature stores of deleted SAEs, stale temporary folders."""
    from mistudio.export.storage import collect_garbage

    report = collect_garbage(open_studio(), dry_run=dry_run, min_age_s=min_age_hours * 3600)
    if as_json:
        print_json(report.model_dump())
        return
    for item in report.removed:
        console.print(f"{'would remove' if dry_run else 'removed'} {item.path} ({human_bytes(item.bytes)}): "
                      f"{item.reason}", highlight=False)
    verb = "would free" if dry_run else "freed"
    console.print(f"{len(report.removed)} item(s); {verb} {human_bytes(report.freed_bytes)}", highlight=False)


@cli_errors
def info(as_json: bool = typer.Option(False, "--json")) -> None:
    """Where the studio keeps its data, and the disk each SAE takes."""
    from sqlalchemy.engine import make_url

    from mistudio.export.storage import disk_usage

    studio = open_studio()
    usage = disk_usage(studio)
    database = make_url(studio.settings.resolved_database_url).render_as_string(hide_password=True)
    if as_json:
        print_json({"version": __version__, "database": database, **usage.model_dump()})
        return
    console.print(f"miStudio {__version__}\nhome: {usage.home}\ndatabase: {database}", highlight=False)
    table = Table(title=f"disk usage: {human_bytes(usage.total_bytes)} in all")
    for col in ("sae", "name", "weights", "features", "exports", "work", "total"):
        table.add_column(col, no_wrap=col == "sae", justify="left" if col in ("sae", "name") else "right")
    for u in usage.saes:
        table.add_row(short_id(u.sae_id), u.name, human_bytes(u.weights_bytes), human_bytes(u.features_bytes),
                      human_bytes(u.exports_bytes), human_bytes(u.work_bytes), human_bytes(u.total_bytes))
    console.print(table)
    if usage.orphaned_bytes:
        console.print(f"{human_bytes(usage.orphaned_bytes)} is orphaned; `mistudio gc` removes it", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.add_typer(exports_app, name="exports", help="Export archives: list and delete.")
    app.command("gc")(gc)
    app.command("info")(info)

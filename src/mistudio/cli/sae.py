"""`mistudio sae ...`: the SAE catalog from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mistudio.catalog import service
from mistudio.catalog.query import SAEQuery, list_saes
from mistudio.catalog.schemas import SAE
from mistudio.cli.common import cli_errors, console, open_studio, print_json, run_job_with_progress
from mistudio.studio import Studio

app = typer.Typer(no_args_is_help=True)


def _human_bytes(n: int | None) -> str:
    """1536 → '1.5 KB' (empty when unknown)."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def _dims(item: dict[str, Any]) -> str:
    return f"{item.get('d_in') or '?'} → {item.get('d_sae') or '?'}"


@app.command("list")
@cli_errors
def list_cmd(model: str = typer.Option(None, help="Only SAEs of this model."),
             layer: int = typer.Option(None, help="Only SAEs of this layer."),
             source: str = typer.Option(None, help="trained | huggingface | gemma_scope | upload"),
             search: str = typer.Option(None, help="Text to find in name, repo, model or hook."),
             sort: str = typer.Option("created_at", help="Sort column."),
             page: int = typer.Option(1), page_size: int = typer.Option(50),
             as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """List catalogued SAEs."""
    studio = open_studio()
    with studio.sessions() as s:
        result = list_saes(s, SAEQuery(model=model, layer=layer, source=source, search=search, sort=sort,
                                       page=page, page_size=page_size)).model_dump()
    if as_json:
        print_json(result)
        return
    table = Table(title=f"SAEs ({result['total']})")
    for col in ("id", "source", "name", "model", "layer", "hook", "dims", "arch", "status"):
        table.add_column(col)
    for it in result["items"]:
        table.add_row(it["id"][:8], it["source"], it["name"], it["model_name"] or "", str(it["layer"] or ""),
                      it["hook_name"] or "", _dims(it), it["architecture"] or "", it["status"])
    console.print(table)


def _resolve_id(studio: Studio, sae_id: str) -> str:
    """Accept a full id or a unique prefix (as `sae list` prints).

    Raises:
        NotFoundError: no SAE id starts with `sae_id`.
        InvalidInputError: several SAE ids start with `sae_id`.
    """
    from sqlalchemy import select

    from mistudio.db.models import SAERecord
    from mistudio.errors import InvalidInputError, NotFoundError

    with studio.sessions() as s:
        if s.get(SAERecord, sae_id) is not None:
            return sae_id
        matches = list(s.scalars(select(SAERecord.id).where(SAERecord.id.like(f"{sae_id}%")).limit(2)))
    if not matches:
        raise NotFoundError(f"SAE {sae_id} not found; `mistudio sae list` shows the catalog")
    if len(matches) > 1:
        raise InvalidInputError(f"SAE id prefix {sae_id!r} is ambiguous; give more characters")
    return matches[0]


@app.command("show")
@cli_errors
def show_cmd(sae_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show one SAE with its configuration."""
    studio = open_studio()
    sae_id = _resolve_id(studio, sae_id)
    with studio.sessions() as s:
        data: dict[str, Any] = SAE.from_record(service.get_record(s, sae_id)).model_dump()
    if data["status"] == "ready":
        data["config"] = service.sae_config(studio, sae_id).model_dump()
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        if key not in ("metadata", "config"):
            console.print(f"[bold]{key}[/bold]: {value}", highlight=False)
    if "config" in data:
        console.print_json(data=data["config"]["config"])


@app.command("browse")
@cli_errors
def browse_cmd(repo_id: str, revision: str = typer.Option(None), token: str = typer.Option(None, envvar="HF_TOKEN"),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """List the SAEs a HuggingFace repository holds, before downloading anything."""
    from mistudio.hub.browse import browse_repo

    listing = browse_repo(repo_id, revision=revision, token=token)
    data = listing.model_dump(mode="json")
    if as_json:
        print_json(data)
        return
    table = Table(title=f"{repo_id} @ {data['commit_sha'][:10]}")
    for col in ("path", "format", "dims", "arch", "size", "fp32 memory"):
        table.add_column(col)
    for it in data.get("saes", []):
        mem = (it.get("memory") or {}).get("bytes_fp32")
        table.add_row(it["path"], it["format"], _dims(it), it.get("architecture") or "",
                      _human_bytes(it.get("download_bytes")), _human_bytes(mem))
    console.print(table)


@app.command("download")
@cli_errors
def download_cmd(repo_id: str, path: str = typer.Option(None, "--path", help="Folder of the SAE in the repo."),
                 layer: int = typer.Option(None, help="Gemma Scope layer."),
                 width: str = typer.Option(None, help="Gemma Scope width, e.g. 16k."),
                 l0: int = typer.Option(None, help="Gemma Scope average L0."),
                 revision: str = typer.Option(None), token: str = typer.Option(None, envvar="HF_TOKEN"),
                 name: str = typer.Option(None), as_json: bool = typer.Option(False, "--json")) -> None:
    """Download an SAE from the HuggingFace Hub into the catalog (resumes an interrupted download)."""
    studio = open_studio()
    ids = service.start_hf_download(studio, repo_id, path, layer=layer, width=width, l0=l0, revision=revision,
                                    token=token, name=name)
    run_job_with_progress(studio, ids.job_id, quiet=as_json)
    with studio.sessions() as s:
        data = SAE.from_record(service.get_record(s, ids.sae_id)).model_dump()
    if as_json:
        print_json(data)
    else:
        console.print(f"downloaded [bold]{data['name']}[/bold] as SAE {data['id']} ({_dims(data)}, "
                      f"{data['architecture']}, revision {data['revision']})", highlight=False)


@app.command("import")
@cli_errors
def import_cmd(path: Path, name: str = typer.Option(None),
               training: str = typer.Option(None, help="Register as a trained SAE linked to this training record."),
               model: str = typer.Option(None, help="Model the SAE reads, when its files do not say (Gemma Scope)."),
               hook: str = typer.Option(None, help="TransformerLens hook it reads, e.g. blocks.12.hook_resid_post."),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """Import a local SAE folder or .zip/.tar archive."""
    studio = open_studio()
    data = service.import_local(studio, path, name=name, source="trained" if training else "upload",
                                training_id=training, model_name=model, hook_name=hook).model_dump()
    if as_json:
        print_json(data)
    else:
        console.print(f"imported [bold]{data['name']}[/bold] as SAE {data['id']} ({data['format']}, {_dims(data)})",
                      highlight=False)


@app.command("convert")
@cli_errors
def convert_cmd(sae_id: str, to: str = typer.Option(..., "--to", help="saelens | mistudio"),
                out: Path = typer.Option(..., "--out", help="Output folder (must not exist).")) -> None:
    """Write an SAE in SAELens or miStudio-native format."""
    studio = open_studio()
    result = service.convert_catalogued(studio, _resolve_id(studio, sae_id), to, out)
    console.print(f"wrote {result.format} SAE to {result.path}", highlight=False)


@app.command("delete")
@cli_errors
def delete_cmd(sae_id: str, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")) -> None:
    """Delete an SAE's files and catalog rows."""
    studio = open_studio()
    sae_id = _resolve_id(studio, sae_id)
    if not yes and not typer.confirm(f"Delete SAE {sae_id} and its files?"):
        raise typer.Exit(1)
    service.delete_sae(studio, sae_id)
    console.print(f"deleted SAE {sae_id}")


@app.command("link")
@cli_errors
def link_cmd(sae_id: str, training_id: str) -> None:
    """Link an SAE to a training record."""
    studio = open_studio()
    with studio.sessions() as s, s.begin():
        service.link_training(s, _resolve_id(studio, sae_id), training_id)
    console.print(f"linked SAE {sae_id} to training {training_id}")


@app.command("stats")
@cli_errors
def stats_cmd(sae_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Weight statistics of an SAE."""
    studio = open_studio()
    stats = service.sae_statistics(studio, _resolve_id(studio, sae_id)).model_dump(exclude_unset=True)
    if as_json:
        print_json(stats)
    else:
        console.print_json(data=stats)


training_app = typer.Typer(no_args_is_help=True, help="Training records (how an SAE was trained).")


@training_app.command("add")
@cli_errors
def training_add(name: str = typer.Option(...), model: str = typer.Option(None), hook: str = typer.Option(None),
                 dataset: str = typer.Option(None),
                 hyperparameters: str = typer.Option("{}", help="JSON object of hyper-parameters."),
                 metrics: str = typer.Option("{}", help="JSON object of metrics (l0, explained variance, ...)."),
                 tokens: int = typer.Option(None, help="Number of training tokens."),
                 as_json: bool = typer.Option(False, "--json")) -> None:
    """Record a training run so SAEs can be linked to it."""
    import json

    from mistudio.errors import InvalidInputError

    try:
        hp, mt = json.loads(hyperparameters), json.loads(metrics)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--hyperparameters/--metrics must be JSON objects ({exc})") from None
    studio = open_studio()
    with studio.sessions() as s, s.begin():
        training = service.create_training(s, name=name, model_name=model, hook_name=hook, dataset=dataset,
                                           hyperparameters=hp, metrics=mt, n_training_tokens=tokens)
    if as_json:
        print_json(training.model_dump())
    else:
        console.print(f"training record {training.id}", highlight=False)


@training_app.command("list")
@cli_errors
def training_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List training records."""
    studio = open_studio()
    with studio.sessions() as s:
        items = service.list_trainings(s)
    if as_json:
        print_json({"items": [t.model_dump() for t in items]})
        return
    for t in items:
        console.print(f"{t.id}  {t.name}  {t.model_name or ''}  {t.hook_name or ''}", highlight=False)

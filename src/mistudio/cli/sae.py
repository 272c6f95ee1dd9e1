"""`mistudio sae ...`: the SAE catalog from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from mistudio.catalog.query import SAEQuery, extraction_counts, list_saes
from mistudio.catalog.schemas import SAE
from mistudio.cli.common import (
    cli_errors,
    console,
    human_bytes,
    lazy_module,
    open_studio,
    print_json,
    run_job_with_progress,
)
from mistudio.cli.ids import resolve_sae
from mistudio.studio import Studio

if TYPE_CHECKING:
    from mistudio.catalog import service
else:  # imported on first use: the catalog service loads torch, which listing and `--help` never need
    service = lazy_module("mistudio.catalog.service")

app = typer.Typer(no_args_is_help=True)


def _human_bytes(n: int | None) -> str:
    """1536 → '1.5 KB' (empty when unknown)."""
    return human_bytes(n)


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
        table.add_column(col, no_wrap=col == "id")
    for it in result["items"]:
        table.add_row(it["id"][:8], it["source"], it["name"], it["model_name"] or "", str(it["layer"] or ""),
                      it["hook_name"] or "", _dims(it), it["architecture"] or "", it["status"])
    console.print(table)


def _resolve_id(studio: Studio, sae_id: str) -> str:
    """A full SAE id or a unique prefix of one, as `sae list` prints (see `cli.ids.resolve_id`).

    Raises:
        NotFoundError: no SAE id starts with `sae_id`.
        AmbiguousIdError: several SAE ids start with `sae_id`.
    """
    return resolve_sae(studio, sae_id)


@app.command("show")
@cli_errors
def show_cmd(sae_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Show one SAE with its configuration."""
    studio = open_studio()
    sae_id = _resolve_id(studio, sae_id)
    with studio.sessions() as s:
        counts = extraction_counts(s, [sae_id]).get(sae_id, (0, None))
        data: dict[str, Any] = SAE.from_record(service.get_record(s, sae_id), *counts).model_dump()
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


def _number(value: float | None) -> str:
    """10.0 → '10', 0.999 → '0.999' (empty when unknown)."""
    return "" if value is None else f"{value:g}"


@app.command("browse")
@cli_errors
def browse_cmd(source: str = typer.Argument(..., metavar="RELEASE_OR_REPO",
                                            help="A SAELens release name (`mistudio sae releases`) or a repo id."),
               revision: str = typer.Option(None), token: str = typer.Option(None, envvar="HF_TOKEN"),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """List the SAEs of a SAELens release or a HuggingFace repository, before downloading anything."""
    if "/" not in source:
        _browse_release(source, revision, token, as_json)
        return
    from mistudio.hub.browse import browse_repo
    from mistudio.hub.releases import registry_matches

    listing = browse_repo(source, revision=revision, token=token)
    matches = registry_matches(listing)
    data = listing.model_dump(mode="json")
    if as_json:
        data["registry"] = {path: m.model_dump(mode="json") for path, m in matches.items()}
        print_json(data)
        return
    table = Table(title=f"{source} @ {data['commit_sha'][:10]}")
    for col in ("path", "format", "dims", "arch", "size", "fp32 memory"):
        table.add_column(col)
    for it in data.get("saes", []):
        mem = (it.get("memory") or {}).get("bytes_fp32")
        table.add_row(it["path"], it["format"], _dims(it), it.get("architecture") or "",
                      _human_bytes(it.get("download_bytes")), _human_bytes(mem))
    console.print(table)
    if matches:
        known = Table(title="listed in SAELens releases (download with `mistudio sae download RELEASE --sae-id ID`)")
        for col in ("path", "release", "sae id", "L0", "neuronpedia"):
            known.add_column(col)
        for path, match in sorted(matches.items()):
            known.add_row(path, match.release, match.sae_id, _number(match.l0), match.neuronpedia or "")
        console.print(known)


def _browse_release(name: str, revision: str | None, token: str | None, as_json: bool) -> None:
    from mistudio.hub.releases import browse_release

    listing = browse_release(name, revision=revision, token=token)
    if as_json:
        print_json(listing.model_dump(mode="json"))
        return
    table = Table(title=f"{listing.name}: {listing.repo_id} @ {listing.commit_sha[:10]} ({listing.model}, "
                        f"{listing.family})")
    with_path = any(sae.id != sae.path for sae in listing.saes)  # ids are often the paths themselves
    for col in ("sae id",) + (("path",) if with_path else ()) + ("L0", "var. expl.", "neuronpedia", "dims", "arch",
                                                                 "size"):
        table.add_column(col, no_wrap=col in ("sae id", "neuronpedia"))
    for sae in listing.saes:
        hub = sae.hub.model_dump() if sae.hub is not None else None
        table.add_row(sae.id, *((sae.path,) if with_path else ()), _number(sae.l0), _number(sae.variance_explained),
                      sae.neuronpedia or "", _dims(hub) if hub else "missing",
                      (hub or {}).get("architecture") or "", _human_bytes((hub or {}).get("download_bytes")))
    console.print(table)
    if listing.config_overrides:
        console.print(f"config overrides applied on download: {listing.config_overrides}", highlight=False)


@app.command("releases")
@cli_errors
def releases_cmd(query: str = typer.Argument(None, help="Words to find in release names, repos, models, families."),
                 as_json: bool = typer.Option(False, "--json")) -> None:
    """List or search the SAELens releases (the registry of pretrained SAEs)."""
    from mistudio.saes.registry import get_registry

    registry = get_registry()
    found = registry.search(query)
    if as_json:
        print_json({"items": [r.model_dump(mode="json") for r in found], "total": len(found),
                    "sae_lens_version": registry.sae_lens_version})
        return
    table = Table(title=f"SAELens releases ({len(found)}, sae-lens {registry.sae_lens_version})")
    for col in ("release", "repo", "model", "family", "SAEs"):
        table.add_column(col)
    for r in found:
        table.add_row(r.name, r.repo_id, r.model, r.family, str(r.n_saes))
    console.print(table)


@app.command("download")
@cli_errors
def download_cmd(source: str = typer.Argument(..., metavar="RELEASE_OR_REPO",
                                              help="A SAELens release name (with --sae-id) or a repo id."),
                 sae_id: str = typer.Option(None, "--sae-id", help="SAE id inside the release."),
                 path: str = typer.Option(None, "--path", help="Folder of the SAE in the repo."),
                 layer: int = typer.Option(None, help="Gemma Scope layer."),
                 width: str = typer.Option(None, help="Gemma Scope width, e.g. 16k."),
                 l0: int = typer.Option(None, help="Gemma Scope average L0."),
                 revision: str = typer.Option(None), token: str = typer.Option(None, envvar="HF_TOKEN"),
                 name: str = typer.Option(None), as_json: bool = typer.Option(False, "--json")) -> None:
    """Download an SAE from the HuggingFace Hub into the catalog (resumes an interrupted download): a SAELens
    release's SAE (`RELEASE --sae-id ID`, with the registry's config overrides and ids) or a repo's
    (`REPO --path P`)."""
    from mistudio.errors import InvalidInputError

    studio = open_studio()
    if "/" not in source:
        if sae_id is None:
            raise InvalidInputError(f"{source!r} is not a repo id; to download from release {source!r} give "
                                    f"--sae-id (`mistudio sae browse {source}` lists the ids)")
        if path or layer is not None or width or l0 is not None:
            raise InvalidInputError("--path/--layer/--width/--l0 are for repo downloads; a release SAE is named "
                                    "by --sae-id")
        ids = service.start_release_download(studio, source, sae_id, revision=revision, token=token, name=name)
    else:
        if sae_id is not None:
            raise InvalidInputError(f"--sae-id names an SAE of a SAELens release, and {source!r} is a repo id; "
                                    "use --path for a repo (or give the release name)")
        ids = service.start_hf_download(studio, source, path, layer=layer, width=width, l0=l0,
                                        revision=revision, token=token, name=name)
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
    elif data.get("duplicate_of"):
        console.print(f"already in the catalog as SAE {data['id']} ([bold]{data['name']}[/bold], same weights and "
                      "config); nothing imported", highlight=False)
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

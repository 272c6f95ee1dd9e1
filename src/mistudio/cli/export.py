"""CLI commands: `mistudio export neuronpedia|validate|upload-neuronpedia|estimate` and `mistudio labels import`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from mistudio.catalog.feature_spec import parse_feature_spec, single_range
from mistudio.cli.common import cli_errors, err_console, open_studio, print_json, run_job_with_progress
from mistudio.cli.ids import resolve_sae, short_id
from mistudio.fsutil import link_or_copy

if TYPE_CHECKING:
    from mistudio.export.config import ExportConfig

export_app = typer.Typer(help="Export SAEs and feature dashboards to Neuronpedia and SAELens.", no_args_is_help=True)
labels_app = typer.Typer(help="Import feature explanations / labels.", no_args_is_help=True)


def _config(preset: str | None, config_file: Path | None, **options: Any) -> ExportConfig:
    """The export config of a preset, overridden by a JSON config file, overridden by the options given.

    Raises:
        InvalidInputError: an unknown preset or an invalid setting.
    """
    from mistudio.export.config import make_config

    data = json.loads(config_file.read_text()) if config_file else {}
    return make_config(preset, **{**data, **{k: v for k, v in options.items() if v is not None}})


def _selection(features: str | None, labeled: bool, label_text: str | None, min_freq: float | None,
               max_freq: float | None, min_max: float | None) -> dict[str, Any] | None:
    sel: dict[str, Any] = {}
    if features:
        bounds = single_range(features)
        if bounds is not None:
            sel = {"mode": "range", "start": bounds[0], "stop": bounds[1]}
        else:
            sel = {"mode": "list", "indices": parse_feature_spec(features, sys.maxsize)}
    elif labeled:
        sel = {"mode": "labeled"}
    elif label_text:
        sel = {"mode": "label_text", "text": label_text}
    for key, value in (("min_frequency", min_freq), ("max_frequency", max_freq), ("min_max_activation", min_max)):
        if value is not None:
            sel[key] = value
    if sel and "mode" not in sel:
        sel["mode"] = "max_activation" if min_max is not None else "frequency"
    return sel or None


@export_app.command("neuronpedia")
@cli_errors
def neuronpedia(
    sae_id: str = typer.Argument(..., help="SAE id from `mistudio sae list`."),
    out: Path = typer.Option(..., "--out", help="Where to write the archive (FILE.zip)."),
    preset: str = typer.Option(None, help="full | neuronpedia | saelens | labeled | saedashboard | rich | minimal"),
    fmt: str = typer.Option(None, "--format", help="neuronpedia | saelens | both"),
    features: str = typer.Option(None, help="Features: a range `0-999` (both ends included), a list `1,5,9`, or a mix."),
    labeled: bool = typer.Option(False, "--labeled", help="Only labeled features."),
    label_text: str = typer.Option(None, help="Features whose label/category contains this text."),
    min_freq: float = typer.Option(None, help="Minimum activation frequency."),
    max_freq: float = typer.Option(None, help="Maximum activation frequency."),
    min_max_activation: float = typer.Option(None, help="Minimum max activation."),
    examples: int = typer.Option(None, help="Top examples per feature (20–100)."),
    interval_examples: bool = typer.Option(None, "--interval-examples/--no-interval-examples",
                                           help="Also export the interval (quantile-band) examples."),
    logit_k: int = typer.Option(None, help="Top logits per side (10–50)."),
    bins: int = typer.Option(None, help="Histogram bins (20–100)."),
    compression: str = typer.Option(None, help="none | gzip"),
    saedashboard_batches: bool = typer.Option(None, "--saedashboard-batches/--no-saedashboard-batches",
                                              help="Also write SAEDashboard's neuronpedia/batch-{k}.json files."),
    model_id: str = typer.Option(None, help="The model's id: Neuronpedia id (gemma-2-2b) or HuggingFace Hub id "
                                 "(google/gemma-2-2b). Required when the model is a local folder."),
    dataset_id: str = typer.Option(None, help="HuggingFace dataset id of the texts. Required when the extraction "
                                   "(or the SAE's training) read a local file."),
    np_logit_lens: str = typer.Option(None, help="Logit lens of the Neuronpedia outputs: neuronpedia (decoder × the "
                                      "model's raw unembedding, as Neuronpedia computes it; default) | folded "
                                      "(miStudio's dashboard variant, final-norm gain folded in)."),
    source_set: str = typer.Option(None, help="Neuronpedia source-set name."),
    hf_repo_id: str = typer.Option(None, help="HuggingFace repo for the SAELens folder."),
    base_export: Path = typer.Option(None, help="Incremental: previous export to merge with."),
    config_file: Path = typer.Option(None, "--config", help="JSON file with an export config."),
    resume: bool = typer.Option(True, "--resume/--no-resume",
                                help="Continue an interrupted or paused export of the same SAE and settings "
                                     "(default), or start a new one."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Export an SAE's dashboards (+ SAELens weights) into a validated, deterministic archive. Run again after an
    interruption, it continues where it stopped."""
    from mistudio.export.service import find_resumable_export, finished_batches, start_export

    cfg = _config(preset, config_file, format=fmt, n_examples=examples, interval_examples=interval_examples,
                  logit_k=logit_k, n_bins=bins,
                  compression=compression, saedashboard_batches=saedashboard_batches, model_id=model_id,
                  dataset_id=dataset_id, np_logit_lens=np_logit_lens, source_set=source_set, hf_repo_id=hf_repo_id,
                  base_export=str(base_export) if base_export else None,
                  selection=_selection(features, labeled, label_text, min_freq, max_freq, min_max_activation))
    studio = open_studio()
    sae_id = resolve_sae(studio, sae_id)
    job_id = find_resumable_export(studio, sae_id, cfg) if resume else None
    resumed = job_id is not None
    if job_id is not None:
        previous = studio.runner.get(job_id).status
        err_console.print(f"resuming {previous} export job {short_id(job_id)} ({finished_batches(studio, job_id)} "
                          "batch(es) already written); --no-resume starts over", highlight=False)
        studio.runner.resume(job_id, enqueue=False)
    else:
        job_id = start_export(studio, sae_id, cfg).job_id
    state = run_job_with_progress(studio, job_id, quiet=as_json)
    result = state.result or {}
    link_or_copy(studio.settings.absolute(result["output_path"]), out)  # a hard link: no second copy on disk
    result = {**result, "archive": str(out), "job_id": job_id, "resumed": resumed}
    if as_json:
        print_json(result)
    else:
        err_console.print(f"[green]exported[/green] {result['feature_count']} features → {out} "
                          f"({result['file_size_bytes'] / 1e6:.1f} MB); Neuronpedia id "
                          f"{result['neuronpedia']['neuronpedia_id']}")


@export_app.command("estimate")
@cli_errors
def estimate(sae_id: str, preset: str = typer.Option(None), config_file: Path = typer.Option(None, "--config"),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Estimate an export's size, time and missing data."""
    from mistudio.export.service import estimate as do_estimate
    from mistudio.export.service import gather_inputs

    cfg = _config(preset, config_file)
    studio = open_studio()
    result = do_estimate(gather_inputs(studio, resolve_sae(studio, sae_id), load_weights=False), cfg)
    if as_json:
        print_json(result.model_dump())
    else:
        typer.echo(f"{result.n_features} features, ~{result.size_bytes / 1e6:.1f} MB, ~{result.seconds} s; "
                   f"missing: {', '.join(result.missing) or 'nothing'}")


@export_app.command("validate")
@cli_errors
def validate(path: Path = typer.Argument(..., help="Export zip or folder."),
             fix: bool = typer.Option(False, "--fix", help="Repair the fixable problems in place."),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Check an export against its JSON Schema and Neuronpedia's real format."""
    from mistudio.export.validate.autofix import autofix_export
    from mistudio.export.validate.validator import validate_export

    if fix:
        result = autofix_export(path)
        ok = result["after"]["ok"]
        if as_json:
            print_json(result)
        else:
            typer.echo(f"fixed {len(result['fixed_files'])} file(s); {result['after']['n_errors']} error(s) remain")
    else:
        report = validate_export(path)
        ok = report.ok
        if as_json:
            print_json(report.to_dict())
        else:
            typer.echo(report.to_text())
    if not ok:
        raise typer.Exit(1)


@export_app.command("upload-neuronpedia")
@cli_errors
def upload_neuronpedia(export: Path = typer.Argument(..., help="Export zip or folder."),
                       api_key: str = typer.Option(..., "--api-key", envvar="NEURONPEDIA_API_KEY"),
                       host: str = typer.Option("https://www.neuronpedia.org", "--host"),
                       as_json: bool = typer.Option(False, "--json")) -> None:
    """Upload an export through Neuronpedia's public API (resumable: re-run after a failure). The API takes
    density, logits, explanations and examples; histograms, neuron alignment, correlations and the decoder cosine
    top-k reach Neuronpedia only through a bulk import (see the archive's README)."""
    from mistudio.export.neuronpedia.upload import upload_export

    def progress(done: int, total: int) -> None:
        if not as_json:
            err_console.print(f"batch {done}/{total} uploaded")

    result = upload_export(export, api_key, open_studio().sessions, host=host, progress=progress)
    if as_json:
        print_json(result)
    else:
        typer.echo(f"uploaded {result['n_features']} features → {result['url']}")
        typer.echo(f"not sent (the API has no field for them; use the bulk import): {', '.join(result['not_sent'])}")


@labels_app.command("import")
@cli_errors
def labels_import(sae_id: str, file: Path = typer.Argument(..., help="CSV or JSON with feature_index, description."),
                  as_json: bool = typer.Option(False, "--json")) -> None:
    """Import explanations and labels for an SAE's features."""
    from mistudio.catalog.labels import import_labels_file

    studio = open_studio()
    sae_id = resolve_sae(studio, sae_id)
    with studio.sessions() as s, s.begin():
        result = import_labels_file(s, sae_id, file)
    if as_json:
        print_json(result.model_dump())
    else:
        typer.echo(f"imported {result.imported} explanation(s) for {result.features} feature(s)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.add_typer(export_app, name="export", help="Neuronpedia / SAELens export, validation and upload.")
    app.add_typer(labels_app, name="labels", help="Import feature explanations and labels.")

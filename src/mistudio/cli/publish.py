"""CLI command: `mistudio publish hf SAE_ID --repo OWNER/NAME` (the SAE to a HuggingFace Hub repo, SAELens layout)."""

from __future__ import annotations

import typer

from mistudio.cli.common import cli_errors, err_console, open_studio, print_json, run_job_with_progress
from mistudio.cli.ids import resolve_sae

app = typer.Typer(help="Publish SAEs to the HuggingFace Hub.", no_args_is_help=True)


@app.command("hf")
@cli_errors
def hf(
    sae_id: str = typer.Argument(..., help="SAE id from `mistudio sae list`."),
    repo: str = typer.Option(..., "--repo", help="The Hub repo, OWNER/NAME (created when missing)."),
    folder: str = typer.Option(None, "--sae-id", help="Sub-folder of the repo for this SAE, the id SAELens "
                               "loads it by (default: its hook name)."),
    private: bool = typer.Option(False, "--private", help="Create the repo private (when it does not exist)."),
    revision: str = typer.Option(None, "--revision", help="Branch to commit to (created from main when missing)."),
    token: str = typer.Option(None, "--token", help="Hub token with write access (default: HF_TOKEN or the "
                              "token saved by `hf auth login`)."),
    model_id: str = typer.Option(None, "--model-id", help="The model's Hub id, when the SAE names a local folder."),
    dataset_id: str = typer.Option(None, "--dataset-id", help="The training dataset's Hub id, when local."),
    neuronpedia_id: str = typer.Option(None, "--neuronpedia-id", help="The SAE's Neuronpedia id MODEL/SOURCE."),
    extraction_id: str = typer.Option(None, "--extraction", help="Extraction for sparsity and the measured L0 "
                                      "(default: the latest)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Upload the SAE (SAELens folder, model card, pretrained_saes.yaml entry) to a Hub repo in one commit of
    what changed; run again after a failure, it sends only what did not reach the Hub."""
    from mistudio.export.hf_publish import PublishRequest, PublishResult, start_publish

    studio = open_studio()
    sae_id = resolve_sae(studio, sae_id)
    request = PublishRequest(repo_id=repo, folder=folder, private=private, revision=revision, token=token,
                             model_id=model_id, dataset_id=dataset_id, neuronpedia_id=neuronpedia_id,
                             extraction_id=extraction_id)
    job_id = start_publish(studio, sae_id, request).job_id
    state = run_job_with_progress(studio, job_id, quiet=as_json)
    result = PublishResult.model_validate(state.result or {})
    if as_json:
        print_json({**result.model_dump(), "job_id": job_id})
        return
    what = (f"uploaded {len(result.uploaded)} file(s), {len(result.unchanged)} unchanged" if result.committed
            else f"nothing changed ({len(result.unchanged)} file(s) already there)")
    err_console.print(f"[green]published[/green] {result.repo_id}/{result.folder} ({result.revision}): {what}; "
                      f"commit {result.commit_url or result.commit_oid}", highlight=False, soft_wrap=True)
    for note in result.notes:
        err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
    typer.echo(result.load_snippet)


def register(root: typer.Typer) -> None:
    """Add `publish` to the top-level app."""
    root.add_typer(app, name="publish", help="Publish SAEs to the HuggingFace Hub (SAELens layout).")

"""CLI command: `mistudio score SAE_ID --endpoint URL --model NAME --scorer detection|fuzzing|simulation`."""

from __future__ import annotations

import typer

from mistudio.cli.common import cli_errors, err_console, open_studio, print_json, run_job_with_progress
from mistudio.cli.ids import resolve_sae


def _score(
    sae_id: str = typer.Argument(..., help="SAE id from `mistudio sae list` (it needs explanations and an extraction)."),
    endpoint: str = typer.Option(..., "--endpoint", help="OpenAI-compatible API base: http://localhost:8000/v1 "
                                 "(vLLM), http://localhost:8080/v1 (llama-server), http://localhost:11434/v1 "
                                 "(Ollama), https://api.openai.com/v1."),
    model: str = typer.Option(..., "--model", help="The judge model's name as the endpoint serves it."),
    scorer: str = typer.Option("detection", "--scorer", help="detection | fuzzing (delphi: balanced accuracy, 0.5 "
                               "= chance) | simulation (OpenAI: correlation; needs log-probabilities)."),
    api_key: str = typer.Option(None, "--api-key", envvar="MISTUDIO_EXPLAIN_API_KEY",
                                help="Bearer token for the endpoint (env MISTUDIO_EXPLAIN_API_KEY); never stored."),
    features: str = typer.Option(None, "--features", help="0-99 (inclusive), 1,5,9 or a mix; default: every "
                                 "explained feature."),
    all_explanations: bool = typer.Option(False, "--all-explanations", help="Score every explanation of each "
                                          "feature, not only its latest (generated ones first)."),
    concurrency: int = typer.Option(8, "--concurrency", help="Requests in flight at once."),
    n_activating: int = typer.Option(None, "--n-activating", help="Activating examples per explanation (default "
                                     "25; simulation 10)."),
    n_non_activating: int = typer.Option(None, "--n-non-activating", help="Non-activating examples per "
                                         "explanation (default as --n-activating)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the example draw and prompt order."),
    force: bool = typer.Option(False, "--force", help="Score again what this scorer and model already scored."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Score explanations with an OpenAI-compatible judge model (delphi's detection and fuzzing, OpenAI's
    simulation); each score is stored with its explanation, and re-running skips what is scored."""
    from pydantic import ValidationError

    from mistudio.autointerp.scoring import start_scoring
    from mistudio.autointerp.scoring_schemas import ScoreRequest, ScoreResult
    from mistudio.errors import InvalidInputError

    studio = open_studio()
    sae_id = resolve_sae(studio, sae_id)
    try:
        request = ScoreRequest.model_validate({
            "endpoint": endpoint, "model": model, "api_key": api_key, "scorer": scorer, "features": features,
            "all_explanations": all_explanations, "concurrency": concurrency, "n_activating": n_activating,
            "n_non_activating": n_non_activating, "seed": seed, "force": force})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else "the options"
        raise InvalidInputError(f"{where}: {error['msg']}") from None
    started = start_scoring(studio, sae_id, request, submit=False)
    if not as_json:
        skipped = f" ({started.n_skipped} already scored; --force to redo)" if started.n_skipped else ""
        err_console.print(f"scoring {started.n_explanations} explanation(s) with {scorer} by {model}{skipped}",
                          highlight=False, soft_wrap=True)
    state = run_job_with_progress(studio, started.job_id, quiet=as_json)
    result = ScoreResult.model_validate(state.result or {})
    if as_json:
        print_json({"job_id": started.job_id, "result": result.model_dump()})
        return
    mean = f", mean {result.mean_score:.3f}" if result.mean_score is not None else ""
    err_console.print(f"[green]scored[/green] {result.n_scored} explanation(s){mean}: {result.requests} request(s), "
                      f"{result.prompt_tokens:,} prompt + {result.completion_tokens:,} completion tokens",
                      highlight=False, soft_wrap=True)
    for item in result.scores[:50]:
        typer.echo(f"{item.feature_index}\t{item.score:.3f}\t{item.n_examples}")
    for failure in result.failures[:20]:
        err_console.print(f"[red]failed[/red] {failure.error}", highlight=False, soft_wrap=True)
    if len(result.failures) > 20:
        err_console.print(f"… and {len(result.failures) - 20} more failures (see `mistudio jobs show "
                          f"{started.job_id}`)")


def register(app: typer.Typer) -> None:
    """Add `score` to the top-level app."""
    app.command("score")(cli_errors(_score))

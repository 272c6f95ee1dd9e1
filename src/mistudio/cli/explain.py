"""CLI command: `mistudio explain SAE_ID --endpoint URL --model NAME` (features explained by an LLM)."""

from __future__ import annotations

import typer

from mistudio.cli.common import cli_errors, err_console, open_studio, print_json, run_job_with_progress
from mistudio.cli.ids import resolve_sae


def _money(value: float | None) -> str:
    return f"${value:,.4f}" if value is not None else "unknown (pass --price-input and --price-output)"


def _explain(
    sae_id: str = typer.Argument(..., help="SAE id from `mistudio sae list` (it needs a completed extraction)."),
    endpoint: str = typer.Option(..., "--endpoint", help="OpenAI-compatible API base: http://localhost:8000/v1 "
                                 "(vLLM), http://localhost:8080/v1 (llama-server), http://localhost:11434/v1 "
                                 "(Ollama), https://api.openai.com/v1."),
    model: str = typer.Option(..., "--model", help="The model name the endpoint serves."),
    api_key: str = typer.Option(None, "--api-key", envvar="MISTUDIO_EXPLAIN_API_KEY",
                                help="Bearer token for the endpoint (env MISTUDIO_EXPLAIN_API_KEY); never stored."),
    features: str = typer.Option(None, "--features", help="0-99 (inclusive), 1,5,9 or a mix; default: every "
                                 "live feature."),
    labeled: bool = typer.Option(None, "--labeled/--unlabeled", help="Only features with (without) a label."),
    method: str = typer.Option("np_max-act-logits", "--method", help="np_max-act-logits | oai_token-act-pair"),
    concurrency: int = typer.Option(8, "--concurrency", help="Requests in flight at once."),
    max_cost: float = typer.Option(None, "--max-cost", help="Stop once the measured cost reaches this many USD."),
    price_input: float = typer.Option(None, "--price-input", help="USD per million prompt tokens."),
    price_output: float = typer.Option(None, "--price-output", help="USD per million completion tokens."),
    n_examples: int = typer.Option(None, "--n-examples", help="Top examples per feature (default 20)."),
    latency: float = typer.Option(4.0, "--latency", help="Seconds per request the time estimate assumes."),
    force: bool = typer.Option(False, "--force", help="Explain again features this method already explained."),
    estimate_only: bool = typer.Option(False, "--estimate-only", help="Print the estimate and stop."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Explain features with any OpenAI-compatible chat model (Neuronpedia's and OpenAI's prompts); re-running
    skips explained features, so the same command after a crash carries on where it stopped."""
    from mistudio.autointerp.explain import estimate_explain, start_explain
    from mistudio.autointerp.schemas import ExplainRequest, ExplainResult

    studio = open_studio()
    sae_id = resolve_sae(studio, sae_id)
    request = ExplainRequest(endpoint=endpoint, model=model, api_key=api_key, features=features, labeled=labeled,
                             method=method, concurrency=concurrency, max_cost_usd=max_cost,
                             price_per_1m_input=price_input, price_per_1m_output=price_output,
                             n_examples=n_examples, assumed_latency_s=latency, force=force)
    if estimate_only:
        estimate = estimate_explain(studio, sae_id, request)
        if as_json:
            print_json({"estimate": estimate.model_dump()})
            return
    else:
        started = start_explain(studio, sae_id, request, submit=False)
        estimate = started.estimate
    if not as_json:
        skipped = (f" ({estimate.n_already_explained} already explained by {method}; --force to redo)"
                   if estimate.n_already_explained else "")
        err_console.print(
            f"estimate: {estimate.n_features} feature(s){skipped}, {estimate.n_requests} request(s), "
            f"~{estimate.prompt_tokens:,} prompt + ~{estimate.completion_tokens:,} completion tokens, "
            f"cost {_money(estimate.cost_usd)}, ~{estimate.seconds or 0:.0f}s at concurrency {concurrency}",
            highlight=False, soft_wrap=True)
    if estimate_only:
        return
    state = run_job_with_progress(studio, started.job_id, quiet=as_json)
    result = ExplainResult.model_validate(state.result or {})
    if as_json:
        print_json({"job_id": started.job_id, "estimate": estimate.model_dump(), "result": result.model_dump()})
        return
    stop = " (stopped: --max-cost reached)" if result.stopped == "max_cost" else ""
    cost = f", cost {_money(result.cost_usd)}" if result.cost_usd is not None else ""
    err_console.print(f"[green]explained[/green] {result.n_explained} feature(s) with {model}{stop}: "
                      f"{result.requests} request(s), {result.prompt_tokens:,} prompt + "
                      f"{result.completion_tokens:,} completion tokens{cost}, {result.requests_per_s:.1f} req/s",
                      highlight=False, soft_wrap=True)
    for failure in result.failures[:20]:
        err_console.print(f"[red]failed[/red] feature {failure.feature_index}: {failure.error}", highlight=False,
                          soft_wrap=True)
    if len(result.failures) > 20:
        err_console.print(f"… and {len(result.failures) - 20} more failures (see `mistudio jobs show "
                          f"{started.job_id}`)")


def register(app: typer.Typer) -> None:
    """Add `explain` to the top-level app."""
    app.command("explain")(cli_errors(_explain))

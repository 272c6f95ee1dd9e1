"""CLI command `steer`: complete a prompt steered by an SAE's features (Neuronpedia's semantics), optionally
beside Neuronpedia's own answer."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from mistudio.cli.common import cli_errors, console, open_studio, print_json
from mistudio.cli.ids import resolve_sae
from mistudio.errors import InvalidInputError

DEFAULT_HOST = "https://www.neuronpedia.org"


def parse_feature(text: str) -> dict[str, float | int]:
    """`N:STRENGTH` → {"index": N, "strength": STRENGTH}.

    Raises:
        InvalidInputError: not `index:strength`.
    """
    index, sep, strength = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return {"index": int(index), "strength": float(strength)}
    except ValueError:
        raise InvalidInputError(f"--feature {text!r} should be INDEX:STRENGTH, e.g. --feature 1234:40") from None


def _steer(sae_id: str = typer.Argument(..., help="SAE id (see `mistudio sae list`)."),
           prompt: str = typer.Argument(..., help="Text to complete (the user turn with --chat)."),
           feature: list[str] = typer.Option(..., "--feature", "-f", help="INDEX:STRENGTH; repeat for several."),
           method: str = typer.Option("SIMPLE_ADDITIVE", "--method",
                                      help="SIMPLE_ADDITIVE, ORTHOGONAL_DECOMP or PROJECTION_CAP."),
           n_tokens: int = typer.Option(64, "--n-tokens", help="Tokens to generate (at most 256)."),
           temperature: float = typer.Option(0.5, "--temperature", help="0 is greedy."),
           seed: int = typer.Option(16, "--seed", help="Sampling seed: the same seed gives the same sample."),
           freq_penalty: float = typer.Option(1.0, "--freq-penalty", help="Frequency penalty (when > 0)."),
           strength_multiplier: float = typer.Option(1.0, "--strength-multiplier", help="Multiplies every strength."),
           normalize: bool = typer.Option(False, "--normalize", help="Steer along unit decoder directions."),
           no_special: bool = typer.Option(False, "--no-steer-special-tokens",
                                           help="Leave BOS and other special-token positions unsteered."),
           chat: bool = typer.Option(False, "--chat", help="Apply the model's chat template."),
           model: str = typer.Option(None, "--model", help="HF model id or local folder (default: the SAE's)."),
           compare: bool = typer.Option(False, "--compare-neuronpedia",
                                        help="Also ask Neuronpedia's steering API and show its answer beside ours."),
           host: str = typer.Option(DEFAULT_HOST, "--neuronpedia-host", help="Neuronpedia base URL."),
           api_key: str = typer.Option(None, "--api-key", envvar="NEURONPEDIA_API_KEY",
                                       help="Neuronpedia API key (or NEURONPEDIA_API_KEY)."),
           source: str = typer.Option(None, "--neuronpedia-source",
                                      help="Neuronpedia model/source (default: the SAE's neuronpedia id)."),
           as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """Complete PROMPT with and without steering by the SAE's features; the run is stored."""
    from mistudio.steering.schemas import NeuronpediaCompare, SteerRequest
    from mistudio.steering.service import steer

    studio = open_studio()
    body: dict[str, Any] = {
        "sae_id": resolve_sae(studio, sae_id), "model": model, "prompt": prompt, "chat": chat,
        "features": [parse_feature(f) for f in feature], "steer_method": method,
        "normalize_steering": normalize, "strength_multiplier": strength_multiplier,
        "steer_special_tokens": not no_special, "n_completion_tokens": n_tokens, "temperature": temperature,
        "freq_penalty": freq_penalty, "seed": seed}
    if compare:
        body["compare_neuronpedia"] = NeuronpediaCompare(host=host, api_key=api_key, source=source)
    try:
        request = SteerRequest.model_validate(body)
    except ValueError as exc:
        raise InvalidInputError(f"invalid steering request: {exc}") from None
    result = steer(studio, request)
    if as_json:
        print_json(result.model_dump(mode="json", exclude_none=True))
        return
    table = Table(title=f"run {result.run_id}", show_lines=True)
    table.add_column("")
    table.add_column("miStudio")
    comparison = result.comparison
    if comparison is not None:
        table.add_column(f"Neuronpedia ({comparison.source})")
    for kind in ("DEFAULT", "STEERED"):
        ours = getattr(result, kind)
        row = [kind, ours.text if ours is not None else "—"]
        if comparison is not None:
            theirs = getattr(comparison, kind)
            row.append(theirs.text if theirs is not None else (comparison.error or "—"))
        table.add_row(*row)
    console.print(table)
    if comparison is not None and comparison.message:
        style = "red" if comparison.mismatch else "green"
        console.print(f"[{style}]{comparison.message}[/{style}]")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("steer")(cli_errors(_steer))

"""CLI command `activations`: an SAE's live activations on a text, as a table (or JSON)."""

from __future__ import annotations

import typer
from rich.table import Table

from mistudio.cli.common import cli_errors, console, err_console, open_studio, print_json
from mistudio.cli.ids import resolve_sae


def _activations(sae_id: str = typer.Argument(..., help="SAE id (see `mistudio sae list`)."),
                 text: str = typer.Argument(..., help="The text to run the model and the SAE on."),
                 feature: list[int] = typer.Option(None, "--feature", "-f",
                                                   help="A feature to show at every token (repeatable)."),
                 model: str = typer.Option(None, "--model", help="HF model id or local folder (default: the "
                                                                 "model of the SAE's latest extraction)."),
                 top_k: int = typer.Option(10, "--top-k", help="Features listed per token and overall."),
                 device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps (default: automatic)."),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """Which features fire on TEXT: the SAE's activations computed as its extraction computes them."""
    from mistudio.inference.sae_session import open_sae

    studio = open_studio()
    sae_id = resolve_sae(studio, sae_id)
    live = open_sae(studio, sae_id, model=model, device=device)
    live.check_request(text, feature or None, top_k)
    if not as_json:
        err_console.print(f"running {live.model_ref} up to {live.hook} …", highlight=False)
    result = live.activations(text, feature or None, top_k)
    if as_json:
        print_json(result.model_dump())
        return
    table = Table(title=f"SAE {sae_id} on {result.model} at {result.hook} ({len(result.tokens)} tokens)")
    table.add_column("#", justify="right")
    table.add_column("token")
    for trace in result.features:
        table.add_column(f"feature {trace.index}", justify="right")
    table.add_column(f"top features (of {top_k})")
    for position, token in enumerate(result.tokens):
        values = [f"{t.values[position]:.3f}" if t.values[position] else "" for t in result.features]
        tops = ", ".join(f"{fv.index}: {fv.value:.2f}" for fv in result.top_features[position][:5])
        table.add_row(str(position), repr(token) + (" (special)" if result.special[position] else ""), *values,
                      tops)
    console.print(table)
    overall = ", ".join(f"{o.index} ({o.value:.2f} at {result.tokens[o.token_index]!r})" for o in result.overall)
    console.print(f"overall: {overall or 'no feature fires'}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's command to the top-level app."""
    app.command("activations")(cli_errors(_activations))

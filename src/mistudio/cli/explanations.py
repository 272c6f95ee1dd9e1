"""`mistudio explanations search QUERY`: find features by the text of their explanations, across SAEs."""

from __future__ import annotations

import typer
from rich.table import Table

from mistudio.cli.common import cli_errors, console, open_studio, print_json
from mistudio.cli.ids import resolve_id, short_id

explanations_app = typer.Typer(help="Feature explanations: search.", no_args_is_help=True)


@explanations_app.command("search")
@cli_errors
def search(query: str = typer.Argument(..., help="Words that must all appear in the explanation."),
           sae: str = typer.Option(None, "--sae", help="Only explanations of this SAE (id or prefix)."),
           page: int = typer.Option(1, min=1), page_size: int = typer.Option(50, min=1, max=500),
           as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """Explanations whose text contains every word of QUERY, with their SAE, feature, method, model and scores."""
    from mistudio.catalog.explanations import search_explanations

    studio = open_studio()
    sae_id = resolve_id(studio, "SAE", sae) if sae else None
    with studio.sessions() as s:
        result = search_explanations(s, query, sae_id=sae_id, page=page, page_size=page_size)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    table = Table(title=f"explanations matching {query!r} ({result.total})")
    for col in ("sae", "feature", "explanation", "method", "model", "scores"):
        table.add_column(col, no_wrap=col in ("sae", "feature"))
    for hit in result.items:
        scores = ", ".join(f"{s.scorer} {s.score:.2f}" for s in hit.scores)
        table.add_row(f"{hit.sae_name} ({short_id(hit.sae_id)})", str(hit.feature_index), hit.description,
                      hit.method or "", hit.model or "", scores)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.add_typer(explanations_app, name="explanations", help="Feature explanations: search.")

"""The `mistudio` command line."""

from __future__ import annotations

import typer

from mistudio import __version__
from mistudio.cli import sae as sae_cli

app = typer.Typer(help="miStudio: SAEs in from anywhere, feature dashboards, Neuronpedia export.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(sae_cli.app, name="sae", help="List, browse, download, import, convert and delete SAEs.")
app.add_typer(sae_cli.training_app, name="training")


def _register_optional() -> None:
    """Sub-commands of the extraction and export packages."""
    from mistudio.cli import export as export_cli
    from mistudio.cli import extract as extract_cli

    extract_cli.register(app)
    export_cli.register(app)


_register_optional()


@app.command()
def version() -> None:
    """Print the miStudio version."""
    typer.echo(__version__)


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Interface to bind."),
          port: int = typer.Option(8000, help="Port to listen on.")) -> None:
    """Start the studio: REST API at /api/v1 and the web UI at /."""
    import uvicorn

    from mistudio.api.app import create_app

    typer.echo(f"miStudio {__version__} — open http://{host}:{port}/ (API docs at /docs)")
    uvicorn.run(create_app(), host=host, port=port, log_level="info")


if __name__ == "__main__":
    app()

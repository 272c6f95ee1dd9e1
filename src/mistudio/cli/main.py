"""The `mistudio` command line."""

from __future__ import annotations

import typer

from mistudio import __version__
from mistudio.cli import sae as sae_cli

app = typer.Typer(help="miStudio: SAEs in from anywhere, feature dashboards, Neuronpedia export.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(sae_cli.app, name="sae", help="List, browse, download, import, convert and delete SAEs.")


def _register_optional() -> None:
    """Sub-commands of the extraction and export packages."""
    from mistudio.cli import activations as activations_cli
    from mistudio.cli import explain as explain_cli
    from mistudio.cli import explanations as explanations_cli
    from mistudio.cli import export as export_cli
    from mistudio.cli import extract as extract_cli
    from mistudio.cli import jobs as jobs_cli
    from mistudio.cli import publish as publish_cli
    from mistudio.cli import score as score_cli
    from mistudio.cli import steer as steer_cli
    from mistudio.cli import store as store_cli
    from mistudio.cli import train as train_cli

    extract_cli.register(app)
    activations_cli.register(app)
    explanations_cli.register(app)
    explain_cli.register(app)
    export_cli.register(app)
    jobs_cli.register(app)
    publish_cli.register(app)
    score_cli.register(app)
    steer_cli.register(app)
    store_cli.register(app)
    train_cli.register(app)


_register_optional()


@app.command()
def version() -> None:
    """Print the miStudio version."""
    typer.echo(__version__)


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="Interface to bind."),
          port: int = typer.Option(8000, help="Port to listen on."),
          no_auth: bool = typer.Option(False, "--no-auth", help="Serve without MISTUDIO_API_TOKEN even on a "
                                       "non-loopback address (anyone who can reach it may use the API).")) -> None:
    """Start the studio: REST API at /api/v1 and the web UI at /. A non-loopback --host needs MISTUDIO_API_TOKEN
    (or --no-auth)."""
    import uvicorn

    from mistudio.api.app import create_app
    from mistudio.api.auth import serve_access_warning
    from mistudio.errors import MiStudioError
    from mistudio.settings import get_settings

    try:
        warning = serve_access_warning(host, get_settings().api_token, no_auth)
    except MiStudioError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    if warning:
        typer.echo(warning, err=True)
    typer.echo(f"miStudio {__version__} — open http://{host}:{port}/ (API docs at /docs)")
    uvicorn.run(create_app(auth=not no_auth), host=host, port=port, log_level="info")


if __name__ == "__main__":
    app()

"""CLI commands: `extract`, `features`, `feature` and the offline `demo`."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from mistudio.cli.common import cli_errors, console, open_studio, print_json, run_job_with_progress
from mistudio.cli.ids import resolve_sae


def _extract(sae_id: str = typer.Argument(..., help="SAE id (see `mistudio sae list`)."),
             model: str = typer.Option(None, "--model", help="HF model id or local folder (default: the SAE's)."),
             dataset: str = typer.Option("builtin:corpus", "--dataset",
                                         help="File/folder (.txt, .jsonl, .parquet, save_to_disk), HF id, "
                                              "or builtin:corpus."),
             n_tokens: int = typer.Option(None, "--n-tokens", help="Tokens to read (default 262,144)."),
             context_size: int = typer.Option(None, "--context-size", help="Tokens per window (default: SAE's)."),
             top_k: int = typer.Option(None, "--top-k", help="Top examples kept per feature (default 20)."),
             batch_size: int = typer.Option(None, "--batch-size", help="Windows per forward pass (default 32)."),
             device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps (default: automatic)."),
             neuronpedia: bool = typer.Option(True, "--neuronpedia/--no-neuronpedia",
                                              help="Also compute the Neuronpedia data (a second pass; needed "
                                                   "to export to Neuronpedia). Running again adds it later."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """Compute every feature's dashboard data (top examples, statistics, histograms, logit lens)."""
    from mistudio.extraction.service import start_extraction

    studio = open_studio()
    sae_id = resolve_sae(studio, sae_id)
    started = start_extraction(studio, sae_id, model, dataset, submit=False, n_tokens=n_tokens,
                               context_size=context_size, top_k=top_k, batch_size=batch_size, device=device,
                               neuronpedia=neuronpedia)
    result: dict[str, Any] = started.model_dump()
    if not started.reused and started.job_id is not None:
        state = run_job_with_progress(studio, started.job_id, quiet=as_json)
        result.update(state.result or {})
    if as_json:
        print_json(result)
    else:
        note = " (reused an identical finished extraction)" if started.reused else ""
        console.print(f"extraction [bold]{started.extraction_id}[/bold] ready{note}; "
                      f"`mistudio features {sae_id}` lists the features")


def _features(sae_id: str = typer.Argument(...),
              sort: str = typer.Option("frequency", help="index | frequency | max | mean"),
              order: str = typer.Option("desc", help="asc | desc"),
              page: int = typer.Option(1), page_size: int = typer.Option(50),
              dead: bool = typer.Option(None, "--dead/--alive", help="Only dead (or only live) features."),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """List an SAE's features from its latest extraction."""
    from mistudio.extraction.service import latest_extraction_id
    from mistudio.extraction.summaries import list_features

    studio = open_studio()
    sae_id = resolve_sae(studio, sae_id)
    extraction_id = latest_extraction_id(studio, sae_id)
    with studio.sessions() as s:
        result = list_features(s, extraction_id, sort=sort, order=order, dead=dead, page=page,
                               page_size=page_size)
    if as_json:
        print_json(result.model_dump())
        return
    table = Table(title=f"features of {sae_id} ({result.total})")
    for col in ("index", "frequency", "max", "mean", "dead", "top token", "label"):
        table.add_column(col)
    for it in result.items:
        table.add_row(str(it.feature_index), f"{it.activation_frequency:.4%}", f"{it.max_activation:.3f}",
                      f"{it.mean_activation:.3f}", "yes" if it.dead else "", repr(it.top_token or ""),
                      it.label or "")
    console.print(table)


def _feature(sae_id: str = typer.Argument(...), index: int = typer.Argument(...),
             n_examples: int = typer.Option(5, help="Examples to show (JSON: all)."),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Print one feature's dashboard data."""
    from mistudio.dashboards.reader import feature_dashboard
    from mistudio.extraction.service import get_store

    studio = open_studio()
    _, store = get_store(studio, resolve_sae(studio, sae_id))
    data = feature_dashboard(store, index)
    if as_json:
        print_json(data)
        return
    st = data["statistics"]
    console.print(f"[bold]feature {index}[/bold]  frequency {st['activation_frequency']:.4%}  "
                  f"max {st['max_activation']:.3f}  mean {st['mean_activation']:.3f}  dead {st['dead']}")
    for ex in data["activations"][:n_examples]:
        i = ex["max_token_index"]
        text = "".join(ex["tokens"][:i]) + f"[reverse]{ex['tokens'][i]}[/reverse]" + "".join(ex["tokens"][i + 1:])
        console.print(f"  {ex['max_value']:.3f}  {text!r}", highlight=False, markup=True)
    pos = ", ".join(f"{e['token']!r} {e['value']:.2f}" for e in data["logits"]["top_positive"][:10])
    console.print(f"  logit lens +: {pos}", highlight=False)
    tops = ", ".join(f"{t['token']!r}×{t['count']}" for t in data["top_tokens"][:10])
    console.print(f"  top tokens: {tops}", highlight=False)


def _demo(n_tokens: int = typer.Option(65_536, "--n-tokens", help="Tokens of the shipped corpus to extract over."),
          train_tokens: int = typer.Option(None, "--train-tokens",
                                           help="Tokens to train the demo SAE on (default 500,000: about a "
                                                "minute on a laptop CPU)."),
          as_json: bool = typer.Option(False, "--json")) -> None:
    """Offline demo: a tiny random GPT-2, a TopK SAE trained on it over the shipped corpus, its dashboards
    extracted, ready in the catalog."""
    from mistudio.demo import DEMO_TRAIN_TOKENS, run_demo

    studio = open_studio()
    result = run_demo(studio, n_tokens=n_tokens, train_tokens=train_tokens or DEMO_TRAIN_TOKENS,
                      run_job=lambda st, job_id: run_job_with_progress(st, job_id, quiet=as_json))
    if as_json:
        print_json(result)
    else:
        metrics = result.get("metrics") or {}
        ev, l0 = metrics.get("explained_variance"), metrics.get("l0")
        trained = (f" (explained variance {ev:.3f}, L0 {l0:.1f})" if isinstance(ev, float) and isinstance(l0, float)
                   else "")
        console.print(f"demo SAE [bold]{result['sae_id']}[/bold] is trained{trained} and extracted: "
                      f"`mistudio features {result['sae_id']}`, `mistudio training show {result['training_id']}`, "
                      "or `mistudio serve` and open the web UI")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("extract")(cli_errors(_extract))
    app.command("features")(cli_errors(_features))
    app.command("feature")(cli_errors(_feature))
    app.command("demo")(cli_errors(_demo))

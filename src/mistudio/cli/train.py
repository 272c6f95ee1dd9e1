"""`mistudio train …` (train SAEs and transcoders as a job, with a progress bar) and `mistudio training …` (the
training records: list, show, add)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from mistudio.cli.common import (
    cli_errors,
    console,
    err_console,
    lazy_module,
    open_studio,
    print_json,
    run_job_with_progress,
)
from mistudio.cli.ids import SHORT_ID, resolve_id
from mistudio.errors import InvalidInputError

if TYPE_CHECKING:
    from mistudio.catalog import service
    from mistudio.training.schemas import SAERequest
else:  # imported on first use: they load torch, which `--help` and listings never need
    service = lazy_module("mistudio.catalog.service")

training_app = typer.Typer(no_args_is_help=True, help="Training records (how an SAE was trained).")
SUMMARY = ("explained_variance", "l0", "dead_fraction", "ce_loss_recovered", "kl_div")
_INT_FIELDS = ("d_sae", "k")
_FLOAT_FIELDS = ("expansion", "l1_coefficient", "l0_coefficient", "lr")


def parse_also(spec: str, base: SAERequest) -> SAERequest:
    """One `--also` SAE: comma-separated `key=value` pairs (hook, hook_out, architecture, d_sae, expansion, k,
    l1_coefficient, l0_coefficient, lr, name, matryoshka_widths as 128/512/2048) over the main SAE's settings.

    Raises:
        InvalidInputError: a pair that is not key=value, an unknown key or a bad number.
    """
    from pydantic import ValidationError

    from mistudio.training.schemas import SAERequest

    values: dict[str, Any] = {k: v for k, v in base.model_dump().items() if k != "name"}
    given: set[str] = set()
    for pair in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in SAERequest.model_fields:
            raise InvalidInputError(f"--also {spec!r}: {pair!r} is not key=value with a key among "
                                    f"{', '.join(SAERequest.model_fields)}")
        given.add(key)
        try:
            if key in _INT_FIELDS:
                values[key] = int(value)
            elif key in _FLOAT_FIELDS:
                values[key] = float(value)
            elif key == "matryoshka_widths":
                values[key] = [int(w) for w in value.split("/") if w]
            else:
                values[key] = value.strip() or None
        except ValueError:
            raise InvalidInputError(f"--also {spec!r}: {key} needs a number, not {value!r}") from None
    for width, other in (("d_sae", "expansion"), ("expansion", "d_sae")):
        if width in given and other not in given:  # a new width replaces the main SAE's, however it was given
            values[other] = None
    try:
        return SAERequest.model_validate(values)
    except ValidationError as exc:
        raise InvalidInputError(f"--also {spec!r}: {exc.errors()[0]['msg']}") from None


def _summary(metrics: dict[str, Any]) -> str:
    def num(key: str, fmt: str) -> str:
        value = metrics.get(key)
        return format(value, fmt) if isinstance(value, (int, float)) else "n/a"

    return (f"EV {num('explained_variance', '.3f')}, L0 {num('l0', '.1f')}, dead {num('dead_fraction', '.1%')}, "
            f"CE recovered {num('ce_loss_recovered', '.3f')}, KL {num('kl_div', '.4f')}")


def _train(
    model: str = typer.Option(..., "--model", help="HF model id or local folder."),
    hook: str = typer.Option(..., "--hook", help="Hook to read: blocks.L.hook_resid_post, or an HF module path."),
    dataset: str = typer.Option("builtin:corpus", "--dataset",
                                help="File/folder (.txt, .jsonl, .parquet, save_to_disk), HF id, or builtin:corpus."),
    architecture: str = typer.Option("topk", "--architecture",
                                     help="standard | topk | batchtopk | jumprelu | matryoshka_batchtopk"),
    d_sae: int = typer.Option(None, "--d-sae", help="Number of latents."),
    expansion: float = typer.Option(None, "--expansion", help="Latents per input dimension (default 8)."),
    k: int = typer.Option(None, "--k", help="Active latents per token (TopK family; default 32)."),
    l1_coefficient: float = typer.Option(None, "--l1-coefficient", help="Sparsity penalty (standard)."),
    l0_coefficient: float = typer.Option(None, "--l0-coefficient", help="L0 penalty (jumprelu)."),
    lr: float = typer.Option(None, "--lr", help="Learning rate (default: chosen for the token budget)."),
    n_tokens: int = typer.Option(..., "--n-tokens", help="Training tokens (special tokens excluded)."),
    batch_tokens: int = typer.Option(None, "--batch-tokens", help="Tokens per step (default: for the budget)."),
    context_size: int = typer.Option(128, "--context-size", help="Tokens per window."),
    hook_out: str = typer.Option(None, "--hook-out", help="Train a transcoder predicting this hook."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps (default: automatic)."),
    dtype: str = typer.Option(None, "--dtype", help="The model's dtype (default: float32 on CPU, bf16 on GPU)."),
    name: str = typer.Option(None, "--name", help="Name of the trained SAE in the catalog."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation, window order and shuffling."),
    epochs: int = typer.Option(1, "--epochs", help="Passes over the dataset (a small dataset, many tokens)."),
    also: list[str] = typer.Option(None, "--also", help="Another SAE on the same forward passes: key=value pairs "
                                   "over this one's settings, e.g. 'k=64' or 'hook=blocks.2.hook_resid_post,"
                                   "d_sae=1024' (repeatable)."),
    eval_every_tokens: int = typer.Option(None, "--eval-every-tokens", help="Held-out evaluation interval."),
    eval_windows: int = typer.Option(16, "--eval-windows", help="Held-out windows (never trained on) per evaluation."),
    checkpoint_every_tokens: int = typer.Option(None, "--checkpoint-every-tokens", help="Checkpoint interval."),
    resume: bool = typer.Option(True, "--resume/--no-resume",
                                help="Continue an interrupted, paused or failed run of the same settings "
                                     "(default), or start a new one."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train an SAE (or a transcoder with --hook-out; several with --also) on the model's activations, as a
    resumable job; the result is catalogued as a Trained SAE. Run again after an interruption, it continues from
    its last checkpoint. Under `torchrun --nproc-per-node N -m mistudio.cli.main train …` the ranks train data
    parallel (rank 0 runs the job and writes the catalog)."""
    from mistudio.training.distributed import init_distributed
    from mistudio.training.launch import follow
    from mistudio.training.schemas import SAERequest, TrainRequest
    from mistudio.training.service import start_training

    dist = init_distributed()  # under torchrun: rank 0 runs the job below, the other ranks step with it
    if dist is not None and not dist.is_main:
        follow(dist)
        return
    base = SAERequest(hook=hook, hook_out=hook_out, architecture=architecture,  # type: ignore[arg-type]
                      d_sae=d_sae, expansion=expansion, k=k, l1_coefficient=l1_coefficient,
                      l0_coefficient=l0_coefficient, lr=lr, name=name)
    request = TrainRequest(**base.model_dump(), model=model, dataset=dataset, n_tokens=n_tokens,
                           batch_tokens=batch_tokens, context_size=context_size, device=device, dtype=dtype,
                           seed=seed, epochs=epochs, extra_saes=[parse_also(spec, base) for spec in also or []],
                           eval_every_tokens=eval_every_tokens, eval_windows=eval_windows,
                           checkpoint_every_tokens=checkpoint_every_tokens)
    studio = open_studio()
    started = start_training(studio, request, submit=False, resume=resume)
    if started.resumed:
        err_console.print(f"resuming training job {started.job_id[:SHORT_ID]} (same settings) from its checkpoint "
                          f"at {started.tokens_done:,} tokens; --no-resume starts over", highlight=False)
    state = run_job_with_progress(studio, started.job_id, quiet=as_json)
    result = state.result or {}
    rows = [{"sae_id": sae_id, "training_id": training_id, "metrics": {k: m.get(k) for k in SUMMARY}}
            for sae_id, training_id, m in zip(result.get("sae_ids", []), result.get("training_ids", []),
                                              result.get("metrics", []), strict=False)]
    if as_json:
        print_json(rows[0] if len(rows) == 1 else rows)
        return
    for row in rows:
        console.print(f"trained SAE [bold]{row['sae_id']}[/bold] (training {row['training_id'][:SHORT_ID]}): "
                      f"{_summary(row['metrics'])}", highlight=False)
    if result.get("data_exhausted"):
        err_console.print(f"the dataset ran out after {result.get('tokens_seen', 0):,} tokens", highlight=False)


@training_app.command("add")
@cli_errors
def training_add(name: str = typer.Option(...), model: str = typer.Option(None), hook: str = typer.Option(None),
                 dataset: str = typer.Option(None),
                 hyperparameters: str = typer.Option("{}", help="JSON object of hyper-parameters."),
                 metrics: str = typer.Option("{}", help="JSON object of metrics (l0, explained variance, ...)."),
                 tokens: int = typer.Option(None, help="Number of training tokens."),
                 as_json: bool = typer.Option(False, "--json")) -> None:
    """Record a training run done elsewhere so SAEs can be linked to it."""
    try:
        hp, mt = json.loads(hyperparameters), json.loads(metrics)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--hyperparameters/--metrics must be JSON objects ({exc})") from None
    studio = open_studio()
    with studio.sessions() as s, s.begin():
        training = service.create_training(s, name=name, model_name=model, hook_name=hook, dataset=dataset,
                                           hyperparameters=hp, metrics=mt, n_training_tokens=tokens)
    if as_json:
        print_json(training.model_dump())
    else:
        console.print(f"training record {training.id}", highlight=False)


@training_app.command("list")
@cli_errors
def training_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List training records (typed ones and the studio's runs)."""
    studio = open_studio()
    with studio.sessions() as s:
        items = service.list_trainings(s)
    if as_json:
        print_json({"items": [t.model_dump() for t in items]})
        return
    table = Table(title=f"trainings ({len(items)})")
    for col in ("id", "status", "name", "architecture", "tokens", "EV", "L0", "SAE"):
        table.add_column(col)
    for t in items:
        ev, l0 = t.metrics.get("explained_variance"), t.metrics.get("l0")
        table.add_row(t.id[:SHORT_ID], t.status, t.name, t.architecture or "",
                      f"{t.tokens_seen or t.n_training_tokens or 0:,}",
                      f"{ev:.3f}" if isinstance(ev, (int, float)) else "",
                      f"{l0:.1f}" if isinstance(l0, (int, float)) else "", (t.sae_id or "")[:SHORT_ID])
    console.print(table)


@training_app.command("show")
@cli_errors
def training_show(training_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """One training record: hyper-parameters, dataset, tokens, wall time, device, final metrics."""
    studio = open_studio()
    with studio.sessions() as s:
        training = service.get_training(s, resolve_id(studio, "training", training_id))
    data = training.model_dump()
    if as_json:
        print_json(data)
        return
    console.print(f"[bold]{training.name}[/bold] ({training.id}) — {training.status}", highlight=False)
    for key in ("model_name", "hook_name", "hook_name_out", "architecture", "dataset", "device", "tokens_seen",
                "wall_time_s", "sae_id", "job_id", "run_dir"):
        if data.get(key) is not None:
            console.print(f"  {key}: {data[key]}", highlight=False)
    if training.metrics:
        console.print(f"  metrics: {_summary(training.metrics)}", highlight=False)
    if training.hyperparameters:
        console.print_json(data=training.hyperparameters)


def register(app: typer.Typer) -> None:
    """Add `train` and the `training` sub-app to the top-level app."""
    app.command("train")(cli_errors(_train))
    app.add_typer(training_app, name="training")

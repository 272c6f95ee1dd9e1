"""Training as a service (notebooks, CLI, REST): start or resume a training run, turn a request into a run config,
read a run's curves, and catalogue the trained SAEs.

A request's settings key (every field that changes the weights) names the run: starting the same request again
while its job is interrupted (its process was killed), paused or failed resumes that job from its last checkpoint
instead of starting over.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mistudio.catalog.schemas import Training
from mistudio.catalog.service import get_training, register_sae_from_path
from mistudio.db.models import Job as JobRecord
from mistudio.db.models import SAERecord
from mistudio.db.models import Training as TrainingRecord
from mistudio.errors import ConflictError, InvalidInputError
from mistudio.extraction.engine import settings_key
from mistudio.studio import Studio
from mistudio.training.config import SAESpec
from mistudio.training.run import EVALS, METRICS, RunConfig, checkpoint_tokens
from mistudio.training.schemas import (
    DensityHistogram,
    EvalPoint,
    SAERequest,
    StepPoint,
    TrainingCurves,
    TrainingStarted,
    TrainRequest,
)

if TYPE_CHECKING:
    import torch

    from mistudio.lm.loading import LoadedModel
    from mistudio.saes.model import SAE

JOB_TYPE = "training"
DEFAULT_EXPANSION = 8.0
# request fields that do not change the trained weights (not part of the settings key)
_OPERATIONAL = ("device", "name", "eval_every_tokens", "checkpoint_every_tokens")
_RESUMABLE = ("interrupted", "paused", "failed")


def request_key(request: TrainRequest) -> str:
    """The settings key of a request: a hash of every field that changes the weights."""
    data = request.model_dump()
    data["extra_saes"] = [{k: v for k, v in extra.items() if k != "name"} for extra in data["extra_saes"]]
    return settings_key(JOB_TYPE, {k: v for k, v in data.items() if k not in _OPERATIONAL})


def sae_requests(request: TrainRequest) -> list[SAERequest]:
    """The run's SAEs in order: the top-level one, then `extra_saes`."""
    top = SAERequest.model_validate({name: getattr(request, name) for name in SAERequest.model_fields})
    return [top, *request.extra_saes]


def _default_name(request: TrainRequest, sae: SAERequest) -> str:
    model = Path(request.model.rstrip("/")).name or request.model
    width = f"{sae.d_sae}" if sae.d_sae else f"x{sae.expansion or DEFAULT_EXPANSION:g}"
    k = f"-k{sae.k}" if sae.k else ""
    return f"{model} {sae.hook}{' → ' + sae.hook_out if sae.hook_out else ''} {sae.architecture}-{width}{k}"


def find_resumable_training(studio: Studio, request: TrainRequest) -> str | None:
    """The newest training job of this very request that stopped before finishing (interrupted, paused, or failed
    with a checkpoint to resume from); None if none."""
    key = request_key(request)
    studio.runner.reconcile()
    with studio.sessions() as s:
        jobs = s.scalars(select(JobRecord).where(JobRecord.type == JOB_TYPE).order_by(JobRecord.created_at.desc()))
        for job in jobs:
            if (job.params or {}).get("settings_key") != key:
                continue
            if job.status in ("pending", "running"):
                raise ConflictError(f"the same training is already {job.status} (job {job.id}); pause or cancel it "
                                    "first", details={"job_id": job.id})
            if job.status in _RESUMABLE and (job.status != "failed" or job.resumable):
                return job.id
    return None


def start_training(studio: Studio, request: TrainRequest, *, submit: bool = True,
                   resume: bool = True) -> TrainingStarted:
    """Create (and queue, if `submit`) a training job with one Training record per SAE; with `resume`, the same
    request whose job stopped early (interrupted, paused or failed) is resumed from its checkpoint instead
    (`resumed=True`; queued again if `submit`, else only marked pending for the caller to run).

    Raises:
        ConflictError: the same training is already pending or running.
        InvalidInputError: both d_sae and expansion given for one SAE, or a malformed hook name.
    """
    from mistudio.lm.hooks import is_hf_module_path, parse_hook_name

    for sae in sae_requests(request):
        if sae.d_sae is not None and sae.expansion is not None:
            raise InvalidInputError(f"give d_sae or expansion for the SAE at {sae.hook}, not both")
        for hook in (sae.hook, sae.hook_out):
            if hook is not None and not is_hf_module_path(hook):
                parse_hook_name(hook)  # a malformed name is refused now, not when the job has loaded the model
    found = find_resumable_training(studio, request)  # refuses a second copy of a pending or running one
    job_id = found if resume else None
    if job_id is not None:
        studio.runner.resume(job_id, enqueue=submit)
        with studio.sessions() as s:
            params = s.get_one(JobRecord, job_id).params or {}
        return TrainingStarted(job_id=job_id, training_ids=list(params["training_ids"]), resumed=True,
                               tokens_done=checkpoint_tokens(studio.settings.absolute(params["run_dir"])))
    saes = sae_requests(request)
    with studio.sessions() as s, s.begin():
        records = [TrainingRecord(name=sae.name or _default_name(request, sae), model_name=request.model,
                                  hook_name=sae.hook, hook_name_out=sae.hook_out, dataset=request.dataset,
                                  architecture=sae.architecture, device=request.device, status="pending",
                                  hyperparameters={"request": request.model_dump(), "run_index": i},
                                  n_training_tokens=request.n_tokens, tokens_seen=0)
                   for i, sae in enumerate(saes)]
        s.add_all(records)
        s.flush()
        training_ids = [r.id for r in records]
        run_dir = (Path("trainings") / training_ids[0]).as_posix()  # relative to MISTUDIO_HOME
        for record in records:
            record.run_dir = run_dir
    params = {"request": request.model_dump(), "training_ids": training_ids, "run_dir": run_dir,
              "settings_key": request_key(request)}
    create = studio.runner.submit if submit else studio.runner.create
    job_id = create(JOB_TYPE, params)
    with studio.sessions() as s, s.begin():
        for record in s.scalars(select(TrainingRecord).where(TrainingRecord.id.in_(training_ids))):
            record.job_id = job_id
    return TrainingStarted(job_id=job_id, training_ids=training_ids, resumed=False, tokens_done=0)


def hook_width(loaded: LoadedModel, hook: str) -> int:
    """The width of the activations the stream captures at `hook` (heads flattened).

    Raises:
        InvalidInputError: the hook does not resolve on the model.
    """
    import torch

    from mistudio.extraction.sae_inputs import prepare_input
    from mistudio.lm.hooks import capture_many

    tokens = torch.zeros(1, 2, dtype=torch.int64)
    acts = capture_many(loaded, tokens, None, [hook])[hook]
    return int(prepare_input(acts, None, None, hook, torch.device("cpu")).shape[-1])


def run_config_for(loaded: LoadedModel, request: TrainRequest) -> RunConfig:
    """The run config of a request on a loaded model: each SAE's d_in (and a transcoder's d_out) read from the
    model's hooks, d_sae from `d_sae` or `expansion` (default 8 × d_in).

    Raises:
        InvalidInputError: a hook does not resolve, or a spec is invalid (see `SAESpec`).
    """
    specs = []
    for i, sae in enumerate(sae_requests(request)):
        d_in = hook_width(loaded, sae.hook)
        d_out = hook_width(loaded, sae.hook_out) if sae.hook_out else None
        d_sae = sae.d_sae or max(1, round(d_in * (sae.expansion or DEFAULT_EXPANSION)))
        specs.append(SAESpec(architecture=sae.architecture, hook_name=sae.hook, d_in=d_in, d_sae=d_sae, k=sae.k,
                             l1_coefficient=sae.l1_coefficient, l0_coefficient=sae.l0_coefficient,
                             hook_name_out=sae.hook_out, d_out=d_out, matryoshka_widths=sae.matryoshka_widths,
                             lr=sae.lr, seed=request.seed + i, name=sae.name).resolved())
    return RunConfig(model=request.model, dataset=request.dataset, specs=specs, n_tokens=request.n_tokens,
                     batch_tokens=request.batch_tokens, context_size=request.context_size, seed=request.seed,
                     text_field=request.text_field, split=request.split, eval_windows=request.eval_windows,
                     eval_every_tokens=request.eval_every_tokens,
                     checkpoint_every_tokens=request.checkpoint_every_tokens,
                     normalize_activations=request.normalize_activations,
                     exclude_special_tokens=request.exclude_special_tokens, buffer_windows=request.buffer_windows,
                     forward_batch_windows=request.forward_batch_windows or 16, epochs=request.epochs)


def hyperparameters(cfg: RunConfig, index: int, norm_factors: dict[str, float]) -> dict[str, Any]:
    """Every hyper-parameter of SAE `index` of a run: its spec, its schedule and the run's data settings."""
    spec = cfg.specs[index]
    run = {k: v for k, v in cfg.to_dict().items() if k not in ("specs", "extra")}
    return {**spec.to_dict(), "schedule": cfg.schedules()[index].to_dict(), **run,
            "batch_tokens": cfg.resolved_batch_tokens, "buffer_windows": cfg.resolved_buffer_windows,
            "norm_scaling_factor": norm_factors.get(spec.hook_name), "run_index": index}


def catalogue_trained(studio: Studio, sae: SAE, training_id: str, *, name: str,
                      training_info: dict[str, Any], sparsity: torch.Tensor | None = None) -> str:
    """Save a trained SAE in SAELens's format and catalogue it (source `trained`, linked to `training_id`);
    an SAE already linked to that training (a resumed job that got this far before) is returned as it is."""
    from mistudio.training.save import save_trained

    with studio.sessions() as s:
        existing = s.scalar(select(SAERecord.id).where(SAERecord.training_id == training_id))
    if existing is not None:
        return existing
    studio.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"trained-{training_id}.", dir=studio.settings.tmp_dir))
    try:
        path = save_trained(sae, folder / "sae", training_info=training_info, sparsity=sparsity)
        registered = register_sae_from_path(studio, path, name=name, source="trained", training_id=training_id,
                                            move=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return registered.duplicate_of or registered.id


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill; the resume rewrites it
                continue
    return rows


def training_curves(studio: Studio, training_id: str) -> TrainingCurves:
    """A training's logged steps, its held-out evaluations and the latest evaluation's density histogram (empty
    for a record typed by hand).

    Raises:
        NotFoundError: no training record `training_id`.
    """
    with studio.sessions() as s:
        training = get_training(s, training_id)
    if not training.run_dir:
        return TrainingCurves(training_id=training_id, steps=[], evals=[], density_histogram=None)
    run_dir = studio.settings.absolute(training.run_dir)
    index = int(training.hyperparameters.get("run_index", 0))
    steps = [StepPoint(step=row["step"], tokens=row["tokens"], elapsed_s=row["elapsed_s"], **row["saes"][index])
             for row in _read_jsonl(run_dir / METRICS) if index < len(row.get("saes", []))]
    evals, histogram = [], None
    for row in _read_jsonl(run_dir / EVALS):
        if index >= len(row.get("saes", [])):
            continue
        metrics = row["saes"][index]
        evals.append(EvalPoint(step=row["step"], tokens=row["tokens"],
                               **{k: metrics.get(k) for k in EvalPoint.model_fields if k not in ("step", "tokens")}))
        if metrics.get("density_histogram"):
            histogram = DensityHistogram.model_validate(metrics["density_histogram"])
    return TrainingCurves(training_id=training_id, steps=steps, evals=evals, density_histogram=histogram)


def show_training(studio: Studio, training_id: str) -> Training:
    """One training record.

    Raises:
        NotFoundError: no training record `training_id`.
    """
    with studio.sessions() as s:
        return get_training(s, training_id)

"""The `training` job: load the model, train every SAE of the request on one activation stream, catalogue them.

Progress messages carry tokens, tokens/s, ETA and the main SAE's live L0, explained variance and dead fraction.
A pause or cancel stops at the next step with a checkpoint; a crash or a killed process resumes from the last
periodic checkpoint (`training.run`), so the resumed job never trains on a token twice. The Training records
follow the job (pending, running, paused, interrupted, completed, failed, cancelled) and end with every
hyper-parameter, the tokens seen, the wall time, the device and the final held-out metrics.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mistudio.db.models import Job, utcnow
from mistudio.db.models import Training as TrainingRecord
from mistudio.errors import JobCancelled, JobPaused
from mistudio.jobs.context import JobContext
from mistudio.jobs.registry import register_job_type, register_status_hook
from mistudio.studio import Studio
from mistudio.training.distributed import current
from mistudio.training.launch import lead
from mistudio.training.run import ProgressFn, RunConfig, checkpoint_tokens, clear_checkpoint, run_training
from mistudio.training.schemas import TrainRequest
from mistudio.training.service import JOB_TYPE, catalogue_trained, hyperparameters, run_config_for

STAGES = ["load", "train", "save"]
SUMMARY_METRICS = ("explained_variance", "l0", "dead_fraction", "ce_loss_recovered", "kl_div")


def _update(ctx: JobContext[Studio], training_ids: list[str], **fields: Any) -> None:
    with ctx.session() as s, s.begin():
        for record in s.scalars(select(TrainingRecord).where(TrainingRecord.id.in_(training_ids))):
            for key, value in fields.items():
                setattr(record, key, value)


def progress_message(p: dict[str, Any]) -> str:
    """`12,288/400,000 tok, 5,321 tok/s, ETA 73s, L0 31.9, EV 0.712, dead 0.3%` (the main SAE's live metrics)."""
    eta = p.get("eta_s")
    parts = [f"{p['tokens']:,}/{p['n_tokens']:,} tok", f"{p.get('tokens_per_s') or 0:,.0f} tok/s"]
    if eta is not None:
        parts.append(f"ETA {eta:.0f}s")
    if p.get("saes"):
        main = p["saes"][0]
        parts += [f"L0 {main['l0']:.1f}", f"EV {main['explained_variance']:.3f}", f"dead {main['dead_fraction']:.1%}"]
    return ", ".join(parts)


def _reporter(ctx: JobContext[Studio], training_ids: list[str]) -> ProgressFn:
    """Job progress in [0.05, 0.95] with the message; the records' tokens_seen / wall time every 100 steps."""

    def report(p: dict[str, Any]) -> None:
        ctx.progress(0.05 + 0.9 * p["fraction"], progress_message(p), stage_fraction=p["fraction"])
        if p["step"] % 100 == 0:
            _update(ctx, training_ids, tokens_seen=int(p["tokens"]), wall_time_s=float(p["elapsed_s"]))

    return report


def _final_metrics(evaluation: dict[str, Any], norm_factor: float | None) -> dict[str, Any]:
    return {**{k: v for k, v in evaluation.items() if k != "density_histogram"},
            "density_histogram": evaluation.get("density_histogram"), "norm_scaling_factor": norm_factor}


@register_job_type(JOB_TYPE)
def training_job(ctx: JobContext[Studio], params: dict[str, Any]) -> dict[str, Any]:
    """Job handler: params {request (a TrainRequest), training_ids, run_dir (relative to MISTUDIO_HOME),
    settings_key}."""
    from mistudio.lm.loading import load_model

    studio = ctx.studio
    request = TrainRequest.model_validate(params["request"])
    training_ids: list[str] = list(params["training_ids"])
    run_dir = studio.settings.absolute(params["run_dir"])
    ctx.set_stages(STAGES)
    try:
        ctx.stage("load")
        with ctx.session() as s:
            started = s.get_one(TrainingRecord, training_ids[0]).started_at
        _update(ctx, training_ids, status="running", started_at=started or utcnow())
        loaded = load_model(request.model, device=request.device, dtype=request.dtype)
        cfg: RunConfig = run_config_for(loaded, request)
        _update(ctx, training_ids, device=str(loaded.device))
        for i, training_id in enumerate(training_ids):  # every hyper-parameter, visible while it trains
            _update(ctx, [training_id], hyperparameters=hyperparameters(cfg, i, {}))
        ctx.stage("train")
        dist = current()  # under torchrun: this is rank 0, and the other ranks wait in `launch.follow`
        if dist is not None:
            lead(dist, cfg, run_dir, dtype=request.dtype)
        result = run_training(loaded, cfg, run_dir, progress=_reporter(ctx, training_ids), check=ctx.check_cancelled,
                              dist=dist, device=dist.device if dist is not None else None)
        ctx.stage("save")
        sae_ids, metrics = [], []
        for i, (sae, training_id) in enumerate(zip(result.saes, training_ids, strict=True)):
            hp = hyperparameters(cfg, i, result.norm_factors)
            final = _final_metrics(result.evals[i] if i < len(result.evals) else {},
                                   result.norm_factors.get(cfg.specs[i].hook_name))
            with ctx.session() as s:
                name = s.get_one(TrainingRecord, training_id).name
            info = {"training_id": training_id, "hyperparameters": hp, "tokens_seen": result.tokens_seen,
                    "metrics": {k: final.get(k) for k in SUMMARY_METRICS}, "dataset": cfg.dataset}
            sae_ids.append(catalogue_trained(studio, sae, training_id, name=name, training_info=info,
                                             sparsity=result.sparsity[i] if i < len(result.sparsity) else None))
            metrics.append(final)
            _update(ctx, [training_id], hyperparameters=hp, metrics=final)
        _update(ctx, training_ids, status="completed", tokens_seen=result.tokens_seen,
                wall_time_s=result.wall_time_s, finished_at=utcnow())
        clear_checkpoint(run_dir)  # the SAEs are catalogued; the curves stay
        return {"sae_ids": sae_ids, "training_ids": training_ids, "tokens_seen": result.tokens_seen,
                "steps": result.steps, "wall_time_s": result.wall_time_s,
                "resumed_from_tokens": result.resumed_from_tokens, "data_exhausted": result.data_exhausted,
                "metrics": [{k: m.get(k) for k in SUMMARY_METRICS} for m in metrics]}
    except BaseException as exc:
        status = "paused" if isinstance(exc, JobPaused) else (
            "cancelled" if isinstance(exc, JobCancelled) else "failed")
        _update(ctx, training_ids, status=status, tokens_seen=checkpoint_tokens(run_dir))
        if status == "cancelled":  # nothing will resume it: the checkpoint goes, the curves stay
            clear_checkpoint(run_dir)
        raise


@register_status_hook(JOB_TYPE)
def training_job_status(studio: Studio, session: Session, job: Job) -> None:
    """Keep the Training records in step when the runner interrupts, cancels or re-queues a training job (a
    cancelled run's checkpoint is removed)."""
    params = job.params or {}
    for record in session.scalars(select(TrainingRecord).where(TrainingRecord.id.in_(params.get("training_ids") or []))):
        if record.status != "completed":
            record.status = job.status
    if job.status == "cancelled" and params.get("run_dir"):
        clear_checkpoint(studio.settings.absolute(params["run_dir"]))

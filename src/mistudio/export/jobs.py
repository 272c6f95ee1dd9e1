"""The `export` job type: runs the export pipeline with stages, progress, cancel/pause and crash resume."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mistudio.db.models import ExportRecord, Job, utcnow
from mistudio.errors import JobCancelled, JobPaused
from mistudio.export.config import ExportConfig
from mistudio.export.pipeline import STAGES, ExportCallbacks, build_export
from mistudio.export.service import gather_inputs, work_dir
from mistudio.jobs.context import JobContext
from mistudio.jobs.registry import register_job_type, register_status_hook
from mistudio.studio import Studio


def _update(ctx: JobContext, export_id: str, **fields: Any) -> None:
    with ctx.session() as s, s.begin():
        rec = s.get(ExportRecord, export_id)
        for key, value in fields.items():
            setattr(rec, key, value)


@register_job_type("export")
def export_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Export an SAE; the work folder is keyed by job id, so a resumed job continues from its last batch."""
    studio = ctx.studio
    settings = studio.settings
    export_id = params["export_id"]
    cfg = ExportConfig.model_validate(params["config"])
    ctx.set_stages(STAGES)
    _update(ctx, export_id, status="running", error_message=None)
    out = settings.exports_dir / f"{ctx.job_id}.zip"
    work = work_dir(settings, ctx.job_id)
    current = [0]

    def stage(name: str) -> None:
        current[0] = STAGES.index(name)
        ctx.stage(name)

    def progress(fraction: float, message: str | None) -> None:
        ctx.progress((current[0] + fraction) / len(STAGES), message, stage_fraction=fraction)

    callbacks = ExportCallbacks(stage=stage, progress=progress, check_cancelled=ctx.check_cancelled)
    try:
        inputs = gather_inputs(studio, params["sae_id"], params.get("extraction_id"), load_weights=cfg.wants_saelens)
        result = build_export(inputs, cfg, out, work, callbacks)
    except JobPaused:
        _update(ctx, export_id, status="paused")
        raise
    except JobCancelled:
        _update(ctx, export_id, status="cancelled", finished_at=utcnow())
        shutil.rmtree(work, ignore_errors=True)
        raise
    except Exception as exc:
        _update(ctx, export_id, status="failed", error_message=getattr(exc, "message", None) or str(exc),
                finished_at=utcnow())
        raise
    _update(ctx, export_id, status="completed", output_path=settings.relative_to_home(Path(out)),
            file_size_bytes=result["file_size_bytes"], feature_count=result["feature_count"],
            timings=result["timings"], finished_at=utcnow())
    result["output_path"] = settings.relative_to_home(Path(out))
    result["export_id"] = export_id
    return result



@register_status_hook("export")
def export_job_status(studio: Studio, session: Session, job: Job) -> None:
    """Keep the export record in step when the runner interrupts, cancels or re-queues an export job; a cancelled
    export's work folder is removed (an interrupted one keeps it: resuming continues from it)."""
    rec = session.scalars(select(ExportRecord).where(ExportRecord.job_id == job.id)).first()
    if rec is not None and rec.status != "completed":
        rec.status = job.status
        rec.error_message = job.error_message
        rec.finished_at = job.finished_at
    if job.status == "cancelled":
        shutil.rmtree(work_dir(studio.settings, job.id), ignore_errors=True)

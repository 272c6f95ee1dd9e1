"""REST routes: publish an SAE to the HuggingFace Hub as a job, and read its outcome."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from mistudio.api.deps import get_studio
from mistudio.errors import NotFoundError
from mistudio.export.hf_publish import PublishRequest, PublishResult, PublishStarted, start_publish
from mistudio.jobs.schemas import Job
from mistudio.studio import Studio

router = APIRouter(tags=["publish"])


class PublishStatus(BaseModel):
    """A publish job and, once it completed, what it published."""

    job: Job
    result: PublishResult | None = Field(None, description="Set when the job completed")


@router.post("/saes/{sae_id}/publish/hf", status_code=202, response_model=PublishStarted)
def publish_hf(sae_id: str, body: PublishRequest, studio: Studio = Depends(get_studio)) -> PublishStarted:
    """Start a job that publishes the SAE to a Hub repo (SAELens folder, model card, registry entry)."""
    started = start_publish(studio, sae_id, body)
    studio.runner.enqueue(started.job_id)
    return started


@router.get("/saes/{sae_id}/publish/hf/{job_id}", response_model=PublishStatus)
def publish_status(sae_id: str, job_id: str, studio: Studio = Depends(get_studio)) -> PublishStatus:
    """The publish job's state, with its result once completed."""
    job = studio.runner.get(job_id)
    if job.type != "hf_publish" or job.sae_id != sae_id:
        raise NotFoundError(f"job {job_id} is not a HuggingFace publish of SAE {sae_id}")
    result = PublishResult.model_validate(job.result) if job.status == "completed" and job.result else None
    return PublishStatus(job=job, result=result)

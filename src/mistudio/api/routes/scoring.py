"""REST routes: score an SAE's explanations with an OpenAI-compatible judge model, as a job, and read its outcome."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from mistudio.api.deps import get_studio
from mistudio.autointerp.scoring import JOB_TYPE, start_scoring
from mistudio.autointerp.scoring_schemas import ScoreRequest, ScoreResult, ScoreStarted
from mistudio.errors import NotFoundError
from mistudio.jobs.schemas import Job
from mistudio.studio import Studio

router = APIRouter(tags=["autointerp"])


@router.post("/saes/{sae_id}/score", status_code=202, response_model=ScoreStarted)
def score(sae_id: str, body: ScoreRequest, studio: Studio = Depends(get_studio)) -> ScoreStarted:
    """Start a job scoring the selected explanations (detection | fuzzing | simulation); the API key stays in
    this process as a job secret. Follow it with `GET /jobs/{job_id}`; its result is a `ScoreResult`."""
    started = start_scoring(studio, sae_id, body)
    studio.runner.enqueue(started.job_id)
    return started


class ScoreStatus(BaseModel):
    """A scoring job and, once it completed, what it scored."""

    job: Job
    result: ScoreResult | None = Field(None, description="Set when the job completed")


@router.get("/saes/{sae_id}/score/{job_id}", response_model=ScoreStatus)
def score_status(sae_id: str, job_id: str, studio: Studio = Depends(get_studio)) -> ScoreStatus:
    """The scoring job's state, with its result (scores and per-feature failures) once completed."""
    job = studio.runner.get(job_id)
    if job.type != JOB_TYPE or job.sae_id != sae_id:
        raise NotFoundError(f"job {job_id} is not a scoring job of SAE {sae_id}")
    result = ScoreResult.model_validate(job.result) if job.status == "completed" and job.result else None
    return ScoreStatus(job=job, result=result)

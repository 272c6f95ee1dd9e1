"""REST routes: background jobs (status, progress, cancel/pause/resume, live events)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from mistudio.api.deps import get_studio
from mistudio.jobs.runner import SETTLED
from mistudio.jobs.schemas import Job, JobPage
from mistudio.studio import Studio

router = APIRouter(tags=["jobs"])


class EventStreamResponse(StreamingResponse):
    """A Server-Sent Events stream."""

    media_type = "text/event-stream"


@router.get("/jobs", response_model=JobPage, response_model_exclude_unset=True)
def list_jobs(limit: int = Query(100, ge=1, le=1000), status: str | None = None, sae_id: str | None = None,
              job_type: str | None = Query(None, alias="type",
                                           description="Only jobs of this type (sae_download, extraction, export)"),
              studio: Studio = Depends(get_studio)) -> JobPage:
    """Recent jobs, newest first; a running job whose process died reads `interrupted`."""
    return JobPage(items=studio.runner.list(limit=limit, status=status, sae_id=sae_id, job_type=job_type))


@router.get("/jobs/{job_id}", response_model=Job, response_model_exclude_unset=True)
def get_job(job_id: str, studio: Studio = Depends(get_studio)) -> Job:
    """A job's status, stage, stages with timings, progress and ETA."""
    return studio.runner.get(job_id)


@router.post("/jobs/{job_id}/cancel", response_model=Job, response_model_exclude_unset=True)
def cancel_job(job_id: str, studio: Studio = Depends(get_studio)) -> Job:
    """End a job: a running one stops at its next check point, any other unfinished one (pending, paused,
    interrupted, failed) is cancelled at once; 409 for a completed job."""
    return studio.runner.cancel(job_id)


@router.post("/jobs/{job_id}/pause", response_model=Job, response_model_exclude_unset=True)
def pause_job(job_id: str, studio: Studio = Depends(get_studio)) -> Job:
    """Pause a job at its next check point; resume continues from its last checkpoint."""
    return studio.runner.pause(job_id)


@router.post("/jobs/{job_id}/resume", response_model=Job, response_model_exclude_unset=True)
def resume_job(job_id: str, studio: Studio = Depends(get_studio)) -> Job:
    """Resume a paused, interrupted or failed-resumable job from its last checkpoint; 409 otherwise."""
    return studio.runner.resume(job_id)


@router.get("/jobs/{job_id}/events", response_class=EventStreamResponse, responses={200: {
    "description": "`data: <Job as JSON>` events, one per change of the job's state",
    "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
async def job_events(job_id: str, studio: Studio = Depends(get_studio)) -> EventStreamResponse:
    """Server-Sent Events: the job's state whenever it changes, until it finishes."""
    studio.runner.get(job_id)

    async def stream() -> AsyncIterator[str]:
        last = None
        while True:
            state = await asyncio.to_thread(studio.runner.get, job_id)
            body = json.dumps(state.json_view(), sort_keys=True)
            if body != last:
                yield f"data: {body}\n\n"
                last = body
            if state.status in SETTLED:
                return
            await asyncio.sleep(0.3)

    return EventStreamResponse(stream(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

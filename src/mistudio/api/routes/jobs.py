"""REST routes: background jobs (status, progress, cancel/pause/resume, live events)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from mistudio.api.deps import get_studio
from mistudio.jobs.runner import FINISHED
from mistudio.studio import Studio

router = APIRouter(tags=["jobs"])


@router.get("/jobs")
def list_jobs(limit: int = Query(100, ge=1, le=1000), status: str | None = None, sae_id: str | None = None,
              studio: Studio = Depends(get_studio)) -> dict:
    """Recent jobs, newest first."""
    return {"items": studio.runner.list(limit=limit, status=status, sae_id=sae_id)}


@router.get("/jobs/{job_id}")
def get_job(job_id: str, studio: Studio = Depends(get_studio)) -> dict:
    """A job's status, stage, stages with timings, progress and ETA."""
    return studio.runner.get(job_id)


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: str, studio: Studio = Depends(get_studio)) -> dict:
    """Cancel a job (it stops at its next check point)."""
    return studio.runner.cancel(job_id)


@router.post("/jobs/{job_id}/pause")
def pause_job(job_id: str, studio: Studio = Depends(get_studio)) -> dict:
    """Pause a job at its next check point; resume continues from its last checkpoint."""
    return studio.runner.pause(job_id)


@router.post("/jobs/{job_id}/resume")
def resume_job(job_id: str, studio: Studio = Depends(get_studio)) -> dict:
    """Resume a paused or interrupted job."""
    return studio.runner.resume(job_id)


@router.get("/jobs/{job_id}/events")
async def job_events(job_id: str, studio: Studio = Depends(get_studio)) -> StreamingResponse:
    """Server-Sent Events: the job's state whenever it changes, until it finishes."""
    studio.runner.get(job_id)

    async def stream() -> AsyncIterator[str]:
        last = None
        while True:
            state = await asyncio.to_thread(studio.runner.get, job_id)
            body = json.dumps(state, sort_keys=True)
            if body != last:
                yield f"data: {body}\n\n"
                last = body
            if state["status"] in (*FINISHED, "paused"):
                return
            await asyncio.sleep(0.3)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

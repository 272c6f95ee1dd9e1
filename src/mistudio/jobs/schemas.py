"""Response models of background jobs: a job with its stages, and job lists."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mistudio.db.models import Job as JobRecord
from mistudio.db.models import utcnow

JobStatus = Literal["pending", "running", "paused", "interrupted", "completed", "failed", "cancelled"]
StageStatus = Literal["pending", "running", "paused", "interrupted", "completed", "failed", "cancelled"]


class JobStage(BaseModel):
    """One declared stage of a job; keys other than name and status appear once the stage has started."""

    model_config = ConfigDict(extra="allow")

    name: str
    status: StageStatus
    progress: float | None = Field(None, description="The stage's own progress in [0, 1]")
    started_at: str | None = Field(None, description="ISO 8601 timestamp")
    elapsed_s: float | None = Field(None, description="Seconds spent in the stage so far")


class Job(BaseModel):
    """A background job (download, extraction, export) with progress, stages, ETA and result."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: str = Field(description="Registered job type, e.g. sae_download, extraction, export")
    status: JobStatus
    sae_id: str | None
    params: dict[str, Any]
    progress: float = Field(description="Overall progress in [0, 1]")
    current_stage: str | None
    stages: list[JobStage]
    message: str | None
    error_message: str | None
    error_details: dict[str, Any] | None
    result: dict[str, Any] | None = Field(description="What the job's handler returned (completed jobs)")
    resumable: bool = Field(description="Whether resume continues from the last checkpoint (paused, interrupted "
                            "and most failed jobs)")
    created_at: str | None = Field(description="ISO 8601 timestamp")
    started_at: str | None = Field(description="ISO 8601 timestamp")
    finished_at: str | None = Field(description="ISO 8601 timestamp")
    eta_seconds: float | None = Field(description="Estimated seconds left (running jobs with progress)")

    @classmethod
    def from_record(cls, job: JobRecord) -> Job:
        """The view of a job row; its stages keep only the keys they have (see `json_view`)."""
        return cls.model_validate({
            "id": job.id, "type": job.type, "status": job.status, "sae_id": job.sae_id, "params": job.params,
            "progress": job.progress, "current_stage": job.current_stage, "stages": job.stages or [],
            "message": job.message, "error_message": job.error_message, "error_details": job.error_details,
            "result": job.result, "resumable": job.resumable,
            "created_at": job.created_at.isoformat() if job.created_at else None,
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "eta_seconds": _eta_seconds(job),
        })

    def json_view(self) -> dict[str, Any]:
        """The job as the API serves it: a stage that has not started has only its name and status."""
        return self.model_dump(mode="json", exclude_unset=True)


def _eta_seconds(job: JobRecord) -> float | None:
    if job.status != "running" or not job.started_at or not job.progress or job.progress <= 0:
        return None
    started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=utcnow().tzinfo)
    elapsed = (utcnow() - started).total_seconds()
    return round(elapsed * (1 - job.progress) / job.progress, 1)


class JobPage(BaseModel):
    """Recent jobs, newest first."""

    items: list[Job]

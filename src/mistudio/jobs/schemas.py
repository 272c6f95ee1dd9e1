"""Response models of background jobs: a job with its stages, and job lists."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["pending", "running", "paused", "completed", "failed", "cancelled"]
StageStatus = Literal["pending", "running", "completed", "failed", "cancelled"]


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
    resumable: bool = Field(description="Whether resume continues from the last checkpoint")
    created_at: str | None = Field(description="ISO 8601 timestamp")
    started_at: str | None = Field(description="ISO 8601 timestamp")
    finished_at: str | None = Field(description="ISO 8601 timestamp")
    eta_seconds: float | None = Field(description="Estimated seconds left (running jobs with progress)")


class JobPage(BaseModel):
    """Recent jobs, newest first."""

    items: list[Job]

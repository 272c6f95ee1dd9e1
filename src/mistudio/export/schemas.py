"""Response models of exports: estimates, started jobs, status, export records, validation reports (the
validator's own `ValidationReport`)."""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from mistudio.db.models import ExportRecord
from mistudio.export.validate.report import ValidationIssue, ValidationReport
from mistudio.jobs.schemas import Job
from mistudio.paging import Page

__all__ = ["Export", "ExportEstimate", "ExportPage", "ExportStarted", "ExportStatus", "ExportStatusName",
           "ValidationIssue", "ValidationReport"]

ExportStatusName = Literal["pending", "running", "paused", "interrupted", "completed", "failed", "cancelled"]


class Export(BaseModel):
    """An export record."""

    model_config = ConfigDict(extra="allow")

    id: str
    sae_id: str
    job_id: str | None
    extraction_id: str | None
    config: dict[str, Any] = Field(description="The ExportConfig the export ran with")
    status: ExportStatusName
    output_path: str | None = Field(description="The archive, relative to MISTUDIO_HOME (completed exports)")
    file_size_bytes: int | None
    feature_count: int | None
    timings: dict[str, Any] = Field(description="Seconds per export stage")
    error_message: str | None
    base_export_id: str | None = Field(description="The export an incremental export reused features from")
    created_at: str | None = Field(description="ISO 8601 timestamp")
    finished_at: str | None = Field(description="ISO 8601 timestamp")

    @classmethod
    def from_record(cls, rec: ExportRecord) -> Export:
        """The export record's API view."""
        return cls(id=rec.id, sae_id=rec.sae_id, job_id=rec.job_id, extraction_id=rec.extraction_id,
                   config=rec.config, status=cast(ExportStatusName, rec.status), output_path=rec.output_path,
                   file_size_bytes=rec.file_size_bytes, feature_count=rec.feature_count, timings=rec.timings,
                   error_message=rec.error_message, base_export_id=rec.base_export_id,
                   created_at=rec.created_at.isoformat() if rec.created_at else None,
                   finished_at=rec.finished_at.isoformat() if rec.finished_at else None)


class ExportPage(Page[Export]):
    """One page of exports, newest first."""

    model_config = ConfigDict(extra="allow")


class ExportStarted(BaseModel):
    """A queued export: its job and its export record."""

    model_config = ConfigDict(extra="allow")

    job_id: str
    export_id: str


class ExportEstimate(BaseModel):
    """What an export with a given config would produce, before running it."""

    model_config = ConfigDict(extra="allow")

    n_features: int = Field(description="Features the export would hold")
    size_bytes: int = Field(description="Estimated archive size")
    seconds: float = Field(description="Estimated packaging time")
    missing: list[str] = Field(description="Parts of the extraction that are missing and would be computed")
    n_dead: int = Field(description="Dead features among the selected ones")
    notes: list[str]
    min_examples: int = Field(description="Fewest activation examples a feature needs to be exported")
    problems: list[str] = Field(default_factory=list, description="What stops this export from starting (a local "
                                "model or dataset without an id, a store without the Neuronpedia data); the "
                                "export is refused until they are fixed")


class ExportStatus(BaseModel):
    """An export job (stages, progress, ETA) and its export record."""

    model_config = ConfigDict(extra="allow")

    job: Job
    export: Export

"""Response models of exports: estimates, started jobs, status, export records, validation reports, label imports."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mistudio.jobs.schemas import Job

ExportStatusName = Literal["pending", "running", "paused", "completed", "failed", "cancelled"]


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


class ExportPage(BaseModel):
    """One page of exports, newest first."""

    model_config = ConfigDict(extra="allow")

    items: list[Export]
    total: int
    page: int
    page_size: int


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


class ExportStatus(BaseModel):
    """An export job (stages, progress, ETA) and its export record."""

    model_config = ConfigDict(extra="allow")

    job: Job
    export: Export


class ValidationIssue(BaseModel):
    """One problem in an export: where, what, and how to fix it."""

    model_config = ConfigDict(extra="allow")

    code: str
    location: str = Field(description="File (and field) the issue is in")
    message: str
    fix: str = Field(description="How to fix it")
    fixable: bool = Field(description="Whether `mistudio export validate --fix` can fix it")
    severity: Literal["error", "warning"]


class ValidationReport(BaseModel):
    """The result of validating an export archive or folder."""

    model_config = ConfigDict(extra="allow")

    path: str
    ok: bool = Field(description="No errors (warnings allowed)")
    n_files: int
    n_features: int
    n_errors: int
    n_warnings: int
    n_fixable: int
    issues: list[ValidationIssue]
    text: str = Field(description="The report as readable text")


class LabelsImportResult(BaseModel):
    """What a labels import changed."""

    model_config = ConfigDict(extra="allow")

    imported: int = Field(description="Rows read from the file")
    features: int = Field(description="Distinct features the rows name")
    labels_updated: int = Field(description="Feature summary rows whose label was set")

"""REST routes: Neuronpedia/SAELens export (estimate, start, status, download, validate), labels import, exports."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from mistudio.api.deps import get_session, get_studio
from mistudio.catalog.labels import LabelsImportResult, import_labels, parse_labels
from mistudio.db.models import ExportRecord
from mistudio.errors import InvalidInputError, NotFoundError
from mistudio.export import service
from mistudio.export.config import ExportConfig
from mistudio.export.schemas import (
    Export,
    ExportEstimate,
    ExportPage,
    ExportStarted,
    ExportStatus,
    ValidationReport,
)
from mistudio.export.validate.validator import validate_export
from mistudio.fsutil import safe_join
from mistudio.studio import Studio

router = APIRouter(tags=["exports"])


class ExportRequest(BaseModel):
    config: ExportConfig = Field(default_factory=ExportConfig)
    extraction_id: str | None = None
    base_export_id: str | None = Field(None, description="incremental export: a completed export of this SAE whose "
                                       "unchanged features are reused and merged (GET /exports lists them)")


class ValidateRequest(BaseModel):
    path: str | None = Field(None, description="an export zip/folder inside MISTUDIO_HOME; default: the SAE's latest")
    export_id: str | None = None


@router.post("/saes/{sae_id}/export/estimate", response_model=ExportEstimate, response_model_exclude_unset=True)
def estimate_export(sae_id: str, body: ExportRequest, studio: Studio = Depends(get_studio)) -> ExportEstimate:
    """Archive size, time, feature count and missing data for a config."""
    inputs = service.gather_inputs(studio, sae_id, body.extraction_id, load_weights=False)
    return service.estimate(inputs, body.config)


@router.post("/saes/{sae_id}/export/neuronpedia", status_code=202, response_model=ExportStarted,
             response_model_exclude_unset=True)
def start_export(sae_id: str, body: ExportRequest, studio: Studio = Depends(get_studio)) -> ExportStarted:
    """Start an export job."""
    from mistudio.catalog.service import get_record

    with studio.sessions() as s:
        get_record(s, sae_id)
    if body.config.base_export is not None:
        raise InvalidInputError("config.base_export is a path on the server; send base_export_id (an export id from "
                                "GET /exports) for an incremental export")
    started = service.start_export(studio, sae_id, body.config, body.extraction_id, body.base_export_id)
    studio.runner.enqueue(started.job_id)
    return started


def _job_export(session: Session, sae_id: str, job_id: str) -> ExportRecord:
    """The export record job `job_id` produces, checked to belong to `sae_id`.

    Raises:
        NotFoundError: the job produces no export of this SAE.
    """
    rec = service.export_for_job(session, job_id)
    if rec.sae_id != sae_id:
        raise NotFoundError(f"job {job_id} is not an export of SAE {sae_id}")
    return rec


@router.get("/saes/{sae_id}/export/status/{job_id}", response_model=ExportStatus, response_model_exclude_unset=True)
@router.get("/saes/{sae_id}/export/neuronpedia/status/{job_id}", include_in_schema=False,
            response_model=ExportStatus, response_model_exclude_unset=True)
def export_status(sae_id: str, job_id: str, studio: Studio = Depends(get_studio),
                  session: Session = Depends(get_session)) -> ExportStatus:
    """The job (stages, progress, ETA) and its export record."""
    rec = _job_export(session, sae_id, job_id)
    return ExportStatus(job=studio.runner.get(job_id), export=Export.from_record(rec))


_ZIP: dict[int | str, dict[str, Any]] = {200: {"description": "The export archive", "content": {"application/zip": {
    "schema": {"type": "string", "format": "binary"}}}}}


@router.get("/saes/{sae_id}/export/download/{job_id}", response_class=FileResponse, responses=_ZIP)
@router.get("/saes/{sae_id}/export/neuronpedia/download/{job_id}", include_in_schema=False,
            response_class=FileResponse)
def download_export(sae_id: str, job_id: str, studio: Studio = Depends(get_studio),
                    session: Session = Depends(get_session)) -> FileResponse:
    """Stream the finished archive."""
    rec = _job_export(session, sae_id, job_id)
    path = service.export_path(studio, rec)
    return FileResponse(path, media_type="application/zip", filename=f"mistudio-export-{sae_id}-{job_id}.zip")


@router.post("/saes/{sae_id}/export/validate", response_model=ValidationReport, response_model_exclude_unset=True)
def validate(sae_id: str, body: ValidateRequest, studio: Studio = Depends(get_studio),
             session: Session = Depends(get_session)) -> ValidationReport:
    """Validate an export archive (by path inside the store, export id, or the SAE's latest completed export)."""
    if body.path:
        path = safe_join(studio.settings.home, body.path)
    else:
        items = service.list_exports(session, sae_id, page_size=100).items
        archives = [e.output_path for e in items
                    if e.status == "completed" and e.output_path and body.export_id in (None, e.id)]
        if not archives:
            raise InvalidInputError(f"SAE {sae_id} has no completed export to validate")
        path = studio.settings.absolute(archives[0])
    return validate_export(path)


@router.post("/saes/{sae_id}/labels/import", response_model=LabelsImportResult, response_model_exclude_unset=True)
async def import_labels_route(sae_id: str, file: UploadFile = File(...),
                              session: Session = Depends(get_session)) -> LabelsImportResult:
    """Import explanations/labels from a CSV or JSON upload."""
    rows = parse_labels(await file.read(), file.filename or "labels.csv")
    return import_labels(session, sae_id, rows)


@router.get("/exports", response_model=ExportPage, response_model_exclude_unset=True)
def list_exports(sae_id: str | None = None, page: int = Query(1, ge=1), page_size: int = Query(50, ge=1, le=500),
                 studio: Studio = Depends(get_studio)) -> ExportPage:
    """Exports, newest first (one whose job's process died reads `interrupted`)."""
    studio.runner.reconcile()
    with studio.sessions() as session:
        return service.list_exports(session, sae_id, page, page_size)


@router.delete("/exports/{export_id}", status_code=204, response_model=None)
def delete_export(export_id: str, studio: Studio = Depends(get_studio)) -> None:
    """Delete an export: its archive, its work folder and its record (409 while its job runs)."""
    service.delete_export(studio, export_id)

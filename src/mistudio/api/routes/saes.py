"""REST routes: the SAE catalog (list, create/import, show, delete, download from the Hub, convert,
configuration, linking to a training record; the /trainings routes are in `routes/training.py`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from mistudio.api.deps import get_session, get_studio, path_pattern, scrub_paths
from mistudio.catalog import service
from mistudio.catalog.query import SAEQuery, extraction_counts, list_saes
from mistudio.catalog.schemas import (
    SAE,
    ConvertResult,
    DownloadStarted,
    SAEConfigView,
    SAEPage,
    SAEStatistics,
)
from mistudio.errors import InvalidInputError, MiStudioError
from mistudio.studio import Studio

router = APIRouter(tags=["saes"])


class ImportRequest(BaseModel):
    path: str = Field(description="A folder or .zip/.tar archive on the server holding the SAE files; it must lie "
                                  "inside a folder of MISTUDIO_IMPORT_ROOTS (else 403).")
    name: str | None = None
    source: Literal["upload", "trained"] = "upload"
    training_id: str | None = Field(None, description="Training record of a trained SAE.")
    model_name: str | None = Field(None, description="Model the SAE reads, when its files do not say.")
    hook_name: str | None = Field(None, description="TransformerLens hook it reads, when its files do not say.")


class DownloadRequest(BaseModel):
    repo_id: str = Field(description="HuggingFace repository id, e.g. google/gemma-scope-2b-pt-res")
    path_in_repo: str | None = Field(None, description="Folder of the SAE inside the repository.")
    layer: int | None = Field(None, description="Gemma Scope layer (with width and l0 instead of path_in_repo).")
    width: str | None = Field(None, description="Gemma Scope width, e.g. 16k")
    l0: int | None = Field(None, description="Gemma Scope average L0")
    revision: str | None = None
    token: str | None = Field(None, description="HuggingFace token for gated/private repositories.")
    name: str | None = None


class ConvertRequest(BaseModel):
    to: Literal["saelens", "mistudio"]
    out_dir: str | None = None


class LinkRequest(BaseModel):
    training_id: str


def _form_text(form: FormData, key: str) -> str | None:
    """A text field of a multipart form; None when missing or empty."""
    value = form.get(key)
    return value if isinstance(value, str) and value else None


@router.get("/saes", response_model=SAEPage)
def get_saes(model: str | None = None, layer: int | None = None, source: str | None = None,
             architecture: str | None = None, search: str | None = None, sort: str = "created_at",
             order: str = "desc", page: int = Query(1, ge=1), page_size: int = Query(50, ge=1, le=1000),
             session: Session = Depends(get_session)) -> SAEPage:
    """List catalogued SAEs with filters, search, sorting and pagination."""
    return list_saes(session, SAEQuery(model=model, layer=layer, source=source, architecture=architecture,
                                       search=search, sort=sort, order=order, page=page, page_size=page_size))


def _save_upload(upload: UploadFile, target: Path, max_bytes: int) -> None:
    """Copy an uploaded file to `target`, refusing more than `max_bytes`.

    Raises:
        InvalidInputError: the upload is larger than `max_bytes` (MISTUDIO_MAX_IMPORT_BYTES).
    """
    written = 0
    with open(target, "wb") as out:
        while chunk := upload.file.read(1 << 20):
            written += len(chunk)
            if written > max_bytes:
                raise InvalidInputError(f"the upload is larger than MISTUDIO_MAX_IMPORT_BYTES ({max_bytes} bytes); "
                                        "import fewer files or ask the operator to raise the limit")
            out.write(chunk)


@router.post("/saes", status_code=201, response_model=SAE,
             responses={200: {"model": SAE, "description": "The same weights and config were already catalogued: "
                                                          "that SAE, with `duplicate_of` set; nothing was stored"},
                        403: {"description": "`path` is outside MISTUDIO_IMPORT_ROOTS (or none are set)"}})
async def create_sae(request: Request, response: Response, studio: Studio = Depends(get_studio)) -> SAE:
    """Import an SAE: a multipart upload (`file`, `name`), or JSON `{path, name}` for files on the server, allowed
    only inside the folders of MISTUDIO_IMPORT_ROOTS. The files are checked (tensors against the config,
    truncation, NaN/Inf, hook) before the SAE is catalogued."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInputError("multipart upload needs a `file` field holding a .zip or .tar archive")
        filename = Path(upload.filename or "upload.zip").name or "upload.zip"
        studio.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=studio.settings.tmp_dir) as tmp:
            target = Path(tmp) / filename
            try:
                await run_in_threadpool(_save_upload, upload, target, studio.settings.max_import_bytes)
                sae = await run_in_threadpool(
                    service.import_local, studio, target, name=_form_text(form, "name"), original_name=filename,
                    model_name=_form_text(form, "model_name"), hook_name=_form_text(form, "hook_name"))
            except MiStudioError as exc:
                upload_paths = [(path_pattern(target), filename), (path_pattern(tmp), "the upload")]
                exc.message = scrub_paths(exc.message, upload_paths)
                exc.details = scrub_paths(exc.details, upload_paths)
                raise
    else:
        try:
            body = ImportRequest.model_validate(await request.json())
        except ValueError as exc:
            raise InvalidInputError(f"send JSON {{path, name}} or a multipart file upload ({exc})") from None
        sae = await run_in_threadpool(
            service.import_local, studio, body.path, name=body.name, source=body.source,
            training_id=body.training_id, model_name=body.model_name, hook_name=body.hook_name,
            allowed_roots=studio.settings.import_root_paths)
    if sae.duplicate_of:
        response.status_code = 200
    return sae


@router.get("/saes/{sae_id}", response_model=SAE)
def get_sae(sae_id: str, session: Session = Depends(get_session)) -> SAE:
    """One SAE's catalog record."""
    record = service.get_record(session, sae_id)
    return SAE.from_record(record, *extraction_counts(session, [sae_id]).get(sae_id, (0, None)))


@router.get("/saes/{sae_id}/statistics", response_model=SAEStatistics, response_model_exclude_unset=True)
def get_sae_statistics(sae_id: str, studio: Studio = Depends(get_studio)) -> SAEStatistics:
    """Weight statistics (decoder norms, dead decoder rows), size, L0 / explained variance when known."""
    return service.sae_statistics(studio, sae_id)


@router.delete("/saes/{sae_id}", status_code=204, response_class=Response)
def delete_sae(sae_id: str, studio: Studio = Depends(get_studio)) -> Response:
    """Delete an SAE's files and rows."""
    service.delete_sae(studio, sae_id)
    return Response(status_code=204)


@router.post("/saes/download-hf", status_code=202, response_model=DownloadStarted)
def download_hf(body: DownloadRequest, studio: Studio = Depends(get_studio)) -> DownloadStarted:
    """Start downloading an SAE from the HuggingFace Hub; returns the job and SAE ids."""
    started = service.start_hf_download(studio, body.repo_id, body.path_in_repo, layer=body.layer,
                                        width=body.width, l0=body.l0, revision=body.revision, token=body.token,
                                        name=body.name)
    studio.runner.enqueue(started.job_id)
    return started


@router.post("/saes/{sae_id}/convert", response_model=ConvertResult)
def convert_sae(sae_id: str, body: ConvertRequest, studio: Studio = Depends(get_studio)) -> ConvertResult:
    """Write the SAE in SAELens or miStudio-native format."""
    return service.convert_catalogued(studio, sae_id, body.to, body.out_dir)


@router.get("/saes/{sae_id}/config", response_model=SAEConfigView)
def get_config(sae_id: str, studio: Studio = Depends(get_studio)) -> SAEConfigView:
    """The SAE's configuration as read from its files."""
    return service.sae_config(studio, sae_id)


@router.post("/saes/{sae_id}/link", response_model=SAE)
def link(sae_id: str, body: LinkRequest, session: Session = Depends(get_session)) -> SAE:
    """Link the SAE to a training record."""
    return service.link_training(session, sae_id, body.training_id)

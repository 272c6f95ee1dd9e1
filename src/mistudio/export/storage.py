"""The store on disk: how much each SAE takes (weights, feature stores, export archives, work folders), and
removing what nothing refers to any more (work folders of finished or vanished jobs, archives without a record,
feature stores of deleted SAEs)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy import select

from mistudio.db.models import ExportRecord, Extraction, Job, SAERecord
from mistudio.export.service import work_dir
from mistudio.fsutil import dir_size
from mistudio.hub.download import partial_dir
from mistudio.studio import Studio

# a job in one of these may still use its work folder (it runs, or can resume from it)
_KEEPS_WORK = ("pending", "running", "paused", "interrupted")
# transient folders (imports, uploads, conversions) younger than this may belong to a command still running
MIN_AGE_S = 3600.0


class SAEDiskUsage(BaseModel):
    """Bytes one SAE takes in the store."""

    sae_id: str
    name: str
    weights_bytes: int = Field(description="Its files under saes/")
    features_bytes: int = Field(description="Its feature stores under features/")
    exports_bytes: int = Field(description="Its export archives under exports/")
    work_bytes: int = Field(description="Work folders of its jobs and downloads under tmp/")
    total_bytes: int


class DiskUsage(BaseModel):
    """The store's disk usage, per SAE, and what `collect_garbage` would free."""

    home: str
    saes: list[SAEDiskUsage]
    total_bytes: int = Field(description="Everything under the home folder (database included)")
    orphaned_bytes: int = Field(description="What `mistudio gc` would remove")


class Garbage(BaseModel):
    """One thing nothing refers to any more."""

    path: str = Field(description="Relative to the home folder")
    bytes: int
    reason: str


class GarbageReport(BaseModel):
    """What `collect_garbage` removed (or, on a dry run, would remove)."""

    removed: list[Garbage]
    freed_bytes: int
    dry_run: bool


def _size(path: Path) -> int:
    return dir_size(path) if path.exists() else 0


def find_garbage(studio: Studio, min_age_s: float = MIN_AGE_S) -> list[Garbage]:
    """Work folders, archives and feature stores that nothing refers to; never those of a job that runs or can
    resume, nor transient folders younger than `min_age_s`."""
    settings = studio.settings
    studio.runner.reconcile()  # a job whose process died no longer runs
    with studio.sessions() as s:
        jobs = {job_id: (status, resumable) for job_id, status, resumable in
                s.execute(select(Job.id, Job.status, Job.resumable))}
        saes = {sae_id: status for sae_id, status in s.execute(select(SAERecord.id, SAERecord.status))}
        archives = {p for p in s.scalars(select(ExportRecord.output_path)) if p}
        extractions = set(s.scalars(select(Extraction.id)))

    def job_keeps(job_id: str) -> bool:
        status, resumable = jobs.get(job_id, ("missing", False))
        return status in _KEEPS_WORK or (status == "failed" and resumable)

    found: list[Garbage] = []

    def add(path: Path, reason: str) -> None:
        found.append(Garbage(path=settings.relative_to_home(path), bytes=_size(path), reason=reason))

    now = time.time()
    for entry in sorted(settings.tmp_dir.iterdir()) if settings.tmp_dir.exists() else []:
        name = entry.name
        if name.startswith("export-"):
            job_id = name.removeprefix("export-")
            if not job_keeps(job_id):
                add(entry, f"work folder of export job {job_id}, which is {jobs.get(job_id, ('gone',))[0]}")
        elif name.startswith(("download-", ".download-")):
            sae_id = name.removeprefix(".").removeprefix("download-").removesuffix(".partial")
            if saes.get(sae_id) in (None, "ready"):
                add(entry, f"download folder of SAE {sae_id}, which is {saes.get(sae_id) or 'deleted'}")
        elif now - entry.stat().st_mtime > min_age_s:
            add(entry, f"temporary folder untouched for over {min_age_s / 3600:g} h")
    if settings.exports_dir.exists():
        for entry in sorted(settings.exports_dir.iterdir()):
            rel = settings.relative_to_home(entry)
            job_id = entry.name.removeprefix(".").split(".zip")[0]
            if rel not in archives and not job_keeps(job_id):
                add(entry, "archive without an export record" if entry.suffix == ".zip" else "partial archive")
    if settings.features_dir.exists():
        for sae_dir in sorted(p for p in settings.features_dir.iterdir() if p.is_dir()):
            if sae_dir.name not in saes:
                add(sae_dir, f"feature stores of SAE {sae_dir.name}, which was deleted")
                continue
            for store in sorted(p for p in sae_dir.iterdir() if p.is_dir()):
                if store.name not in extractions:
                    add(store, f"feature store of extraction {store.name}, which has no record")
    return found


def collect_garbage(studio: Studio, dry_run: bool = False, min_age_s: float = MIN_AGE_S) -> GarbageReport:
    """Remove what `find_garbage` finds (nothing on a dry run)."""
    found = find_garbage(studio, min_age_s)
    if not dry_run:
        for item in found:
            path = studio.settings.absolute(item.path)
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return GarbageReport(removed=found, freed_bytes=sum(g.bytes for g in found), dry_run=dry_run)


def disk_usage(studio: Studio) -> DiskUsage:
    """Bytes per SAE (weights, feature stores, export archives, work folders) and in all."""
    settings = studio.settings
    with studio.sessions() as s:
        saes = list(s.execute(select(SAERecord.id, SAERecord.name, SAERecord.local_path).order_by(SAERecord.name)))
        archives: dict[str, list[str]] = {}
        for sae_id, path in s.execute(select(ExportRecord.sae_id, ExportRecord.output_path)):
            if path:
                archives.setdefault(sae_id, []).append(path)
        job_ids: dict[str, list[str]] = {}
        for job_id, job_sae in s.execute(select(Job.id, Job.sae_id).where(Job.sae_id.is_not(None))):
            if job_sae is not None:
                job_ids.setdefault(job_sae, []).append(job_id)
    rows = []
    for sae_id, name, local_path in saes:
        weights = _size(settings.absolute(local_path)) if local_path else 0
        features = _size(settings.features_dir / sae_id)
        exports = sum(_size(settings.absolute(p)) for p in archives.get(sae_id, []))
        download = settings.tmp_dir / f"download-{sae_id}"
        work = _size(download) + _size(partial_dir(download)) + sum(
            _size(work_dir(settings, j)) for j in job_ids.get(sae_id, []))
        rows.append(SAEDiskUsage(sae_id=sae_id, name=name, weights_bytes=weights, features_bytes=features,
                                 exports_bytes=exports, work_bytes=work,
                                 total_bytes=weights + features + exports + work))
    return DiskUsage(home=str(settings.home), saes=rows, total_bytes=_size(settings.home),
                     orphaned_bytes=sum(g.bytes for g in find_garbage(studio)))

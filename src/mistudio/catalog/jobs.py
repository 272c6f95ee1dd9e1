"""The `sae_download` job: fetch an SAE's files from the HuggingFace Hub, detect its format and
fill in its catalog row."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from mistudio.catalog.import_checks import run_import_checks
from mistudio.catalog.service import apply_detected, get_record, registry_data_for, source_for
from mistudio.db.models import SAERecord, utcnow
from mistudio.errors import JobPaused, MiStudioError
from mistudio.fsutil import dir_size
from mistudio.jobs.context import JobContext
from mistudio.jobs.registry import register_job_type
from mistudio.saes.formats import find_saes
from mistudio.saes.registry import apply_registry_data
from mistudio.studio import Studio


def _mark(ctx: JobContext[Studio], sae_id: str, **fields: Any) -> None:
    with ctx.session() as s, s.begin():
        record = s.get(SAERecord, sae_id)
        if record is not None:
            for key, value in fields.items():
                setattr(record, key, value)
            record.updated_at = utcnow()


@register_job_type("sae_download")
def download_job(ctx: JobContext[Studio], params: dict[str, Any]) -> dict[str, Any]:
    """Download → detect (applying the SAELens registry's data when a release lists the SAE) → move into the
    store; the partial download is kept for a resume."""
    from mistudio.hub.download import download_sae

    settings = ctx.studio.settings
    sae_id, repo_id, path_in_repo = params["sae_id"], params["repo_id"], params.get("path_in_repo") or ""
    partial = settings.tmp_dir / f"download-{sae_id}"
    ctx.set_stages(["downloading", "detecting format", "registering"])
    _mark(ctx, sae_id, status="downloading", error_message=None)
    try:
        ctx.stage("downloading")

        def on_bytes(done: int, total: int) -> None:
            fraction = done / total if total else 0.0
            ctx.progress(0.95 * fraction, message=f"{done}/{total} bytes", stage_fraction=fraction)

        shutil.rmtree(partial, ignore_errors=True)  # a finished earlier attempt; `.partial` files resume
        result = download_sae(repo_id, path_in_repo, partial, revision=params.get("revision"),
                              token=ctx.secret("token") or params.get("token") or settings.hf_token, progress=on_bytes,
                              should_cancel=ctx.should_cancel)
        ctx.check_cancelled(force=True)
        ctx.stage("detecting format")
        hints = {"repo_id": repo_id, "path_in_repo": path_in_repo}
        found = find_saes(Path(result.sae_dir), hints)
        if len(found) != 1:
            raise MiStudioError(f"{repo_id}/{path_in_repo} holds {len(found)} SAEs; choose one with --path "
                                "(`mistudio sae browse` lists them)")
        detected = found[0]
        # a SAELens release lists it (by the path asked for, or the SAE path it resolved to): its overrides,
        # scaling factor and ids
        registry = params.get("registry") or registry_data_for(repo_id, result.sae_path)
        if registry:
            apply_registry_data(detected.config, registry)
        report = run_import_checks(detected)  # the same checks as a local import, before anything is "ready"
        ctx.stage("registering")
        target = settings.saes_dir / sae_id
        if target.exists():
            shutil.rmtree(target)
        tmp_target = settings.saes_dir / f".{sae_id}.incoming"
        shutil.rmtree(tmp_target, ignore_errors=True)
        tmp_target.mkdir(parents=True)
        for name in detected.files:
            (tmp_target / name).parent.mkdir(parents=True, exist_ok=True)  # e.g. Llama Scope's checkpoints/
            shutil.copy2(detected.root / name, tmp_target / name)
        tmp_target.rename(target)
        with ctx.session() as s, s.begin():
            record = get_record(s, sae_id)
            apply_detected(record, detected)
            record.source = source_for(repo_id, detected.format)
            record.status, record.revision = "ready", result.commit_sha
            record.local_path = settings.relative_to_home(target)
            record.size_bytes = dir_size(target)
            record.error_message = None
            record.metadata_json = {**(record.metadata_json or {}), "content_sha256": report.fingerprint,
                                    "import_checks": report.to_dict()}
            record.updated_at = utcnow()
        shutil.rmtree(partial, ignore_errors=True)
        ctx.progress(1.0, message="done")
        return {"sae_id": sae_id, "commit_sha": result.commit_sha, "bytes": result.total_bytes,
                "format": detected.format}
    except JobPaused:
        _mark(ctx, sae_id, status="downloading", error_message="paused; resume the job to continue")
        raise
    except BaseException as exc:
        message = exc.message if isinstance(exc, MiStudioError) else f"{type(exc).__name__}: {exc}"
        _mark(ctx, sae_id, status="error", error_message=message)
        raise

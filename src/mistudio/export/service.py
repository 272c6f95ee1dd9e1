"""Export service: gather an SAE's export inputs from the studio, estimate, start export jobs, list exports."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mistudio.db.models import Explanation, ExportRecord, Extraction, FeatureSummary
from mistudio.errors import InvalidInputError, NotFoundError
from mistudio.export.config import ExportConfig
from mistudio.export.pipeline import ExportInputs, SAEInfo
from mistudio.export.prepare import ExplanationDoc
from mistudio.export.schemas import Export, ExportEstimate, ExportPage, ExportStarted
from mistudio.export.selection import select_features
from mistudio.export.source import manifest_value
from mistudio.export.validate.values import MIN_EXAMPLES
from mistudio.export.workers import default_workers
from mistudio.studio import Studio

# measured by benchmarks/bench_export.py on realistic data (docs/export.md; 2 cores, 20 examples × 128 tokens),
# scaled linearly with examples × context size: archive bytes per feature of features/, of the bulk-import rows
# (activation rows without their text, plus the text of each distinct prompt window, which the rows ordered by
# window store about once), of SAEDashboard's batch files; packaging seconds per feature with one process and
# with a worker per core
_FEATURE_DOC_BYTES = 9_700
_BULK_ROW_BYTES = 3_300
_WINDOW_TEXT_BYTES = 5_100  # the 20 examples' token text of one feature, compressed on its own
_SAEDASHBOARD_BYTES = 7_800
_SECONDS_SERIAL = 0.0068
_SECONDS_PARALLEL = 0.0026


def latest_extraction(session: Session, sae_id: str, extraction_id: str | None = None) -> Extraction:
    """The requested extraction, or the SAE's newest completed one."""
    if extraction_id:
        ext = session.get(Extraction, extraction_id)
        if ext is None or ext.sae_id != sae_id:
            raise NotFoundError(f"extraction {extraction_id} of SAE {sae_id} not found")
        return ext
    ext = session.scalars(select(Extraction).where(Extraction.sae_id == sae_id, Extraction.status == "completed")
                          .order_by(Extraction.created_at.desc())).first()
    if ext is None:
        raise InvalidInputError(f"SAE {sae_id} has no completed extraction; run `mistudio extract` first")
    return ext


def explanations_for(session: Session, sae_id: str) -> dict[int, list[ExplanationDoc]]:
    """Every explanation of the SAE, per feature, oldest first."""
    out: dict[int, list[ExplanationDoc]] = {}
    rows = session.scalars(select(Explanation).where(Explanation.sae_id == sae_id)
                           .order_by(Explanation.feature_index, Explanation.created_at, Explanation.id))
    for e in rows:
        out.setdefault(e.feature_index, []).append({
            "description": e.description, "method": e.method, "model": e.model, "score": e.score,
            "created_at": e.created_at.isoformat() if e.created_at else None})
    return out


def labels_for(session: Session, extraction_id: str) -> dict[int, tuple[str | None, str | None]]:
    """(label, category) per feature of an extraction."""
    rows = session.execute(select(FeatureSummary.feature_index, FeatureSummary.label, FeatureSummary.category)
                           .where(FeatureSummary.extraction_id == extraction_id))
    return {i: (label, cat) for i, label, cat in rows if label or cat}


def gather_inputs(studio: Studio, sae_id: str, extraction_id: str | None = None,
                  load_weights: bool = True) -> ExportInputs:
    """Everything an export of `sae_id` reads: SAE weights, feature store, explanations, labels."""
    from mistudio.catalog.service import get_record, load_sae_for
    from mistudio.dashboards.reader import StoreDashboards
    from mistudio.store.feature_store import open_store

    with studio.sessions() as s:
        record = get_record(s, sae_id)
        ext = latest_extraction(s, sae_id, extraction_id)
        if not ext.store_path:
            raise InvalidInputError(f"extraction {ext.id} has no feature store")
        store_path, ext_id, model_name = ext.store_path, ext.id, ext.model_name
        explanations, labels = explanations_for(s, sae_id), labels_for(s, ext.id)
        d_sae = record.d_sae
    store = open_store(studio.settings.absolute(store_path))
    source = StoreDashboards(store)
    sae = load_sae_for(studio, sae_id) if load_weights else None
    if sae is not None:
        info = SAEInfo.from_sae(sae, sae_id)
    else:
        info = SAEInfo(sae_id=sae_id, model_name=record.model_name, hook_name=record.hook_name, layer=record.layer,
                       d_in=record.d_in or 1, d_sae=d_sae or source.n_features,
                       architecture=record.architecture or "standard")

    def compute_part(part: str) -> None:
        if part != "logit_lens" or sae is None:
            raise InvalidInputError(f"the feature store lacks '{part}'; re-run the extraction to compute it")
        from mistudio.extraction.finalize import ensure_parts
        from mistudio.lm.loading import load_model

        name = model_name or info.model_name
        if name is None:
            raise InvalidInputError("neither the extraction nor the SAE names a model; the logit lens needs one")
        ensure_parts(store, load_model(name), sae)

    return ExportInputs(source=source, info=info, sae=sae, explanations=explanations, labels=labels,
                        extraction_id=ext_id, compute_part=compute_part)


def estimate(inputs: ExportInputs, cfg: ExportConfig) -> ExportEstimate:
    """Archive size, packaging time, feature count and the data that is missing and will be computed."""
    summary = inputs.source.summary_arrays()
    indices = select_features(cfg.selection, inputs.source.n_features, summary, inputs.labels)
    manifest = inputs.source.manifest or {}
    context_size = int(manifest_value(manifest, "context_size", default=0) or 128)
    scale = cfg.n_examples / 20 * context_size / 128
    has = getattr(inputs.source, "has", None)
    missing = [p for p in ("top_examples", "logit_lens", "histograms", "vocab") if has is not None and not has(p)]
    dead = int(summary["dead"][indices].sum())
    weights = inputs.info.d_sae * inputs.info.d_in * 2 * 4 if cfg.wants_saelens else 0
    n = len(indices)
    per_feature = float(_FEATURE_DOC_BYTES)
    if cfg.wants_neuronpedia:
        windows = int(manifest_value(manifest, "n_windows", "n_prompts", default=0)) or n * cfg.n_examples
        shared = min(1.0, windows / max(1, n * cfg.n_examples))  # distinct windows per exported example
        per_feature += _BULK_ROW_BYTES + _WINDOW_TEXT_BYTES * shared
        per_feature += _SAEDASHBOARD_BYTES if cfg.saedashboard_batches else 0
    per_second = _SECONDS_PARALLEL if default_workers(n, cfg.workers) > 1 else _SECONDS_SERIAL
    notes = [f"{dead} dead feature(s) have no examples and are left out of the Neuronpedia batches"] if dead else []
    return ExportEstimate(n_features=n, size_bytes=int(n * per_feature * scale + weights),
                          seconds=round(n * per_second * scale + (60.0 if "logit_lens" in missing else 0.0), 1),
                          missing=missing, n_dead=dead, notes=notes, min_examples=MIN_EXAMPLES)


def start_export(studio: Studio, sae_id: str, cfg: ExportConfig, extraction_id: str | None = None,
                 base_export_id: str | None = None) -> ExportStarted:
    """Create the export record and queue its job. `base_export_id` makes it incremental: the finished
    export of the same SAE whose unchanged features are reused.

    Raises:
        NotFoundError: no such extraction or base export.
        InvalidInputError: the SAE has no completed extraction, or the base export has no archive.
    """
    with studio.sessions() as s, s.begin():
        ext = latest_extraction(s, sae_id, extraction_id)
        if base_export_id is not None:
            cfg = cfg.model_copy(update={"base_export": str(_finished_archive(studio, s, sae_id, base_export_id))})
        record = ExportRecord(sae_id=sae_id, extraction_id=ext.id, config=cfg.model_dump(), status="pending",
                              base_export_id=base_export_id)
        s.add(record)
        s.flush()
        export_id = record.id
    params = {"export_id": export_id, "sae_id": sae_id, "extraction_id": ext.id, "config": cfg.model_dump()}
    job_id = studio.runner.create("export", params, sae_id)
    with studio.sessions() as s, s.begin():
        s.execute(update(ExportRecord).where(ExportRecord.id == export_id).values(job_id=job_id))
    return ExportStarted(job_id=job_id, export_id=export_id)


def _finished_archive(studio: Studio, session: Session, sae_id: str, export_id: str) -> Path:
    """The archive of a completed export of `sae_id`, or a clear error."""
    rec = session.get(ExportRecord, export_id)
    if rec is None or rec.sae_id != sae_id:
        raise NotFoundError(f"export {export_id} of SAE {sae_id} not found")
    path = studio.settings.absolute(rec.output_path) if rec.output_path else None
    if rec.status != "completed" or path is None or not path.exists():
        raise InvalidInputError(f"export {export_id} is {rec.status} and has no archive to build on; choose a "
                                "completed export, or export everything")
    return path


def list_exports(session: Session, sae_id: str | None = None, page: int = 1, page_size: int = 50) -> ExportPage:
    """Exports, newest first, paginated."""
    from sqlalchemy import func

    q = select(ExportRecord)
    if sae_id:
        q = q.where(ExportRecord.sae_id == sae_id)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(q.order_by(ExportRecord.created_at.desc()).offset((page - 1) * page_size).limit(page_size))
    return ExportPage(items=[Export.from_record(r) for r in rows], total=total, page=page, page_size=page_size)


def export_for_job(session: Session, job_id: str) -> ExportRecord:
    """The export record a job produces."""
    rec = session.scalars(select(ExportRecord).where(ExportRecord.job_id == job_id)).first()
    if rec is None:
        raise NotFoundError(f"no export for job {job_id}")
    return rec


def export_path(studio: Studio, rec: ExportRecord) -> Path:
    """The finished archive of an export."""
    if rec.status != "completed" or not rec.output_path:
        raise InvalidInputError(f"export {rec.id} is {rec.status}; download it when it has completed")
    return studio.settings.absolute(rec.output_path)

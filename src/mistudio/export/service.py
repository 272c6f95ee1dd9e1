"""Export service: gather an SAE's export inputs from the studio, estimate, start export jobs, list exports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mistudio.catalog.explanations import explanations_by_feature
from mistudio.db.models import ExportRecord, Extraction, FeatureSummary
from mistudio.errors import ConflictError, InvalidInputError, NotFoundError
from mistudio.export.config import ExportConfig
from mistudio.export.prepare import ExplanationDoc, explanation_doc
from mistudio.export.schemas import Export, ExportEstimate, ExportPage, ExportStarted
from mistudio.export.selection import select_features
from mistudio.export.source import manifest_value
from mistudio.export.validate.values import MIN_EXAMPLES
from mistudio.export.workers import default_workers
from mistudio.settings import Settings
from mistudio.studio import Studio

if TYPE_CHECKING:  # the pipeline loads torch; listing and deleting exports never need it
    from mistudio.export.pipeline import ExportInputs

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
# the sampled estimate: how many features it exports for real; how much of a worker each pool process gains and
# what starting the pools costs (fork server with its imports, workers opening the store; measured on 2 shared
# cores, where 2 workers make an export about 1.1x faster); how fast the SAELens weights are written
_SAMPLE_FEATURES = 32
_PARALLEL_EFFICIENCY = 0.55
_POOL_START_S = 3.0
_WEIGHTS_BYTES_PER_S = 200e6


def work_dir(settings: Settings, job_id: str) -> Path:
    """The work folder of export job `job_id` (finished batches, kept so a resumed job continues)."""
    return settings.tmp_dir / f"export-{job_id}"


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


MANUAL_METHOD = "manual"  # the method of an explanation typed as a label in the UI (or set through the API)


def explanations_for(session: Session, sae_id: str,
                     labels: dict[int, tuple[str | None, str | None]] | None = None) -> dict[int, list[ExplanationDoc]]:
    """Every explanation of the SAE with its scores, per feature, oldest first: the explanations of
    `catalog.explanations` (typed, imported, generated) plus each feature's label (`labels`, as `labels_for` reads
    them: typed in the UI or set through `PUT …/label`) when no explanation already holds its text."""
    out: dict[int, list[ExplanationDoc]] = {}
    for index, views in explanations_by_feature(session, sae_id).items():
        out[index] = [explanation_doc(v.model_dump()) for v in views]
    for index, (label, _category) in sorted((labels or {}).items()):
        text = (label or "").strip()
        if text and text not in {e["description"] for e in out.get(index, [])}:
            out.setdefault(index, []).append(explanation_doc({"description": text, "method": MANUAL_METHOD,
                                                              "source": "typed"}))
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
    from mistudio.export.pipeline import ExportInputs, SAEInfo
    from mistudio.export.source import StoreNeuronpedia
    from mistudio.store.feature_store import open_store

    with studio.sessions() as s:
        record = get_record(s, sae_id)
        ext = latest_extraction(s, sae_id, extraction_id)
        if not ext.store_path:
            raise InvalidInputError(f"extraction {ext.id} has no feature store")
        store_path, ext_id, model_name = ext.store_path, ext.id, ext.model_name
        labels = labels_for(s, ext.id)
        explanations = explanations_for(s, sae_id, labels)
        d_sae = record.d_sae
    store = open_store(studio.settings.absolute(store_path))
    source = StoreDashboards(store)
    sae = load_sae_for(studio, sae_id) if load_weights else None
    if sae is not None:
        info = SAEInfo.from_sae(sae, sae_id)
    else:
        sae_config = store.manifest.get("sae_config") or {}
        info = SAEInfo(sae_id=sae_id, model_name=record.model_name, hook_name=record.hook_name, layer=record.layer,
                       d_in=record.d_in or 1, d_sae=d_sae or source.n_features,
                       architecture=record.architecture or "standard",
                       training_dataset=sae_config.get("dataset_path"))

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
                        extraction_id=ext_id, compute_part=compute_part, neuronpedia=StoreNeuronpedia(store))


def estimate(inputs: ExportInputs, cfg: ExportConfig) -> ExportEstimate:
    """Archive size, packaging time, feature count and the data that is missing and will be computed.

    Size and time come from exporting an evenly spread sample of the selected features for real (into a temporary
    folder, one process) and scaling it to the whole selection; the SAELens weights are added from their shapes.
    Where the sample cannot run (parts missing, a base export), fixed per-feature figures are used. What would
    stop the export from starting (`start_export`'s checks) is listed in `problems`."""
    summary = inputs.source.summary_arrays()
    indices = select_features(cfg.selection, inputs.source.n_features, summary, inputs.labels)
    manifest = inputs.source.manifest or {}
    has = getattr(inputs.source, "has", None)
    missing = [p for p in ("top_examples", "logit_lens", "histograms", "vocab") if has is not None and not has(p)]
    dead = int(summary["dead"][indices].sum())
    d_in, d_sae = inputs.info.d_in, inputs.info.d_sae
    weights = (2 * d_sae * d_in + d_sae + d_in) * 4 + 1024 if cfg.wants_saelens else 0
    n = len(indices)
    workers = default_workers(n, cfg.workers)
    measured = None if missing or cfg.base_export else _measure_sample(inputs, cfg, indices)
    once_s = 0.0
    if measured is not None:
        per_feature_bytes, fixed_bytes, serial_s, once_s = measured
        size = fixed_bytes + per_feature_bytes * n
    else:
        size, serial_s = _fixed_rate_estimate(cfg, manifest, n)
    n_batches = max(1, -(-n // cfg.batch_size))
    speedup = 1.0 if workers <= 1 else max(1.0, min(workers, n_batches) * _PARALLEL_EFFICIENCY)
    seconds = once_s + serial_s * n / speedup + (_POOL_START_S if workers > 1 else 0.0)
    if cfg.wants_saelens:
        seconds += weights / _WEIGHTS_BYTES_PER_S
    notes = [f"{dead} dead feature(s) have no examples and are left out of the Neuronpedia batches"] if dead else []
    return ExportEstimate(n_features=n, size_bytes=int(size + weights),
                          seconds=round(seconds + (60.0 if "logit_lens" in missing else 0.0), 1),
                          missing=missing, n_dead=dead, notes=notes, min_examples=MIN_EXAMPLES,
                          problems=input_problems(inputs, cfg))


def input_problems(inputs: ExportInputs, cfg: ExportConfig) -> list[str]:
    """The messages of the checks an export makes before it starts (none when it can start)."""
    from mistudio.export.pipeline import check_neuronpedia_data, public_names

    problems = []
    for check in (public_names, check_neuronpedia_data):
        try:
            check(inputs, cfg)
        except InvalidInputError as exc:
            problems.append(exc.message)
    return problems


def _fixed_rate_estimate(cfg: ExportConfig, manifest: dict, n: int) -> tuple[float, float]:
    """(archive bytes without weights, serial seconds per feature) from fixed per-feature figures."""
    context_size = int(manifest_value(manifest, "context_size", default=0) or 128)
    scale = cfg.n_examples / 20 * context_size / 128
    per_feature = float(_FEATURE_DOC_BYTES)
    if cfg.wants_neuronpedia:
        windows = int(manifest_value(manifest, "n_windows", "n_prompts", default=0)) or n * cfg.n_examples
        shared = min(1.0, windows / max(1, n * cfg.n_examples))  # distinct windows per exported example
        per_feature += _BULK_ROW_BYTES + _WINDOW_TEXT_BYTES * shared
        per_feature += _SAEDASHBOARD_BYTES if cfg.saedashboard_batches else 0
    return n * per_feature * scale, _SECONDS_SERIAL * scale


def _measure_sample(inputs: ExportInputs, cfg: ExportConfig,
                    indices: list[int]) -> tuple[float, float, float, float] | None:
    """Export two evenly spread samples of `indices` for real, a small one (which also pays the one-off costs:
    caches, imports) and a larger one; return (bytes per feature, fixed bytes, serial seconds per feature) of the
    whole selection's archive without the SAELens weights, and one-off seconds), fitted through the two."""
    small = _export_sample(inputs, cfg, indices, _SAMPLE_FEATURES // 4)
    large = _export_sample(inputs, cfg, indices, _SAMPLE_FEATURES)
    if small is None or large is None:
        return None
    (n1, bytes1, s1), (n2, bytes2, s2) = small, large
    if n2 <= n1:  # the selection is no larger than the sample: it was exported whole
        return bytes2 / n2, 0.0, s2 / n2, 0.0
    per_byte = max(0.0, (bytes2 - bytes1) / (n2 - n1))
    per_s = s2 / n2  # warm: the small sample paid the one-off costs, which the real export pays once too
    return per_byte, max(0.0, bytes2 - per_byte * n2), per_s, max(0.0, s1 - per_s * n1)


def _export_sample(inputs: ExportInputs, cfg: ExportConfig, indices: list[int],
                   size: int) -> tuple[int, float, float] | None:
    """Export `size` evenly spread features of `indices` into a temporary folder, in this process; return
    (features, the archive bytes the real export's selection would count, seconds of the stages that scale)."""
    import dataclasses
    import tempfile
    import zipfile

    from mistudio.export.config import FeatureSelection
    from mistudio.export.pipeline import build_export

    step = max(1, len(indices) // size)
    sample = indices[::step][:size]
    # the weights are counted from their shapes, so the sample needs none: its SAELens-only variant is a
    # Neuronpedia export whose neuronpedia/ files are left out of the count
    sample_cfg = cfg.model_copy(update={
        "format": "neuronpedia", "workers": 1, "base_export": None,
        "selection": FeatureSelection(mode="list", indices=sample)})
    with tempfile.TemporaryDirectory(prefix="estimate-") as tmp:
        try:
            result = build_export(dataclasses.replace(inputs, compute_part=None), sample_cfg,
                                  Path(tmp) / "sample.zip", Path(tmp) / "work")
        except (InvalidInputError, NotFoundError):
            return None
        with zipfile.ZipFile(Path(tmp) / "sample.zip") as zf:
            members = zf.infolist()
        total = (Path(tmp) / "sample.zip").stat().st_size
    overhead = (total - sum(m.compress_size for m in members)) / max(1, len(members))  # headers, directory
    counted = sum(m.compress_size + overhead for m in members
                  if cfg.wants_neuronpedia or not m.filename.startswith("neuronpedia/"))
    timings = result["timings"]
    return len(sample), counted, timings.get("Writing JSON files", 0.0) + timings.get("Creating archive", 0.0)


def start_export(studio: Studio, sae_id: str, cfg: ExportConfig, extraction_id: str | None = None,
                 base_export_id: str | None = None) -> ExportStarted:
    """Create the export record and queue its job. `base_export_id` makes it incremental: the finished
    export of the same SAE whose unchanged features are reused.

    Raises:
        NotFoundError: no such extraction or base export.
        InvalidInputError: the SAE has no completed extraction, the base export has no archive, the feature
            selection is empty or names features the SAE does not have, or the model or dataset is a local path
            and no `model_id` / `dataset_id` names it (refused before any job starts).
        ExportValidationError: a Neuronpedia export of a feature store without the Neuronpedia data.
    """
    with studio.sessions() as s, s.begin():
        ext = latest_extraction(s, sae_id, extraction_id)
        ext_id = ext.id
        _check_selection(studio, ext, cfg, labels_for(s, ext_id))
    _check_inputs(studio, sae_id, ext_id, cfg)
    with studio.sessions() as s, s.begin():
        if base_export_id is not None:
            cfg = cfg.model_copy(update={"base_export": str(_finished_archive(studio, s, sae_id, base_export_id))})
        record = ExportRecord(sae_id=sae_id, extraction_id=ext_id, config=cfg.model_dump(), status="pending",
                              base_export_id=base_export_id)
        s.add(record)
        s.flush()
        export_id = record.id
    params = {"export_id": export_id, "sae_id": sae_id, "extraction_id": ext_id, "config": cfg.model_dump()}
    job_id = studio.runner.create("export", params, sae_id)
    with studio.sessions() as s, s.begin():
        s.execute(update(ExportRecord).where(ExportRecord.id == export_id).values(job_id=job_id))
    return ExportStarted(job_id=job_id, export_id=export_id)


def _check_selection(studio: Studio, ext: Extraction, cfg: ExportConfig,
                     labels: dict[int, tuple[str | None, str | None]]) -> None:
    """Refuse a selection that matches no feature or names unknown ones, before a job is queued.

    Raises:
        InvalidInputError: what is wrong with the selection.
    """
    from mistudio.store.feature_store import open_store

    if not ext.store_path:
        raise InvalidInputError(f"extraction {ext.id} has no feature store")
    store = open_store(studio.settings.absolute(ext.store_path))
    select_features(cfg.selection, store.n_features, store.summary_arrays(), labels)


def _check_inputs(studio: Studio, sae_id: str, extraction_id: str, cfg: ExportConfig) -> None:
    """The checks the export job makes first, made before it is queued: public model and dataset names, and the
    Neuronpedia data of the store.

    Raises:
        InvalidInputError: a local model or dataset without an id to name it.
        ExportValidationError: a Neuronpedia export of a store without the Neuronpedia data.
    """
    from mistudio.export.pipeline import check_neuronpedia_data, public_names

    inputs = gather_inputs(studio, sae_id, extraction_id, load_weights=False)
    public_names(inputs, cfg)
    check_neuronpedia_data(inputs, cfg)


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


def find_resumable_export(studio: Studio, sae_id: str, cfg: ExportConfig,
                          extraction_id: str | None = None) -> str | None:
    """The newest export job of `sae_id` with this very config and extraction that stopped before finishing
    (interrupted — its process died — or paused), so running the same export again continues it; None if none."""
    from mistudio.db.models import Job

    studio.runner.reconcile()
    wanted = json.loads(json.dumps(cfg.model_dump(), default=str))
    with studio.sessions() as s:
        try:
            ext_id = latest_extraction(s, sae_id, extraction_id).id
        except (InvalidInputError, NotFoundError):
            return None
        jobs = s.scalars(select(Job).where(Job.type == "export", Job.sae_id == sae_id,
                                           Job.status.in_(("interrupted", "paused")))
                         .order_by(Job.created_at.desc()))
        for job in jobs:
            params = job.params or {}
            if params.get("extraction_id") == ext_id and params.get("config") == wanted:
                return job.id
    return None


def finished_batches(studio: Studio, job_id: str) -> int:
    """How many batches an export job's work folder holds finished (what a resume skips)."""
    state = work_dir(studio.settings, job_id) / ".state"
    return len(list(state.glob("batch-*.json"))) if state.exists() else 0


def delete_export(studio: Studio, export_id: str) -> None:
    """Delete an export: its archive, its work folder and its record.

    Raises:
        NotFoundError: no export `export_id`.
        ConflictError: its job is running; cancel it first.
    """
    studio.runner.reconcile()
    with studio.sessions() as s:
        rec = s.get(ExportRecord, export_id)
        if rec is None:
            raise NotFoundError(f"export {export_id} not found; `mistudio exports list` shows them")
        job_id, output = rec.job_id, rec.output_path
        job_status = studio.runner.get(job_id).status if job_id else None
    if job_status == "running":
        raise ConflictError(f"export {export_id} is being written by job {job_id}; cancel it first")
    if job_id and job_status in ("pending", "paused", "interrupted"):
        studio.runner.cancel(job_id)
    home = studio.settings.home
    archives = [studio.settings.absolute(output)] if output else []
    if job_id:
        archives.append(studio.settings.exports_dir / f"{job_id}.zip")
        shutil.rmtree(work_dir(studio.settings, job_id), ignore_errors=True)
    for archive in archives:
        if archive.resolve().is_relative_to(home.resolve()):
            archive.unlink(missing_ok=True)
    with studio.sessions() as s, s.begin():
        s.execute(delete(ExportRecord).where(ExportRecord.id == export_id))

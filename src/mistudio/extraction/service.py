"""Extractions as a service (notebooks, CLI, REST): start or reuse an extraction, find it, open its store."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mistudio.catalog.service import get_record
from mistudio.db.models import Extraction as ExtractionRecord
from mistudio.db.models import Job as JobRecord
from mistudio.errors import ConflictError, InvalidInputError, NotFoundError
from mistudio.extraction.engine import NEURONPEDIA_PARTS, settings_key
from mistudio.extraction.schemas import Extraction, ExtractionStarted
from mistudio.store.feature_store import FeatureStore, open_store
from mistudio.studio import Studio

DEFAULTS: dict[str, Any] = {"n_tokens": 262_144, "n_prompts": None, "context_size": None, "top_k": 20,
                            "batch_size": 32, "feature_chunk": 4096, "device": None, "dtype": None, "seed": 0,
                            "shuffle": True, "text_field": "text", "split": "train", "logit_k": 50,
                            "logit_bins": 50, "checkpoint_every": 50, "n_intervals": 5, "interval_examples": 5,
                            "interval_reservoir": 0, "interval_seed": 0, "reconstruction": True,
                            "neuronpedia": True}
# settings that do not change the feature arrays (not part of the cache key; `neuronpedia` adds parts, which a
# later run with it on computes for a completed extraction)
_OPERATIONAL = ("batch_size", "feature_chunk", "device", "checkpoint_every", "reconstruction", "neuronpedia")


def start_extraction(studio: Studio, sae_id: str, model: str | None, dataset: str, *, submit: bool = True,
                     **settings: Any) -> ExtractionStarted:
    """Create (and queue, if `submit`) an extraction job; a completed extraction with the same SAE, model,
    dataset and settings is reused instead (`reused=True`, no job) — unless it lacks the Neuronpedia parts
    and `neuronpedia` is on: then a job computes only those, in the same store (the extraction stays
    `completed` meanwhile).

    Raises:
        InvalidInputError: unknown settings, no dataset, or no model to run.
        NotFoundError: the SAE is not in the catalog.
        ConflictError: the SAE is not ready, or the same extraction is already pending or running.
    """
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise InvalidInputError(f"unknown extraction settings: {', '.join(sorted(unknown))}")
    merged = {**DEFAULTS, **{k: v for k, v in settings.items() if v is not None}}
    if not dataset:
        raise InvalidInputError("a dataset is required (a file, folder, `builtin:corpus` or an HF dataset id)")
    with studio.sessions() as s, s.begin():
        record = get_record(s, sae_id)
        if record.status != "ready":
            raise ConflictError(f"SAE {sae_id} is {record.status}; wait until it is ready")
        model = model or record.model_name
        if not model:
            raise InvalidInputError(f"SAE {sae_id} does not name its model; pass --model / `model`")
        key = settings_key(sae_id, model, dataset, {k: v for k, v in merged.items() if k not in _OPERATIONAL})
        for row in s.scalars(select(ExtractionRecord).where(ExtractionRecord.sae_id == sae_id)):
            if (row.settings or {}).get("cache_key") == key:
                if row.status == "completed" and not (merged["neuronpedia"] and _lacks_neuronpedia(studio, row)):
                    return ExtractionStarted(extraction_id=row.id, job_id=row.job_id, reused=True)
                if row.status == "completed":  # made before the Neuronpedia pass: add only the missing parts
                    if _job_active(s, row.job_id):
                        raise ConflictError(f"the Neuronpedia data of extraction {row.id} is being computed "
                                            f"(job {row.job_id})", details={"extraction_id": row.id,
                                                                            "job_id": row.job_id})
                    extraction_id, params = row.id, {"sae_id": sae_id, "extraction_id": row.id, "model": model,
                                                     "dataset": dataset, **merged}
                    break
                if row.status in ("pending", "running"):
                    raise ConflictError(f"the same extraction is already {row.status} (job {row.job_id})",
                                        details={"extraction_id": row.id, "job_id": row.job_id})
        else:
            row = ExtractionRecord(sae_id=sae_id, status="pending", model_name=model, dataset=dataset,
                                   settings={**merged, "cache_key": key})
            s.add(row)
            s.flush()
            extraction_id = row.id
            params = {"sae_id": sae_id, "extraction_id": extraction_id, "model": model, "dataset": dataset, **merged}
    create = studio.runner.submit if submit else studio.runner.create
    job_id = create("extraction", params, sae_id)
    with studio.sessions() as s, s.begin():
        s.get_one(ExtractionRecord, extraction_id).job_id = job_id
    return ExtractionStarted(extraction_id=extraction_id, job_id=job_id, reused=False)


def _lacks_neuronpedia(studio: Studio, row: ExtractionRecord) -> bool:
    """Whether a completed extraction's store lacks a Neuronpedia part (an extraction made before they existed,
    or with `neuronpedia` off)."""
    if not row.store_path:
        return False
    try:
        store = open_store(studio.settings.absolute(row.store_path))
    except NotFoundError:
        return False
    return not all(store.has(part) for part in NEURONPEDIA_PARTS)


def _job_active(session: Session, job_id: str | None) -> bool:
    job = session.get(JobRecord, job_id) if job_id else None
    return job is not None and job.status in ("pending", "running")


def extract(studio: Studio, sae_id: str, model: str | None, dataset: str, **settings: Any) -> str:
    """Run an extraction in this thread (or reuse a finished identical one) and return its id.

    Raises:
        ConflictError: the extraction job did not complete (and the errors of `start_extraction`).
    """
    started = start_extraction(studio, sae_id, model, dataset, submit=False, **settings)
    if not started.reused and started.job_id is not None:
        state = studio.runner.run_inline(started.job_id)
        if state.status != "completed":
            raise ConflictError(f"extraction {state.status}: {state.error_message or ''}".strip())
    return started.extraction_id


def list_extractions(studio: Studio, sae_id: str) -> list[Extraction]:
    """The SAE's extractions, newest first.

    Raises:
        NotFoundError: the SAE is not in the catalog.
    """
    with studio.sessions() as s:
        get_record(s, sae_id)
        rows = s.scalars(select(ExtractionRecord).where(ExtractionRecord.sae_id == sae_id)
                         .order_by(ExtractionRecord.created_at.desc()))
        return [Extraction.from_record(r) for r in rows]


def latest_extraction_id(studio: Studio, sae_id: str) -> str:
    """The id of the newest completed extraction of an SAE.

    Raises:
        NotFoundError: the SAE is not in the catalog or has no completed extraction.
    """
    with studio.sessions() as s:
        get_record(s, sae_id)
        ext = s.scalar(select(ExtractionRecord.id)
                       .where(ExtractionRecord.sae_id == sae_id, ExtractionRecord.status == "completed")
                       .order_by(ExtractionRecord.finished_at.desc()).limit(1))
    if ext is None:
        raise NotFoundError(f"SAE {sae_id} has no completed extraction; run `mistudio extract {sae_id}` first")
    return ext


def get_store(studio: Studio, sae_id: str, extraction_id: str | None = None) -> tuple[str, FeatureStore]:
    """(extraction id, its feature store) — the latest completed one unless `extraction_id` is given.

    Raises:
        NotFoundError: no such extraction of this SAE, or it has no data yet.
    """
    extraction_id = extraction_id or latest_extraction_id(studio, sae_id)
    with studio.sessions() as s:
        row = s.get(ExtractionRecord, extraction_id)
        if row is None or row.sae_id != sae_id:
            raise NotFoundError(f"extraction {extraction_id} of SAE {sae_id} not found")
        if not row.store_path:
            raise NotFoundError(f"extraction {extraction_id} has no data yet (status {row.status})")
        path = studio.settings.absolute(row.store_path)
    return extraction_id, open_store(path)

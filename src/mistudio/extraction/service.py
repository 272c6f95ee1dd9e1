"""Extractions as a service (notebooks, CLI, REST): start or reuse an extraction, find it, open its store."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mistudio.catalog.service import get_record
from mistudio.db.models import Extraction
from mistudio.errors import ConflictError, InvalidInputError, NotFoundError
from mistudio.extraction.engine import settings_key
from mistudio.store.feature_store import FeatureStore, open_store
from mistudio.studio import Studio

DEFAULTS: dict[str, Any] = {"n_tokens": 262_144, "n_prompts": None, "context_size": None, "top_k": 20,
                            "batch_size": 32, "feature_chunk": 4096, "device": None, "dtype": None, "seed": 0,
                            "shuffle": True, "text_field": "text", "split": "train", "logit_k": 50,
                            "logit_bins": 50, "checkpoint_every": 50, "n_intervals": 5, "interval_examples": 5,
                            "interval_reservoir": 0, "interval_seed": 0}
# settings that do not change the results (not part of the cache key)
_OPERATIONAL = ("batch_size", "feature_chunk", "device", "checkpoint_every")


def extraction_to_dict(row: Extraction) -> dict[str, Any]:
    """The JSON view of an extraction row."""
    return {"id": row.id, "sae_id": row.sae_id, "status": row.status, "model": row.model_name,
            "dataset": row.dataset, "settings": row.settings, "n_tokens": row.n_tokens,
            "n_features": row.n_features, "job_id": row.job_id, "statistics": row.statistics or {},
            "created_at": row.created_at.isoformat() if row.created_at else None,
            "finished_at": row.finished_at.isoformat() if row.finished_at else None}


def start_extraction(studio: Studio, sae_id: str, model: str | None, dataset: str, *, submit: bool = True,
                     **settings: Any) -> dict[str, Any]:
    """Create (and queue, if `submit`) an extraction job; a completed extraction with the same SAE, model,
    dataset and settings is reused instead (`reused: true`, no job)."""
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
        for row in s.scalars(select(Extraction).where(Extraction.sae_id == sae_id)):
            if (row.settings or {}).get("cache_key") == key:
                if row.status == "completed":
                    return {"extraction_id": row.id, "job_id": row.job_id, "reused": True}
                if row.status in ("pending", "running"):
                    raise ConflictError(f"the same extraction is already {row.status} (job {row.job_id})",
                                        details={"extraction_id": row.id, "job_id": row.job_id})
        row = Extraction(sae_id=sae_id, status="pending", model_name=model, dataset=dataset,
                         settings={**merged, "cache_key": key})
        s.add(row)
        s.flush()
        extraction_id = row.id
    params = {"sae_id": sae_id, "extraction_id": extraction_id, "model": model, "dataset": dataset, **merged}
    create = studio.runner.submit if submit else studio.runner.create
    job_id = create("extraction", params, sae_id)
    with studio.sessions() as s, s.begin():
        s.get(Extraction, extraction_id).job_id = job_id
    return {"extraction_id": extraction_id, "job_id": job_id, "reused": False}


def extract(studio: Studio, sae_id: str, model: str | None, dataset: str, **settings: Any) -> str:
    """Run an extraction in this thread (or reuse a finished identical one) and return its id."""
    started = start_extraction(studio, sae_id, model, dataset, submit=False, **settings)
    if not started["reused"]:
        state = studio.runner.run_inline(started["job_id"])
        if state["status"] != "completed":
            raise ConflictError(f"extraction {state['status']}: {state.get('error_message') or ''}".strip())
    return started["extraction_id"]


def list_extractions(studio: Studio, sae_id: str) -> list[dict[str, Any]]:
    """The SAE's extractions, newest first."""
    with studio.sessions() as s:
        get_record(s, sae_id)
        rows = s.scalars(select(Extraction).where(Extraction.sae_id == sae_id)
                         .order_by(Extraction.created_at.desc()))
        return [extraction_to_dict(r) for r in rows]


def latest_extraction_id(studio: Studio, sae_id: str) -> str:
    """The newest completed extraction of an SAE; NotFoundError if it has none."""
    with studio.sessions() as s:
        get_record(s, sae_id)
        ext = s.scalar(select(Extraction.id).where(Extraction.sae_id == sae_id, Extraction.status == "completed")
                       .order_by(Extraction.finished_at.desc()).limit(1))
    if ext is None:
        raise NotFoundError(f"SAE {sae_id} has no completed extraction; run `mistudio extract {sae_id}` first")
    return ext


def get_store(studio: Studio, sae_id: str, extraction_id: str | None = None) -> tuple[str, FeatureStore]:
    """(extraction id, its feature store) — the latest completed one unless `extraction_id` is given."""
    extraction_id = extraction_id or latest_extraction_id(studio, sae_id)
    with studio.sessions() as s:
        row = s.get(Extraction, extraction_id)
        if row is None or row.sae_id != sae_id:
            raise NotFoundError(f"extraction {extraction_id} of SAE {sae_id} not found")
        if not row.store_path:
            raise NotFoundError(f"extraction {extraction_id} has no data yet (status {row.status})")
        path = studio.settings.absolute(row.store_path)
    return extraction_id, open_store(path)

"""Stored steering runs: saved after each run, listed newest first, reopened with their outputs."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import func, select

from mistudio.db.models import SteeringRun as SteeringRunRecord
from mistudio.errors import NotFoundError
from mistudio.steering.schemas import (
    SteerFeature,
    SteeringRun,
    SteeringRunPage,
    SteeringRunSummary,
    SteerRequest,
    SteerResult,
    SweepResult,
)
from mistudio.studio import Studio


def stored_settings(request: SteerRequest) -> dict[str, Any]:
    """The request as stored: everything but the Neuronpedia API key."""
    settings = request.model_dump(mode="json")
    compare = settings.get("compare_neuronpedia")
    if isinstance(compare, dict):
        compare.pop("api_key", None)
    return settings


def save_run(studio: Studio, request: SteerRequest, kind: Literal["steer", "sweep"],
             result: SteerResult | SweepResult) -> str:
    """Store a run; returns its id (also written into `result.run_id`)."""
    with studio.sessions() as s, s.begin():
        row = SteeringRunRecord(sae_id=request.sae_id, kind=kind, prompt=request.prompt, chat=request.chat,
                                settings=stored_settings(request), result={})
        s.add(row)
        s.flush()
        result.run_id = row.id
        row.result = result.model_dump(mode="json")
        return row.id


def _summary_fields(row: SteeringRunRecord) -> dict[str, Any]:
    settings = row.settings or {}
    return {"id": row.id, "sae_id": row.sae_id, "kind": row.kind, "prompt": row.prompt, "chat": row.chat,
            "features": [SteerFeature.model_validate(f) for f in settings.get("features", [])],
            "steer_method": str(settings.get("steer_method", "SIMPLE_ADDITIVE")),
            "created_at": row.created_at.isoformat()}


def list_runs(studio: Studio, sae_id: str | None = None, page: int = 1, page_size: int = 50) -> SteeringRunPage:
    """Stored runs (of one SAE when `sae_id`), newest first."""
    query = select(SteeringRunRecord)
    counter = select(func.count()).select_from(SteeringRunRecord)
    if sae_id is not None:
        query = query.where(SteeringRunRecord.sae_id == sae_id)
        counter = counter.where(SteeringRunRecord.sae_id == sae_id)
    with studio.sessions() as s:
        total = int(s.scalar(counter) or 0)
        rows = s.scalars(query.order_by(SteeringRunRecord.created_at.desc(), SteeringRunRecord.id)
                         .offset((page - 1) * page_size).limit(page_size)).all()
        items = [SteeringRunSummary(**_summary_fields(row)) for row in rows]
    return SteeringRunPage(items=items, total=total, page=page, page_size=page_size)


def get_run(studio: Studio, run_id: str) -> SteeringRun:
    """One stored run with its settings and outputs.

    Raises:
        NotFoundError: no run has this id.
    """
    with studio.sessions() as s:
        row = s.get(SteeringRunRecord, run_id)
        if row is None:
            raise NotFoundError(f"no steering run {run_id!r}; list them with GET /api/v1/steer/runs")
        fields = _summary_fields(row)
        data = dict(row.result or {})
        settings = dict(row.settings or {})
    if fields["kind"] == "sweep":
        return SteeringRun(**fields, settings=settings, sweep=SweepResult.model_validate(data))
    return SteeringRun(**fields, settings=settings, result=SteerResult.model_validate(data))

"""Listing the catalog: filters, search, sort, pagination and facets, all in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from mistudio.catalog.schemas import SAE, Facets, SAEPage
from mistudio.db.models import Extraction, SAERecord
from mistudio.errors import InvalidInputError

SORTABLE = {"created_at", "updated_at", "name", "layer", "d_sae", "d_in", "model_name", "source", "architecture"}
SOURCES = ("trained", "huggingface", "gemma_scope", "upload")


@dataclass
class SAEQuery:
    """Filters and paging for `list_saes`."""

    model: str | None = None
    layer: int | None = None
    source: str | None = None
    architecture: str | None = None
    search: str | None = None
    sort: str = "created_at"
    order: str = "desc"
    page: int = 1
    page_size: int = 50


def _filtered(q: SAEQuery) -> Select[SAERecord]:
    stmt = select(SAERecord)
    if q.model:
        stmt = stmt.where(SAERecord.model_name == q.model)
    if q.layer is not None:
        stmt = stmt.where(SAERecord.layer == q.layer)
    if q.source:
        if q.source not in SOURCES:
            raise InvalidInputError(f"unknown source {q.source!r}; use one of {', '.join(SOURCES)}")
        stmt = stmt.where(SAERecord.source == q.source)
    if q.architecture:
        stmt = stmt.where(SAERecord.architecture == q.architecture)
    if q.search:
        like = f"%{q.search.lower()}%"
        stmt = stmt.where(or_(*(func.lower(col).like(like) for col in (
            SAERecord.name, SAERecord.repo_id, SAERecord.model_name, SAERecord.hook_name, SAERecord.path_in_repo))))
    return stmt


def list_saes(session: Session, q: SAEQuery) -> SAEPage:
    """One page of catalogued SAEs with the total count and filter facets.

    Raises:
        InvalidInputError: unknown sort column, order, source, or paging out of range.
    """
    if q.sort not in SORTABLE:
        raise InvalidInputError(f"cannot sort by {q.sort!r}; use one of {', '.join(sorted(SORTABLE))}")
    if q.order not in ("asc", "desc"):
        raise InvalidInputError("order must be 'asc' or 'desc'")
    if q.page < 1 or not 1 <= q.page_size <= 1000:
        raise InvalidInputError("page must be >= 1 and page_size between 1 and 1000")
    base = _filtered(q)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    column = getattr(SAERecord, q.sort)
    ordering = column.asc() if q.order == "asc" else column.desc()
    rows = list(session.scalars(base.order_by(ordering, SAERecord.id).offset((q.page - 1) * q.page_size)
                                .limit(q.page_size)))
    counts = extraction_counts(session, [r.id for r in rows])
    items = [SAE.from_record(r, *counts.get(r.id, (0, None))) for r in rows]
    return SAEPage(items=items, total=total, page=q.page, page_size=q.page_size, facets=facets(session))


def extraction_counts(session: Session, sae_ids: list[str]) -> dict[str, tuple[int, str | None]]:
    """For each SAE: features in its newest completed extraction and that extraction's id."""
    if not sae_ids:
        return {}
    rows = session.execute(
        select(Extraction.sae_id, Extraction.id, Extraction.n_features, Extraction.finished_at)
        .where(Extraction.sae_id.in_(sae_ids), Extraction.status == "completed")
        .order_by(Extraction.finished_at.asc())
    ).all()
    return {sae_id: (n or 0, ext_id) for sae_id, ext_id, n, _ in rows}


def facets(session: Session) -> Facets:
    """Distinct values to offer in the filter menus."""
    def distinct(col: InstrumentedAttribute[Any]) -> list[Any]:
        return [v for v in session.scalars(select(col).distinct().order_by(col)) if v is not None]

    return Facets(models=distinct(SAERecord.model_name), layers=distinct(SAERecord.layer),
                  sources=distinct(SAERecord.source), architectures=distinct(SAERecord.architecture))

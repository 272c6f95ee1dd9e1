"""Per-feature summary rows (`feature_summaries`): bulk written after an extraction, queried by the API and CLI
with plain SQL (no arrays loaded)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    ScalarSelect,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from mistudio.catalog.explanations import explanations_by_feature
from mistudio.db.models import Explanation, ExplanationScore
from mistudio.db.models import FeatureSummary as SummaryRecord
from mistudio.errors import InvalidInputError, NotFoundError
from mistudio.extraction.schemas import FeatureLabel, FeaturePage, FeatureSummary
from mistudio.store.feature_store import FeatureStore

SORTS = {"index": SummaryRecord.feature_index, "frequency": SummaryRecord.activation_frequency,
         "max": SummaryRecord.max_activation, "mean": SummaryRecord.mean_activation}
SORT_NAMES = (*SORTS, "score")
SCORERS = ("detection", "fuzzing", "simulation")
_BULK = 5000


def write_summaries(session: Session, sae_id: str, extraction_id: str, store: FeatureStore) -> int:
    """Replace the extraction's summary rows; labels given earlier to the SAE's features are carried over."""
    arrays = store.summary_arrays()
    vocab = store.vocab if store.has("vocab") else []
    labels = {idx: (label, cat) for idx, label, cat in session.execute(
        select(SummaryRecord.feature_index, SummaryRecord.label, SummaryRecord.category)
        .where(SummaryRecord.sae_id == sae_id, SummaryRecord.label.is_not(None)))}
    session.execute(delete(SummaryRecord).where(SummaryRecord.extraction_id == extraction_id))
    n = len(arrays["frequency"])
    for lo in range(0, n, _BULK):
        rows = []
        for i in range(lo, min(lo + _BULK, n)):
            tok = int(arrays["top_token"][i])
            label, category = labels.get(i, (None, None))
            rows.append({"sae_id": sae_id, "extraction_id": extraction_id, "feature_index": i,
                         "activation_frequency": float(arrays["frequency"][i]),
                         "max_activation": float(arrays["max"][i]), "mean_activation": float(arrays["mean"][i]),
                         "dead": bool(arrays["dead"][i]),
                         "top_token": vocab[tok][:255] if 0 <= tok < len(vocab) else None,
                         "label": label, "category": category})
        session.execute(insert(SummaryRecord), rows)
    return n


def list_features(session: Session, extraction_id: str, *, sort: str = "index", order: str = "asc",
                  dead: bool | None = None, labeled: bool | None = None, min_freq: float | None = None,
                  max_freq: float | None = None, search: str | None = None, explained: bool | None = None,
                  min_score: float | None = None, max_score: float | None = None, scorer: str | None = None,
                  page: int = 1, page_size: int = 50) -> FeaturePage:
    """One page of an extraction's feature summaries, filtered and sorted in SQL.

    A feature is explained when it has a label or an explanation; its score is the best score of any of its
    explanations by `scorer` (any scorer when None). `min_score`/`max_score` keep scored features only;
    `sort="score"` puts unscored features last in either order.

    Raises:
        InvalidInputError: an unknown sort, order or scorer, or a page or page size out of range.
    """
    if sort not in SORT_NAMES or order not in ("asc", "desc") or page < 1 or not 1 <= page_size <= 1000:
        raise InvalidInputError(f"sort must be one of {', '.join(SORT_NAMES)}, order asc|desc, page ≥ 1, "
                                "page_size 1..1000")
    if scorer is not None and scorer not in SCORERS:
        raise InvalidInputError(f"unknown scorer {scorer!r}; use one of {', '.join(SCORERS)}")
    best = _best_score(scorer)
    q = select(SummaryRecord).where(SummaryRecord.extraction_id == extraction_id)
    if explained is not None:
        has_any = or_(SummaryRecord.label.is_not(None), exists(select(Explanation.id).where(
            Explanation.sae_id == SummaryRecord.sae_id, Explanation.feature_index == SummaryRecord.feature_index)))
        q = q.where(has_any if explained else ~has_any)
    if min_score is not None:
        q = q.where(best >= min_score)
    if max_score is not None:
        q = q.where(best <= max_score)
    if dead is not None:
        q = q.where(SummaryRecord.dead.is_(dead))
    if labeled is not None:
        q = q.where(SummaryRecord.label.is_not(None) if labeled else SummaryRecord.label.is_(None))
    if min_freq is not None:
        q = q.where(SummaryRecord.activation_frequency >= min_freq)
    if max_freq is not None:
        q = q.where(SummaryRecord.activation_frequency <= max_freq)
    if search:
        pattern = f"%{search.lower()}%"
        clauses: list[ColumnElement[bool]] = [
            func.lower(SummaryRecord.label).like(pattern), func.lower(SummaryRecord.top_token).like(pattern),
            exists(select(Explanation.id).where(Explanation.sae_id == SummaryRecord.sae_id,
                                                Explanation.feature_index == SummaryRecord.feature_index,
                                                func.lower(Explanation.description).like(pattern)))]
        if search.strip().isdigit():
            clauses.append(SummaryRecord.feature_index == int(search.strip()))
        q = q.where(or_(*clauses))
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    if sort == "score":
        q = q.order_by((best.asc() if order == "asc" else best.desc()).nulls_last(), SummaryRecord.feature_index.asc())
    else:
        column = SORTS[sort]
        q = q.order_by(column.asc() if order == "asc" else column.desc(), SummaryRecord.feature_index.asc())
    rows = list(session.scalars(q.offset((page - 1) * page_size).limit(page_size)))
    sae_id = rows[0].sae_id if rows else None
    explanations = explanations_by_feature(session, sae_id, [r.feature_index for r in rows]) if sae_id else {}
    items = []
    for r in rows:
        views = explanations.get(r.feature_index, [])
        scores = [s.score for v in views for s in v.scores if scorer is None or s.scorer == scorer]
        items.append(FeatureSummary(feature_index=r.feature_index, activation_frequency=r.activation_frequency,
                                    max_activation=r.max_activation, mean_activation=r.mean_activation, dead=r.dead,
                                    label=r.label, category=r.category, top_token=r.top_token,
                                    explanation=views[-1].description if views else None,
                                    n_explanations=len(views), best_score=max(scores, default=None)))
    return FeaturePage(items=items, total=total, page=page, page_size=page_size, extraction_id=extraction_id)


def _best_score(scorer: str | None) -> ScalarSelect[float | None]:
    """The best score of the summary row's feature over its explanations (by `scorer` when given), as SQL."""
    query = (select(func.max(ExplanationScore.score))
             .join(Explanation, Explanation.id == ExplanationScore.explanation_id)
             .where(Explanation.sae_id == SummaryRecord.sae_id, Explanation.feature_index == SummaryRecord.feature_index))
    if scorer is not None:
        query = query.where(ExplanationScore.scorer == scorer)
    return query.correlate(SummaryRecord).scalar_subquery()


def set_label(session: Session, sae_id: str, index: int, label: str | None,
              category: str | None = None) -> FeatureLabel:
    """Label feature `index` of an SAE (every extraction's summary row of that feature).

    Raises:
        NotFoundError: no extraction of the SAE has a summary row for the feature.
    """
    statement = (update(SummaryRecord).where(SummaryRecord.sae_id == sae_id, SummaryRecord.feature_index == index)
                 .values(label=label, category=category))
    result = cast(CursorResult[Any], session.execute(statement))
    if not result.rowcount:
        raise NotFoundError(f"feature {index} of SAE {sae_id} has no extracted data yet; run an extraction first")
    return FeatureLabel(feature_index=index, label=label, category=category)


def get_label(session: Session, extraction_id: str, index: int) -> FeatureLabel:
    """The label and category of one feature of an extraction (both None when it has none)."""
    row = session.execute(select(SummaryRecord.label, SummaryRecord.category).where(
        SummaryRecord.extraction_id == extraction_id, SummaryRecord.feature_index == index)).first()
    return FeatureLabel(feature_index=index, label=row[0] if row else None, category=row[1] if row else None)

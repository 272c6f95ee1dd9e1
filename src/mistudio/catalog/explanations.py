"""Feature explanations and their scores: the one place they are written and read (typed, imported, generated)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mistudio.catalog.schemas import _iso
from mistudio.db.models import Explanation, ExplanationScore, SAERecord
from mistudio.errors import InvalidInputError, NotFoundError
from mistudio.paging import Page

ExplanationSource = Literal["typed", "imported", "generated"]


class ScoreView(BaseModel):
    """One scorer's score of an explanation."""

    scorer: str = Field(description="detection | fuzzing | simulation (or an imported score's name)")
    score: float = Field(description="Balanced accuracy in [0, 1] (detection, fuzzing) or a correlation (simulation)")
    model: str | None = Field(None, description="The model that did the scoring")
    n_examples: int | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = Field(None, description="ISO 8601 timestamp")


class ExplanationView(BaseModel):
    """An explanation of a feature with its scores."""

    id: str
    sae_id: str
    feature_index: int
    description: str
    method: str | None = Field(None, description="e.g. np_max-act-logits, oai_token-act-pair, import, manual")
    model: str | None = Field(None, description="The model that wrote it (None when a person did)")
    score: float | None = Field(None, description="The score that came with it (an import's), else None")
    source: str = Field("typed", description="typed | imported | generated")
    prompt_version: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    scores: list[ScoreView] = Field(default_factory=list)
    created_at: str | None = Field(None, description="ISO 8601 timestamp")


class ExplanationHit(ExplanationView):
    """A search hit: the explanation and the SAE it belongs to."""

    sae_name: str
    model_name: str | None = Field(None, description="The SAE's model")


class ExplanationSearchPage(Page[ExplanationHit]):
    """Explanations whose text matches the query, across SAEs."""


def add_explanation(session: Session, sae_id: str, feature_index: int, description: str, *,
                    method: str | None = None, model: str | None = None, score: float | None = None,
                    source: ExplanationSource = "typed", prompt_version: str | None = None,
                    job_id: str | None = None, details: dict[str, Any] | None = None) -> str:
    """Store an explanation; return its id.

    Raises:
        InvalidInputError: the description is empty.
    """
    text = description.strip()
    if not text:
        raise InvalidInputError(f"feature {feature_index}: an explanation needs a non-empty description")
    row = Explanation(sae_id=sae_id, feature_index=feature_index, description=text, method=method, model=model,
                      score=score, source=source, prompt_version=prompt_version, job_id=job_id,
                      details=details or {})
    session.add(row)
    session.flush()
    return row.id


def add_score(session: Session, explanation_id: str, scorer: str, score: float, *, model: str | None = None,
              n_examples: int | None = None, job_id: str | None = None,
              details: dict[str, Any] | None = None) -> None:
    """Store one scorer's score of an explanation.

    Raises:
        NotFoundError: no explanation `explanation_id`.
    """
    if session.get(Explanation, explanation_id) is None:
        raise NotFoundError(f"explanation {explanation_id} not found")
    session.add(ExplanationScore(explanation_id=explanation_id, scorer=scorer, score=float(score), model=model,
                                 n_examples=n_examples, job_id=job_id, details=details or {}))
    session.flush()


def _views(session: Session, rows: Iterable[Explanation]) -> list[ExplanationView]:
    rows = list(rows)
    scores: dict[str, list[ScoreView]] = {}
    ids = [r.id for r in rows]
    for start in range(0, len(ids), 500):
        for s in session.scalars(select(ExplanationScore).where(ExplanationScore.explanation_id.in_(ids[start:start + 500]))
                                 .order_by(ExplanationScore.created_at, ExplanationScore.id)):
            scores.setdefault(s.explanation_id, []).append(ScoreView(
                scorer=s.scorer, score=s.score, model=s.model, n_examples=s.n_examples, details=s.details or {},
                created_at=_iso(s.created_at)))
    return [ExplanationView(id=r.id, sae_id=r.sae_id, feature_index=r.feature_index, description=r.description,
                            method=r.method, model=r.model, score=r.score, source=r.source or "typed",
                            prompt_version=r.prompt_version, details=r.details or {}, scores=scores.get(r.id, []),
                            created_at=_iso(r.created_at)) for r in rows]


def explanations_by_feature(session: Session, sae_id: str,
                            features: Iterable[int] | None = None) -> dict[int, list[ExplanationView]]:
    """Every explanation of the SAE (of `features` only, when given) with its scores, oldest first per feature."""
    query = select(Explanation).where(Explanation.sae_id == sae_id)
    if features is not None:
        wanted = sorted(set(features))
        if not wanted:
            return {}
        query = query.where(Explanation.feature_index.in_(wanted)) if len(wanted) <= 5000 else query
    rows = session.scalars(query.order_by(Explanation.feature_index, Explanation.created_at, Explanation.id))
    out: dict[int, list[ExplanationView]] = {}
    keep = set(features) if features is not None else None
    for view in _views(session, rows):
        if keep is None or view.feature_index in keep:
            out.setdefault(view.feature_index, []).append(view)
    return out


def explained_features(session: Session, sae_id: str, *, method: str | None = None) -> set[int]:
    """The features of the SAE that have at least one explanation (by `method`, when given)."""
    query = select(Explanation.feature_index).where(Explanation.sae_id == sae_id)
    if method is not None:
        query = query.where(Explanation.method == method)
    return set(session.scalars(query.distinct()))


def explained_by_job(session: Session, sae_id: str, job_id: str) -> dict[int, dict[str, Any]]:
    """The features of the SAE that job `job_id` explained, with each explanation's `details` (a resumed job
    skips them)."""
    rows = session.execute(select(Explanation.feature_index, Explanation.details)
                           .where(Explanation.sae_id == sae_id, Explanation.job_id == job_id)).all()
    return {int(i): dict(details or {}) for i, details in rows}


def scores_by_job(session: Session, job_id: str, scorer: str) -> list[tuple[int, ExplanationScore]]:
    """(feature index, score) of every `scorer` score job `job_id` stored (a resumed job skips them)."""
    rows = session.execute(select(Explanation.feature_index, ExplanationScore)
                           .join(Explanation, Explanation.id == ExplanationScore.explanation_id)
                           .where(ExplanationScore.job_id == job_id, ExplanationScore.scorer == scorer)).all()
    return [(int(i), score) for i, score in rows]


def search_explanations(session: Session, query: str, *, sae_id: str | None = None, page: int = 1,
                        page_size: int = 50) -> ExplanationSearchPage:
    """Explanations whose description contains every word of `query` (case-insensitive), across SAEs.

    Raises:
        InvalidInputError: the query is empty.
        NotFoundError: `sae_id` names no SAE.
    """
    words = query.lower().split()
    if not words:
        raise InvalidInputError("the search needs some text")
    if sae_id is not None and session.get(SAERecord, sae_id) is None:
        raise NotFoundError(f"SAE {sae_id} not found")
    cond = [func.lower(Explanation.description).contains(w, autoescape=True) for w in words]
    base = select(Explanation, SAERecord).join(SAERecord, SAERecord.id == Explanation.sae_id).where(*cond)
    if sae_id is not None:
        base = base.where(Explanation.sae_id == sae_id)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = session.execute(base.order_by(SAERecord.name, Explanation.feature_index, Explanation.created_at)
                           .offset((max(page, 1) - 1) * page_size).limit(page_size)).all()
    views = _views(session, [e for e, _ in rows])
    hits = [ExplanationHit(**v.model_dump(), sae_name=sae.name, model_name=sae.model_name)
            for v, (_, sae) in zip(views, rows, strict=True)]
    return ExplanationSearchPage(items=hits, total=total, page=max(page, 1), page_size=page_size)


__all__ = ["ExplanationHit", "ExplanationSearchPage", "ExplanationSource", "ExplanationView", "ScoreView",
           "add_explanation", "add_score", "explained_by_job", "explained_features", "explanations_by_feature", "scores_by_job",
           "search_explanations"]

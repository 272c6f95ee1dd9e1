"""REST routes: extractions, feature lists (SQL over feature summaries), feature dashboards and labels."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from mistudio.api.deps import get_session, get_studio
from mistudio.catalog.explanations import ExplanationView, explanations_by_feature
from mistudio.catalog.service import get_record
from mistudio.dashboards.reader import feature_dashboard
from mistudio.dashboards.schemas import Explanation, ExplanationScore, FeatureDashboardView
from mistudio.extraction import service as extraction_service
from mistudio.extraction.schemas import Extraction, ExtractionStarted, FeatureLabel, FeaturePage
from mistudio.extraction.summaries import get_label, list_features, set_label
from mistudio.studio import Studio

router = APIRouter(tags=["features"])


class ExtractRequest(BaseModel):
    model: str | None = Field(None, description="HF model id or local folder; default: the SAE's model.")
    dataset: str = Field(description="A .txt/.jsonl/.parquet file or folder, a save_to_disk folder, "
                                     "`builtin:corpus`, or an HF dataset id.")
    n_tokens: int | None = Field(None, ge=1)
    n_prompts: int | None = Field(None, ge=1)
    context_size: int | None = Field(None, ge=2, le=8192)
    top_k: int | None = Field(None, ge=1, le=1000)
    batch_size: int | None = Field(None, ge=1)
    device: str | None = None
    seed: int | None = None
    text_field: str | None = None
    neuronpedia: bool | None = Field(None, description="Also compute the Neuronpedia data (a second pass over the "
                                                       "windows; default true). A completed extraction without it "
                                                       "gets only that pass when requested again.")


class LabelRequest(BaseModel):
    label: str | None = Field(None, max_length=512)
    category: str | None = Field(None, max_length=255)


@router.post("/saes/{sae_id}/extract", status_code=202, response_model=ExtractionStarted,
             response_model_exclude_unset=True)
def start_extract(sae_id: str, body: ExtractRequest, studio: Studio = Depends(get_studio)) -> ExtractionStarted:
    """Queue an extraction job (or reuse a finished identical one)."""
    settings = body.model_dump(exclude={"model", "dataset"}, exclude_none=True)
    return extraction_service.start_extraction(studio, sae_id, body.model, body.dataset, **settings)


@router.get("/saes/{sae_id}/extractions", response_model=list[Extraction], response_model_exclude_unset=True)
def extractions(sae_id: str, studio: Studio = Depends(get_studio)) -> list[Extraction]:
    """The SAE's extractions, newest first."""
    return extraction_service.list_extractions(studio, sae_id)


@router.get("/saes/{sae_id}/features", response_model=FeaturePage, response_model_exclude_unset=True)
def features(sae_id: str, sort: Literal["index", "frequency", "max", "mean", "score"] = "index",
             order: Literal["asc", "desc"] = "asc", dead: bool | None = None, labeled: bool | None = None,
             min_freq: float | None = None, max_freq: float | None = None, search: str | None = None,
             explained: bool | None = Query(None, description="true: with a label or an explanation; false: "
                                                               "neither"),
             min_score: float | None = Query(None, description="best score of `scorer` at least this"),
             max_score: float | None = Query(None, description="best score of `scorer` at most this"),
             scorer: Literal["detection", "fuzzing", "simulation"] | None = Query(
                 None, description="the scorer whose scores `min_score`, `max_score` and `sort=score` read "
                                   "(default: any)"),
             page: int = Query(1, ge=1), page_size: int = Query(50, ge=1, le=1000),
             extraction_id: str | None = None, studio: Studio = Depends(get_studio),
             session: Session = Depends(get_session)) -> FeaturePage:
    """One page of the SAE's features (latest completed extraction unless `extraction_id` is given)."""
    extraction_id = extraction_id or extraction_service.latest_extraction_id(studio, sae_id)
    return list_features(session, extraction_id, sort=sort, order=order, dead=dead, labeled=labeled,
                         min_freq=min_freq, max_freq=max_freq, search=search, explained=explained,
                         min_score=min_score, max_score=max_score, scorer=scorer, page=page, page_size=page_size)


@router.get("/saes/{sae_id}/features/{feature_id}/dashboard", response_model=FeatureDashboardView,
            response_model_exclude_unset=True)
def dashboard(sae_id: str, feature_id: int, n_examples: int | None = Query(None, ge=1),
              logit_k: int | None = Query(None, ge=1, le=50), n_bins: int | None = Query(None, ge=2, le=200),
              rank_tokens_by: Literal["sum", "count", "mean"] = "sum", extraction_id: str | None = None,
              include_intervals: bool = Query(True, description="add the interval (quantile-band) examples"),
              studio: Studio = Depends(get_studio),
              session: Session = Depends(get_session)) -> FeatureDashboardView:
    """The feature's dashboard data plus its label and explanations."""
    extraction_id, store = extraction_service.get_store(studio, sae_id, extraction_id)
    data = feature_dashboard(store, feature_id, n_examples=n_examples, logit_k=logit_k, n_bins=n_bins,
                             rank_tokens_by=rank_tokens_by, include_intervals=include_intervals)
    label = get_label(session, extraction_id, feature_id)
    views = explanations_by_feature(session, sae_id, [feature_id]).get(feature_id, [])
    return FeatureDashboardView(**data, sae_id=sae_id, extraction_id=extraction_id, label=label.label,
                                category=label.category, explanations=[_explanation(v) for v in views])


def _explanation(view: ExplanationView) -> Explanation:
    """An explanation with its scores as the dashboard serves it."""
    return Explanation(id=view.id, description=view.description, method=view.method, model=view.model,
                       score=view.score, source=view.source, prompt_version=view.prompt_version,
                       scores=[ExplanationScore(scorer=s.scorer, score=s.score, model=s.model,
                                                n_examples=s.n_examples, created_at=s.created_at)
                               for s in view.scores],
                       created_at=view.created_at)


@router.put("/saes/{sae_id}/features/{index}/label", response_model=FeatureLabel, response_model_exclude_unset=True)
def label(sae_id: str, index: int, body: LabelRequest, session: Session = Depends(get_session)) -> FeatureLabel:
    """Set (or clear, with null) a feature's label."""
    get_record(session, sae_id)
    return set_label(session, sae_id, index, body.label, body.category)

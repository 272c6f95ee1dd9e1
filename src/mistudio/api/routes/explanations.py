"""REST routes: finding features by the text of their explanations, across SAEs."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from mistudio.api.deps import get_session
from mistudio.catalog.explanations import ExplanationSearchPage, search_explanations

router = APIRouter(tags=["explanations"])


@router.get("/explanations/search", response_model=ExplanationSearchPage, response_model_exclude_unset=True)
def search(q: str = Query(..., min_length=1, description="Words that must all appear in the explanation"),
           sae_id: str | None = Query(None, description="Only explanations of this SAE"),
           page: int = Query(1, ge=1), page_size: int = Query(50, ge=1, le=500),
           session: Session = Depends(get_session)) -> ExplanationSearchPage:
    """Explanations (typed, imported, generated) whose text contains every word of `q`, with their scores."""
    return search_explanations(session, q, sae_id=sae_id, page=page, page_size=page_size)

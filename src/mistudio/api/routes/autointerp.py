"""REST routes: estimate and start explaining an SAE's features with an OpenAI-compatible model."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mistudio.api.deps import get_studio
from mistudio.autointerp.explain import estimate_explain, explain_methods, start_explain
from mistudio.autointerp.schemas import ExplainEstimate, ExplainMethod, ExplainRequest, ExplainStarted
from mistudio.studio import Studio

router = APIRouter(tags=["autointerp"])


@router.post("/saes/{sae_id}/explain/estimate", response_model=ExplainEstimate)
def explain_estimate(sae_id: str, body: ExplainRequest, studio: Studio = Depends(get_studio)) -> ExplainEstimate:
    """Requests, tokens, cost (with prices given) and time of explaining the selected features; nothing is sent."""
    return estimate_explain(studio, sae_id, body)


@router.post("/saes/{sae_id}/explain", status_code=202, response_model=ExplainStarted)
def explain(sae_id: str, body: ExplainRequest, studio: Studio = Depends(get_studio)) -> ExplainStarted:
    """Queue an `explain` job (progress, pause/resume/cancel through /jobs); the API key is kept in memory only."""
    return start_explain(studio, sae_id, body)


@router.get("/explain/methods", response_model=list[ExplainMethod])
def methods() -> list[ExplainMethod]:
    """The explanation methods, the default first."""
    return explain_methods()

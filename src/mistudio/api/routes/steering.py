"""REST routes: steer the SAE's model with its features (Neuronpedia's semantics), sweep strengths, stored runs."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from mistudio.api.deps import get_studio
from mistudio.steering import runs, service
from mistudio.steering.schemas import (
    SteeringRun,
    SteeringRunPage,
    SteerRequest,
    SteerResult,
    SweepRequest,
    SweepResult,
)
from mistudio.studio import Studio

router = APIRouter(tags=["steering"])


@router.post("/steer", response_model=SteerResult, response_model_exclude_none=True)
def steer(body: SteerRequest, studio: Studio = Depends(get_studio)) -> SteerResult:
    """STEERED and/or DEFAULT completions of the prompt (only the types asked for), stored as a run; with
    `compare_neuronpedia`, Neuronpedia's answer to the same request beside them."""
    return service.steer(studio, body)


@router.post("/steer/sweep", response_model=SweepResult)
def steer_sweep(body: SweepRequest, studio: Studio = Depends(get_studio)) -> SweepResult:
    """The same prompt steered at each strength multiplier, beside one DEFAULT completion; stored as a run."""
    return service.sweep(studio, body)


@router.get("/steer/runs", response_model=SteeringRunPage)
def list_steering_runs(sae_id: str | None = None, page: int = Query(1, ge=1),
                       page_size: int = Query(50, ge=1, le=500),
                       studio: Studio = Depends(get_studio)) -> SteeringRunPage:
    """Stored steering runs (of one SAE with `sae_id`), newest first."""
    return runs.list_runs(studio, sae_id, page, page_size)


@router.get("/steer/runs/{run_id}", response_model=SteeringRun)
def get_steering_run(run_id: str, studio: Studio = Depends(get_studio)) -> SteeringRun:
    """One stored steering run: its settings and outputs."""
    return runs.get_run(studio, run_id)

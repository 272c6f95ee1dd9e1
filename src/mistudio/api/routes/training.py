"""REST routes: training records and training runs (start, list, show, curves; pause, resume and cancel are the
jobs routes on the run's `job_id`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from mistudio.api.deps import get_session, get_studio
from mistudio.catalog import service
from mistudio.catalog.schemas import Training, TrainingList
from mistudio.studio import Studio
from mistudio.training.schemas import TrainingCurves, TrainingStarted, TrainRequest

router = APIRouter(tags=["trainings"])


class TrainingRequest(BaseModel):
    name: str
    model_name: str | None = None
    hook_name: str | None = None
    dataset: str | None = None
    hyperparameters: dict = Field(default_factory=dict)
    metrics: dict = Field(default_factory=dict)
    n_training_tokens: int | None = None


@router.post("/trainings", status_code=201, response_model=Training)
def create_training(body: TrainingRequest, session: Session = Depends(get_session)) -> Training:
    """Record a training run done elsewhere (an SAE can then be linked to it)."""
    return service.create_training(session, **body.model_dump())


@router.post("/trainings/start", status_code=202, response_model=TrainingStarted)
async def start_training(body: TrainRequest, studio: Studio = Depends(get_studio)) -> TrainingStarted:
    """Queue a training job (one Training record per SAE, in request order); the same request whose job was
    interrupted, paused or failed resumes it from its checkpoint instead (`resumed`).

    Raises:
        ConflictError: the same training is already pending or running.
    """
    from mistudio.training.service import start_training as start

    return await run_in_threadpool(start, studio, body)


@router.get("/trainings", response_model=TrainingList)
def get_trainings(session: Session = Depends(get_session)) -> TrainingList:
    """All training records, newest first."""
    return TrainingList(items=service.list_trainings(session))


@router.get("/trainings/{training_id}", response_model=Training)
def get_training(training_id: str, session: Session = Depends(get_session)) -> Training:
    """One training record.

    Raises:
        NotFoundError: no training record `training_id`.
    """
    return service.get_training(session, training_id)


@router.get("/trainings/{training_id}/curves", response_model=TrainingCurves)
def get_curves(training_id: str, studio: Studio = Depends(get_studio)) -> TrainingCurves:
    """The run's logged steps (loss, MSE, L0, explained variance, dead fraction, lr), its held-out evaluations and
    the latest density histogram.

    Raises:
        NotFoundError: no training record `training_id`.
    """
    from mistudio.training.service import training_curves

    return training_curves(studio, training_id)

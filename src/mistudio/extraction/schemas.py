"""Response models of extractions, feature lists and feature labels."""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from mistudio.db.models import Extraction as ExtractionRecord
from mistudio.paging import Page

ExtractionStatus = Literal["pending", "running", "paused", "completed", "failed", "cancelled"]


class Extraction(BaseModel):
    """A dashboard-data extraction of one SAE over one dataset."""

    model_config = ConfigDict(extra="allow")

    id: str
    sae_id: str
    status: ExtractionStatus
    model: str | None = Field(description="HF model id or local folder the activations came from")
    dataset: str | None
    settings: dict[str, Any] = Field(description="Extraction settings (n_tokens, context_size, top_k, ...)")
    n_tokens: int | None
    n_features: int | None
    job_id: str | None
    statistics: dict[str, Any]
    created_at: str | None = Field(description="ISO 8601 timestamp")
    finished_at: str | None = Field(description="ISO 8601 timestamp")

    @classmethod
    def from_record(cls, row: ExtractionRecord) -> Extraction:
        """The view of an extraction row."""
        return cls(id=row.id, sae_id=row.sae_id, status=cast(ExtractionStatus, row.status), model=row.model_name,
                   dataset=row.dataset, settings=row.settings, n_tokens=row.n_tokens, n_features=row.n_features,
                   job_id=row.job_id, statistics=row.statistics or {},
                   created_at=row.created_at.isoformat() if row.created_at else None,
                   finished_at=row.finished_at.isoformat() if row.finished_at else None)


class ExtractionStarted(BaseModel):
    """A queued (or reused) extraction."""

    model_config = ConfigDict(extra="allow")

    job_id: str | None
    extraction_id: str
    reused: bool = Field(description="True when a finished identical extraction was reused and nothing was queued")


class FeatureSummary(BaseModel):
    """One feature's summary row, for lists and filters."""

    model_config = ConfigDict(extra="allow")

    feature_index: int
    activation_frequency: float
    max_activation: float
    mean_activation: float
    dead: bool
    label: str | None
    category: str | None
    top_token: str | None = Field(description="The token with the most activation in the top examples")
    explanation: str | None = Field(None, description="The feature's latest explanation (typed, imported or "
                                                      "generated), when it has one")
    n_explanations: int = Field(0, description="How many explanations the feature has (its label not counted)")
    best_score: float | None = Field(None, description="The best score of any of its explanations (of the "
                                                       "listing's `scorer` when one was asked for)")


class FeaturePage(Page[FeatureSummary]):
    """One page of an extraction's features."""

    model_config = ConfigDict(extra="allow")

    extraction_id: str


class FeatureLabel(BaseModel):
    """A feature's label after setting it."""

    model_config = ConfigDict(extra="allow")

    feature_index: int
    label: str | None
    category: str | None

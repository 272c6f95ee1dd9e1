"""The JSON view of catalog rows (API, CLI --json, Python API)."""

from __future__ import annotations

from typing import Any

from mistudio.catalog.schemas import SAE
from mistudio.catalog.schemas import Training as TrainingView
from mistudio.db.models import SAERecord, Training


def sae_to_dict(record: SAERecord, n_features_extracted: int | None = None,
                latest_extraction_id: str | None = None) -> dict[str, Any]:
    """A catalogued SAE as a plain dict (the JSON of `SAE.from_record`)."""
    return SAE.from_record(record, n_features_extracted, latest_extraction_id).model_dump()


def training_to_dict(training: Training) -> dict[str, Any]:
    """A training record as a plain dict (the JSON of `Training.from_record`)."""
    return TrainingView.from_record(training).model_dump()

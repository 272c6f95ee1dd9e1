"""The JSON view of catalog rows (API, CLI --json, Python API)."""

from __future__ import annotations

from typing import Any

from mistudio.db.models import SAERecord, Training


def sae_to_dict(record: SAERecord, n_features_extracted: int | None = None,
                latest_extraction_id: str | None = None) -> dict[str, Any]:
    """A catalogued SAE as a plain dict."""
    return {
        "id": record.id, "name": record.name, "source": record.source, "status": record.status,
        "model_name": record.model_name, "layer": record.layer, "hook_name": record.hook_name,
        "head_index": record.head_index, "d_in": record.d_in, "d_sae": record.d_sae,
        "architecture": record.architecture, "format": record.format, "dtype": record.dtype,
        "repo_id": record.repo_id, "path_in_repo": record.path_in_repo, "revision": record.revision,
        "local_path": record.local_path, "size_bytes": record.size_bytes, "metadata": record.metadata_json or {},
        "training_id": record.training_id, "job_id": record.job_id, "error_message": record.error_message,
        "n_features_extracted": n_features_extracted or 0, "latest_extraction_id": latest_extraction_id,
        "created_at": record.created_at.isoformat() if record.created_at else None,
        "updated_at": record.updated_at.isoformat() if record.updated_at else None,
    }


def training_to_dict(training: Training) -> dict[str, Any]:
    """A training record as a plain dict."""
    return {
        "id": training.id, "name": training.name, "model_name": training.model_name,
        "hook_name": training.hook_name, "dataset": training.dataset,
        "hyperparameters": training.hyperparameters or {}, "metrics": training.metrics or {},
        "n_training_tokens": training.n_training_tokens,
        "started_at": training.started_at.isoformat() if training.started_at else None,
        "finished_at": training.finished_at.isoformat() if training.finished_at else None,
        "created_at": training.created_at.isoformat() if training.created_at else None,
    }

"""SQLAlchemy ORM models: the SAE catalog, training records, jobs, extractions, feature summaries,
explanations and exports. The schema is created only by the Alembic migrations in `migrations/`."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(timezone.utc)


def new_id() -> str:
    """A fresh UUID4 as a string (portable across SQLite and PostgreSQL)."""
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    type_annotation_map = {dict: JSON, list: JSON}


class Training(Base):
    """A training record: how an SAE was trained (model, hook, dataset, hyper-parameters, metrics)."""

    __tablename__ = "trainings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    model_name: Mapped[str | None] = mapped_column(String(255))
    hook_name: Mapped[str | None] = mapped_column(String(255))
    dataset: Mapped[str | None] = mapped_column(String(500))
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    n_training_tokens: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # a run of the studio's trainer (typed records leave these empty; status "recorded")
    status: Mapped[str] = mapped_column(String(20), default="recorded")  # recorded|running|paused|completed|failed|…
    job_id: Mapped[str | None] = mapped_column(String(36))
    architecture: Mapped[str | None] = mapped_column(String(50))
    hook_name_out: Mapped[str | None] = mapped_column(String(255))
    device: Mapped[str | None] = mapped_column(String(50))
    tokens_seen: Mapped[int | None] = mapped_column(BigInteger)
    wall_time_s: Mapped[float | None] = mapped_column(Float)
    run_dir: Mapped[str | None] = mapped_column(String(500))  # relative to MISTUDIO_HOME: checkpoints, curves


class SAERecord(Base):
    """One catalogued SAE. `local_path` is relative to MISTUDIO_HOME."""

    __tablename__ = "saes"
    __table_args__ = (
        Index("ix_saes_model_layer", "model_name", "layer"),
        Index("ix_saes_source", "source"),
        Index("ix_saes_created_at", "created_at"),
        Index("ix_saes_name", "name"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(32))  # trained|huggingface|gemma_scope|upload
    status: Mapped[str] = mapped_column(String(32), default="ready")  # downloading|ready|error
    model_name: Mapped[str | None] = mapped_column(String(255))
    layer: Mapped[int | None] = mapped_column(Integer)
    hook_name: Mapped[str | None] = mapped_column(String(255))
    head_index: Mapped[int | None] = mapped_column(Integer)
    d_in: Mapped[int | None] = mapped_column(Integer)
    d_sae: Mapped[int | None] = mapped_column(Integer)
    architecture: Mapped[str | None] = mapped_column(String(50))
    format: Mapped[str | None] = mapped_column(String(50))
    dtype: Mapped[str | None] = mapped_column(String(20))
    repo_id: Mapped[str | None] = mapped_column(String(255))
    path_in_repo: Mapped[str | None] = mapped_column(String(500))
    revision: Mapped[str | None] = mapped_column(String(100))
    local_path: Mapped[str | None] = mapped_column(String(500))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error_message: Mapped[str | None] = mapped_column(Text)
    metadata_json: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    training_id: Mapped[str | None] = mapped_column(ForeignKey("trainings.id", ondelete="SET NULL"))
    job_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Job(Base):
    """A background job (download, extraction, export) with progress, stages and its result."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status", "status"), Index("ix_jobs_sae_id", "sae_id"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    # pending|running|paused|interrupted|completed|failed|cancelled
    sae_id: Mapped[str | None] = mapped_column(String(36))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # host:pid:start-time of the process running the job (jobs.liveness), so a dead one is recognised
    runner: Mapped[str | None] = mapped_column(String(200))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    current_stage: Mapped[str | None] = mapped_column(String(100))
    stages: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    message: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    error_details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    resumable: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    pause_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Extraction(Base):
    """A dashboard-data extraction of one SAE over one dataset; its arrays live in the feature store."""

    __tablename__ = "extractions"
    __table_args__ = (Index("ix_extractions_sae_id", "sae_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    sae_id: Mapped[str] = mapped_column(ForeignKey("saes.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|running|paused|completed|failed|cancelled
    model_name: Mapped[str | None] = mapped_column(String(500))
    dataset: Mapped[str | None] = mapped_column(String(500))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    store_path: Mapped[str | None] = mapped_column(String(500))  # relative to MISTUDIO_HOME
    n_tokens: Mapped[int | None] = mapped_column(BigInteger)
    n_features: Mapped[int | None] = mapped_column(Integer)
    job_id: Mapped[str | None] = mapped_column(String(36))
    statistics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class FeatureSummary(Base):
    """Per-feature summary row so the UI and export can filter and page without loading arrays."""

    __tablename__ = "feature_summaries"
    __table_args__ = (
        UniqueConstraint("extraction_id", "feature_index", name="uq_feature_summaries_extraction_feature"),
        Index("ix_feature_summaries_sae_freq", "sae_id", "activation_frequency"),
        Index("ix_feature_summaries_sae_max", "sae_id", "max_activation"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sae_id: Mapped[str] = mapped_column(ForeignKey("saes.id", ondelete="CASCADE"))
    extraction_id: Mapped[str] = mapped_column(ForeignKey("extractions.id", ondelete="CASCADE"))
    feature_index: Mapped[int] = mapped_column(Integer)
    activation_frequency: Mapped[float] = mapped_column(Float, default=0.0)
    max_activation: Mapped[float] = mapped_column(Float, default=0.0)
    mean_activation: Mapped[float] = mapped_column(Float, default=0.0)
    dead: Mapped[bool] = mapped_column(Boolean, default=False)
    top_token: Mapped[str | None] = mapped_column(String(255))
    label: Mapped[str | None] = mapped_column(String(512))
    category: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Explanation(Base):
    """An explanation of a feature (several per feature allowed)."""

    __tablename__ = "explanations"
    __table_args__ = (Index("ix_explanations_sae_feature", "sae_id", "feature_index"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    sae_id: Mapped[str] = mapped_column(ForeignKey("saes.id", ondelete="CASCADE"))
    feature_index: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    method: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(255))
    score: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    source: Mapped[str] = mapped_column(String(20), default="typed")  # typed|imported|generated
    prompt_version: Mapped[str | None] = mapped_column(String(50))
    job_id: Mapped[str | None] = mapped_column(String(36))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # tokens used, cost, endpoint host, …


class ExplanationScore(Base):
    """A score of one explanation by one scorer (detection, fuzzing, simulation)."""

    __tablename__ = "explanation_scores"
    __table_args__ = (Index("ix_explanation_scores_explanation", "explanation_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    explanation_id: Mapped[str] = mapped_column(ForeignKey("explanations.id", ondelete="CASCADE"))
    scorer: Mapped[str] = mapped_column(String(50))
    score: Mapped[float] = mapped_column(Float)
    model: Mapped[str | None] = mapped_column(String(255))
    n_examples: Mapped[int | None] = mapped_column(Integer)
    job_id: Mapped[str | None] = mapped_column(String(36))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExportRecord(Base):
    """A Neuronpedia/SAELens export."""

    __tablename__ = "exports"
    __table_args__ = (Index("ix_exports_sae_id", "sae_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    sae_id: Mapped[str] = mapped_column(ForeignKey("saes.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(String(36))
    extraction_id: Mapped[str | None] = mapped_column(String(36))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    output_path: Mapped[str | None] = mapped_column(String(500))  # relative to MISTUDIO_HOME
    file_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    feature_count: Mapped[int | None] = mapped_column(Integer)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error_message: Mapped[str | None] = mapped_column(Text)
    base_export_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UploadBatch(Base):
    """One batch of a Neuronpedia API upload, so a failed upload resumes where it stopped."""

    __tablename__ = "upload_batches"
    __table_args__ = (UniqueConstraint("upload_key", "batch_index", name="uq_upload_batches_key_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    upload_key: Mapped[str] = mapped_column(String(255))
    batch_index: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    n_features: Mapped[int] = mapped_column(Integer, default=0)
    error_message: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class SteeringRun(Base):
    """A steering run: the prompt, the settings (features, method, sampling) and its outputs (and comparison)."""

    __tablename__ = "steering_runs"
    __table_args__ = (Index("ix_steering_runs_sae_id", "sae_id"), Index("ix_steering_runs_created_at", "created_at"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    sae_id: Mapped[str] = mapped_column(ForeignKey("saes.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # steer|sweep
    prompt: Mapped[str] = mapped_column(Text)
    chat: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

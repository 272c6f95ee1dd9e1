"""Response models of the catalog: SAEs, their pages and facets, statistics, training records."""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from mistudio.db.models import SAERecord
from mistudio.db.models import Training as TrainingRecord
from mistudio.paging import Page

SAESource = Literal["trained", "huggingface", "gemma_scope", "upload"]
SAEStatus = Literal["downloading", "ready", "error"]
TrainingStatus = Literal["recorded", "pending", "running", "paused", "interrupted", "completed", "failed", "cancelled"]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


class SAE(BaseModel):
    """A catalogued SAE."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    source: SAESource
    status: SAEStatus
    model_name: str | None
    layer: int | None
    hook_name: str | None = Field(description="TransformerLens hook the SAE reads, e.g. blocks.3.hook_resid_post")
    head_index: int | None
    d_in: int | None = Field(description="Width of the activations the SAE reads")
    d_sae: int | None = Field(description="Number of SAE features")
    architecture: str | None = Field(description="standard, topk, jumprelu, gated, ...")
    format: str | None = Field(description="On-disk format the SAE was imported from (saelens, gemma_scope, ...)")
    dtype: str | None
    repo_id: str | None = Field(description="HuggingFace repository it was downloaded from")
    path_in_repo: str | None
    revision: str | None
    local_path: str | None = Field(description="Folder of its files, relative to MISTUDIO_HOME")
    size_bytes: int | None
    metadata: dict[str, Any]
    training_id: str | None
    job_id: str | None = Field(description="The download/import job that created it")
    error_message: str | None
    n_features_extracted: int = Field(description="Features in its newest completed extraction (0 if none)")
    latest_extraction_id: str | None = Field(description="Its newest completed extraction")
    created_at: str | None = Field(description="ISO 8601 timestamp")
    updated_at: str | None = Field(description="ISO 8601 timestamp")
    duplicate_of: str | None = Field(None, description="Set only in an import's answer when the same weights and "
                                     "config were already catalogued: the id of that SAE, which is what came back "
                                     "(nothing new was stored)")

    @classmethod
    def from_record(cls, record: SAERecord, n_features_extracted: int | None = None,
                    latest_extraction_id: str | None = None) -> SAE:
        """The view of a catalog row, with the counts of its newest completed extraction."""
        return cls(
            id=record.id, name=record.name, source=cast(SAESource, record.source),
            status=cast(SAEStatus, record.status),
            model_name=record.model_name, layer=record.layer, hook_name=record.hook_name,
            head_index=record.head_index, d_in=record.d_in, d_sae=record.d_sae, architecture=record.architecture,
            format=record.format, dtype=record.dtype, repo_id=record.repo_id, path_in_repo=record.path_in_repo,
            revision=record.revision, local_path=record.local_path, size_bytes=record.size_bytes,
            metadata=record.metadata_json or {}, training_id=record.training_id, job_id=record.job_id,
            error_message=record.error_message, n_features_extracted=n_features_extracted or 0,
            latest_extraction_id=latest_extraction_id, created_at=_iso(record.created_at),
            updated_at=_iso(record.updated_at),
        )


class Facets(BaseModel):
    """Distinct values to offer in the catalog's filter menus."""

    model_config = ConfigDict(extra="forbid")

    models: list[str]
    layers: list[int]
    sources: list[str]
    architectures: list[str]


class SAEPage(Page[SAE]):
    """One page of the catalog with the total count and filter facets."""

    model_config = ConfigDict(extra="forbid")

    facets: Facets


class NormSummary(BaseModel):
    """Min, mean, max and standard deviation of a set of norms or values."""

    min: float
    mean: float
    max: float
    std: float


class SAEStatistics(BaseModel):
    """Weight statistics of an SAE, its size, and L0 / explained variance when its source gives them."""

    model_config = ConfigDict(extra="allow")

    architecture: str
    d_in: int
    d_sae: int
    decoder_norm: NormSummary = Field(description="Summary of the decoder rows' L2 norms")
    encoder_norm: NormSummary = Field(description="Summary of the encoder columns' L2 norms")
    zero_decoder_rows: int = Field(description="Decoder rows with (near) zero norm: features that write nothing")
    zero_encoder_columns: int = Field(description="Encoder columns with (near) zero norm: features that never fire")
    num_parameters: int
    weights_nbytes: int
    dtype: str
    size_bytes: int | None = Field(description="Bytes of the SAE's files on disk")
    threshold: NormSummary | None = Field(None, description="JumpReLU thresholds (JumpReLU SAEs only)")
    l0: float | int | None = None
    average_l0: float | int | None = None
    variance_explained: float | int | None = None
    explained_variance: float | int | None = None


class Training(BaseModel):
    """A training record: how an SAE was trained."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    model_name: str | None
    hook_name: str | None
    dataset: str | None
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    n_training_tokens: int | None
    started_at: str | None = Field(description="ISO 8601 timestamp")
    finished_at: str | None = Field(description="ISO 8601 timestamp")
    created_at: str | None = Field(description="ISO 8601 timestamp")
    status: TrainingStatus = Field(description="recorded (typed by hand) or the state of the studio's training run")
    job_id: str | None = Field(description="The training job (runs of the studio's trainer)")
    architecture: str | None
    hook_name_out: str | None = Field(description="A transcoder's output hook")
    device: str | None
    tokens_seen: int | None = Field(description="Tokens trained so far (at the last checkpoint while running)")
    wall_time_s: float | None
    run_dir: str | None = Field(description="Folder of the run's curves and checkpoints, relative to MISTUDIO_HOME")
    sae_id: str | None = Field(description="The SAE this training produced (or that was linked to it)")

    @classmethod
    def from_record(cls, training: TrainingRecord, sae_id: str | None = None) -> Training:
        """The view of a training row (`sae_id`: the catalogued SAE linked to it)."""
        return cls(
            id=training.id, name=training.name, model_name=training.model_name, hook_name=training.hook_name,
            dataset=training.dataset, hyperparameters=training.hyperparameters or {},
            metrics=training.metrics or {}, n_training_tokens=training.n_training_tokens,
            started_at=_iso(training.started_at), finished_at=_iso(training.finished_at),
            created_at=_iso(training.created_at), status=cast(TrainingStatus, training.status or "recorded"),
            job_id=training.job_id, architecture=training.architecture, hook_name_out=training.hook_name_out,
            device=training.device, tokens_seen=training.tokens_seen, wall_time_s=training.wall_time_s,
            run_dir=training.run_dir, sae_id=sae_id,
        )


class TrainingList(BaseModel):
    """All training records, newest first."""

    items: list[Training]


class SAEConfigView(BaseModel):
    """An SAE's configuration as read from its files."""

    model_config = ConfigDict(extra="forbid")

    format: str = Field(description="Detected on-disk format")
    config: dict[str, Any] = Field(description="The normalized SAE configuration (d_in, d_sae, architecture, ...)")
    source_config: dict[str, Any] = Field(description="The configuration file as the source wrote it")
    files: list[str] = Field(description="The SAE's files")


class ConvertResult(BaseModel):
    """Where a converted SAE was written."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Folder written")
    format: Literal["saelens", "mistudio"]


class DownloadStarted(BaseModel):
    """A queued Hub download: the job and the SAE row it fills."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    sae_id: str

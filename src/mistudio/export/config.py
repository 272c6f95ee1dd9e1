"""Export configuration: format, feature selection, data options, Neuronpedia ids, presets."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mistudio.errors import InvalidInputError

MODEL_ID_RE = re.compile(r"^[a-z][a-z0-9.-]*[a-z0-9]$")
SOURCE_SET_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
SUFFIX_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")  # OWNER/NAME on the HuggingFace Hub
# The user Neuronpedia seeds on a fresh instance; SAEDashboard's converter falls back to it.
FALLBACK_CREATOR_ID = "clkht01d40000jv08hvalcvly"
EXPORT_VERSION = "1.0"


class FeatureSelection(BaseModel):
    """Which features to export. Filters combine with AND."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["all", "range", "list", "labeled", "label_text", "frequency", "max_activation"] = "all"
    start: int | None = Field(None, ge=0, description="range: first index (inclusive)")
    stop: int | None = Field(None, ge=0, description="range: last index (exclusive)")
    indices: list[int] | None = Field(None, description="list: explicit feature indices")
    text: str | None = Field(None, description="label_text: case-insensitive text in the label or category")
    min_frequency: float | None = Field(None, ge=0, le=1)
    max_frequency: float | None = Field(None, ge=0, le=1)
    min_max_activation: float | None = Field(None, description="max_activation: keep features whose max ≥ this")
    include_dead: bool = True


class ExportConfig(BaseModel):
    """Everything that decides an export's content. Two exports with equal configs and inputs are byte-identical."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["neuronpedia", "saelens", "both"] = "both"
    selection: FeatureSelection = Field(default_factory=FeatureSelection)
    n_examples: int = Field(20, ge=20, le=100, description="top activation examples per feature")
    interval_examples: bool = Field(False, description="also export the interval (quantile-band) examples "
                                    "below the top group in features/{i}.json (about doubles the size); the "
                                    "Neuronpedia outputs always hold SAEDashboard's quantile groups")
    logit_k: int = Field(20, ge=10, le=50, description="top positive/negative logits per feature")
    n_bins: int = Field(50, ge=20, le=100, description="activation histogram bins")
    top_tokens: int = Field(20, ge=0, le=200, description="top tokens per feature (0 leaves them out)")
    include_explanations: bool = True
    token_ids: bool = Field(False, description="also write each example's token ids into features/{i}.json")
    compression: Literal["none", "gzip"] = "gzip"
    saedashboard_batches: bool = Field(False, description="also write neuronpedia/batch-{k}.json as SAEDashboard's "
                                       "neuronpedia-runner does (a third copy of every example; Neuronpedia imports "
                                       "the bulk-import rows, which are always written)")
    batch_size: int = Field(128, ge=1, le=4096, description="features per Neuronpedia batch file")
    # Neuronpedia identity
    model_id: str | None = Field(None, description="the model's id: its Neuronpedia id (e.g. gemma-2-2b) or its "
                                 "HuggingFace Hub id (google/gemma-2-2b, from which the Neuronpedia id is derived); "
                                 "default: from the SAE. Required when the model is a local folder: the archive "
                                 "names it instead of the path")
    dataset_id: str | None = Field(None, description="the HuggingFace dataset id of the texts; required when the "
                                   "extraction (or the SAE's training) read a local file: the archive names it "
                                   "instead of the path")
    np_logit_lens: Literal["neuronpedia", "folded"] = Field(
        "neuronpedia", description="logit lens of the Neuronpedia outputs: `neuronpedia` = the decoder direction "
        "times the model's raw unembedding, as Neuronpedia's own dashboards compute it; `folded` = miStudio's "
        "dashboard variant with the final norm's gain folded into the unembedding")
    source_set: str | None = Field(None, description="Neuronpedia source-set name, e.g. mistudio-res-16k")
    sae_id_suffix: str | None = None
    creator_id: str = FALLBACK_CREATOR_ID
    creator_name: str = "miStudio user"
    release_name: str | None = None
    release_title: str | None = None
    release_url: str | None = None
    hf_repo_id: str | None = Field(None, description="HuggingFace repo the SAELens folder will be uploaded to")
    created_at: str | None = Field(None, description="timestamp written into the export (default: the extraction's)")
    base_export: str | None = Field(None, description="incremental: path of a previous export archive to merge with")
    workers: int | None = Field(None, ge=1, le=64, description="packaging processes (default: one per core); "
                                "does not change the archive's bytes")

    @field_validator("model_id")
    @classmethod
    def _model_id(cls, value: str | None) -> str | None:
        if value is None or HUB_ID_RE.match(value) or (MODEL_ID_RE.match(value) and 2 <= len(value) <= 32):
            return value
        raise ValueError("model_id must be a Neuronpedia id matching ^[a-z][a-z0-9.-]*[a-z0-9]$ (2–32 characters, "
                         "e.g. gemma-2-2b) or a HuggingFace Hub id OWNER/NAME (e.g. google/gemma-2-2b)")

    @field_validator("dataset_id")
    @classmethod
    def _dataset_id(cls, value: str | None) -> str | None:
        if value is not None and not (HUB_ID_RE.match(value) or re.match(r"^[A-Za-z0-9][\w.-]*$", value)):
            raise ValueError("dataset_id must be a HuggingFace dataset id, e.g. Skylion007/openwebtext")
        return value

    @field_validator("source_set")
    @classmethod
    def _source_set(cls, value: str | None) -> str | None:
        if value is not None and (not SOURCE_SET_RE.match(value) or "--" in value or value == "neurons"):
            raise ValueError("source_set must match ^[a-z][a-z0-9-]*[a-z0-9]$, without '--' and not 'neurons'")
        return value

    @field_validator("sae_id_suffix")
    @classmethod
    def _suffix(cls, value: str | None) -> str | None:
        if value is not None and not SUFFIX_RE.match(value):
            raise ValueError("sae_id_suffix may hold lower-case letters, digits, '-' and '_' only")
        return value

    @property
    def wants_neuronpedia(self) -> bool:
        """True when the Neuronpedia parts are exported."""
        return self.format in ("neuronpedia", "both")

    @property
    def wants_saelens(self) -> bool:
        """True when the SAELens folder is exported."""
        return self.format in ("saelens", "both")

    def content_dict(self) -> dict[str, Any]:
        """The settings that decide the archive's bytes (no paths)."""
        return self.model_dump(exclude={"base_export", "workers"})


PRESETS: dict[str, dict[str, Any]] = {
    "full": {"format": "both"},
    "neuronpedia": {"format": "neuronpedia"},
    "saelens": {"format": "saelens"},
    "labeled": {"format": "both", "selection": {"mode": "labeled"}},
    "saedashboard": {"format": "both", "saedashboard_batches": True},
    "rich": {"format": "both", "saedashboard_batches": True, "n_examples": 50, "interval_examples": True, "logit_k": 30, "n_bins": 100, "top_tokens": 50, "token_ids": True},
    "minimal": {"format": "neuronpedia", "n_examples": 20, "logit_k": 10, "n_bins": 20, "top_tokens": 0,
                "include_explanations": False},
}


def make_config(preset: str | None = None, **overrides: Any) -> ExportConfig:
    """An ExportConfig from an optional preset name plus overrides (None values are ignored)."""
    data: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise InvalidInputError(f"unknown export preset {preset!r}; choose one of {', '.join(PRESETS)}")
        data.update(PRESETS[preset])
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ExportConfig.model_validate(data)
    except ValueError as exc:
        raise InvalidInputError(f"invalid export configuration: {exc}") from exc

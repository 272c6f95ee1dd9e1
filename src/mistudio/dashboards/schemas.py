"""Response models of the per-feature dashboard: statistics, examples, histograms, logits, top tokens."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Quantiles(BaseModel):
    """Quantiles of the feature's non-zero activations (from the fine histogram)."""

    model_config = ConfigDict(extra="allow")

    p25: float
    p50: float
    p75: float
    p95: float
    p99: float


class Statistics(BaseModel):
    """Exact activation statistics of one feature over the extraction's tokens."""

    model_config = ConfigDict(extra="allow")

    activation_frequency: float = Field(description="Fraction of tokens on which the feature is non-zero")
    n_active: int = Field(description="Tokens on which the feature is non-zero")
    n_tokens: int = Field(description="Tokens seen by the extraction")
    max_activation: float
    min_activation: float = Field(description="Smallest non-zero activation")
    mean_activation: float | None = Field(None, description="Mean over the active tokens")
    std_activation: float | None = Field(None, description="Standard deviation over the active tokens")
    l0_contribution: float = Field(description="The feature's share of the SAE's average L0")
    dead: bool = Field(description="Never active on the extraction's tokens")
    quantiles: Quantiles
    quantile_error_bound: float = Field(description="Relative error bound of the quantiles")


class ExampleSource(BaseModel):
    """Where an example's window comes from."""

    model_config = ConfigDict(extra="allow")

    dataset: str | None
    document: int = Field(description="Document index in the dataset")
    offset: int = Field(description="Token offset of the window in its document")
    window_index: int
    start: int | None = Field(None, description="First window position shown (when the context is cut)")


class ActivationExample(BaseModel):
    """One activating example: its tokens and the feature's activation on each."""

    model_config = ConfigDict(extra="allow")

    tokens: list[str] = Field(description="Decoded token strings")
    token_ids: list[int]
    values: list[float] = Field(description="The feature's activation on each token")
    max_value: float
    max_token_index: int
    qualifying_token_index: int = Field(description="Position that put the example in its group")
    bin_min: float = Field(description="Lower edge of the example's quantile band; -1 for the top examples")
    bin_max: float = Field(description="Upper edge of the example's quantile band; -1 for the top examples")
    bin_contains: float = Field(description="Fraction of the active tokens inside the band")
    source: ExampleSource


class Histogram(BaseModel):
    """Histogram counts with their bin edges (len(bin_edges) = len(counts) + 1, or both empty)."""

    model_config = ConfigDict(extra="allow")

    bin_edges: list[float]
    counts: list[int]
    total_count: int | None = Field(None, description="All tokens (activation histogram only)")
    nonzero_count: int | None = Field(None, description="Active tokens (activation histogram only)")
    log_scale: bool | None = Field(None, description="Whether the bins are log-spaced")


class LogitEntry(BaseModel):
    """A token the feature's decoder direction promotes or suppresses."""

    model_config = ConfigDict(extra="allow")

    token: str
    token_id: int
    value: float
    rank: int = Field(description="1 for the strongest")


class Logits(BaseModel):
    """Logit-lens view of the feature's decoder direction."""

    model_config = ConfigDict(extra="allow")

    top_positive: list[LogitEntry]
    top_negative: list[LogitEntry]
    histogram: Histogram = Field(description="Histogram of the direction's effect over the vocabulary")


class TopToken(BaseModel):
    """A token the feature fires on, aggregated over the top examples."""

    model_config = ConfigDict(extra="allow")

    token: str
    token_id: int
    total_activation: float
    count: int
    mean_activation: float
    max_activation: float


class Explanation(BaseModel):
    """An explanation of a feature."""

    model_config = ConfigDict(extra="forbid")

    id: str
    description: str
    method: str | None
    model: str | None
    score: float | None
    created_at: str | None = Field(description="ISO 8601 timestamp")


class FeatureDashboard(BaseModel):
    """Everything the dashboard of one feature shows."""

    model_config = ConfigDict(extra="allow")

    feature_index: int
    statistics: Statistics
    activations: list[ActivationExample] = Field(description="Top examples first, then the interval examples")
    histogram: Histogram = Field(description="Log-binned histogram of the non-zero activations")
    frequency_histogram: Histogram = Field(description="Linear bins over the non-zero activations")
    logits: Logits
    top_tokens: list[TopToken]


class FeatureDashboardView(FeatureDashboard):
    """A feature's dashboard as the API serves it: with its ids, label and explanations."""

    sae_id: str
    extraction_id: str
    label: str | None
    category: str | None
    explanations: list[Explanation]

"""The contract of a feature's dashboard: statistics, examples, histograms, logits, top tokens.

TypedDicts, defined once: the reader builds them as plain dicts (no per-dashboard validation on the export's hot
path), mypy checks every reader and writer of them, and the API declares them as response models (their OpenAPI
components, and so the front end's types, come from these classes). The annotations are evaluated when the classes
are made (no `from __future__ import annotations`), so `__required_keys__` knows the `NotRequired` keys.
"""

from typing import Annotated

from pydantic import ConfigDict, Field, with_config
from typing_extensions import NotRequired, TypedDict

from mistudio.store.schemas import Quantiles, Statistics

__all__ = ["ActivationExample", "ExampleSource", "Explanation", "ExplanationScore", "FeatureDashboard",
           "FeatureDashboardView", "Histogram", "LogitEntry", "Logits", "Quantiles", "Statistics", "TopToken"]


@with_config(ConfigDict(extra="allow"))
class ExampleSource(TypedDict):
    """Where an example's window comes from."""

    dataset: str | None
    document: Annotated[int, Field(description="Document index in the dataset")]
    offset: Annotated[int, Field(description="Token offset of the window in its document")]
    window_index: int
    start: Annotated[int, Field(description="First window position shown (when the context is cut)")]


@with_config(ConfigDict(extra="allow"))
class ActivationExample(TypedDict):
    """One activating example: its tokens and the feature's activation on each."""

    tokens: Annotated[list[str], Field(description="Decoded token strings")]
    token_ids: list[int]
    values: Annotated[list[float], Field(description="The feature's activation on each token")]
    max_value: float
    max_token_index: int
    qualifying_token_index: Annotated[int, Field(description="Position that put the example in its group")]
    bin_min: Annotated[float, Field(description="Lower edge of the example's quantile band; -1 for the top examples")]
    bin_max: Annotated[float, Field(description="Upper edge of the example's quantile band; -1 for the top examples")]
    bin_contains: Annotated[float, Field(description="Fraction of the active tokens inside the band")]
    source: ExampleSource


@with_config(ConfigDict(extra="allow"))
class Histogram(TypedDict):
    """Histogram counts with their bin edges (len(bin_edges) = len(counts) + 1, or both empty)."""

    bin_edges: list[float]
    counts: list[int]
    total_count: NotRequired[Annotated[int, Field(description="All tokens (activation histogram only)")]]
    nonzero_count: NotRequired[Annotated[int, Field(description="Active tokens (activation histogram only)")]]
    log_scale: NotRequired[Annotated[bool, Field(description="Whether the bins are log-spaced")]]


@with_config(ConfigDict(extra="allow"))
class LogitEntry(TypedDict):
    """A token the feature's decoder direction promotes or suppresses."""

    token: str
    token_id: int
    value: float
    rank: Annotated[int, Field(description="1 for the strongest")]


@with_config(ConfigDict(extra="allow"))
class Logits(TypedDict):
    """Logit-lens view of the feature's decoder direction."""

    top_positive: list[LogitEntry]
    top_negative: list[LogitEntry]
    histogram: Annotated[Histogram, Field(description="Histogram of the direction's effect over the vocabulary")]


@with_config(ConfigDict(extra="allow"))
class TopToken(TypedDict):
    """A token the feature fires on, aggregated over the top examples."""

    token: str
    token_id: int
    total_activation: float
    count: int
    mean_activation: float
    max_activation: float


@with_config(ConfigDict(extra="forbid"))
class ExplanationScore(TypedDict):
    """One scorer's score of an explanation."""

    scorer: Annotated[str, Field(description="detection | fuzzing | simulation (or an imported score's name)")]
    score: Annotated[float, Field(description="Balanced accuracy in [0, 1] (detection, fuzzing) or a "
                                              "correlation (simulation)")]
    model: Annotated[str | None, Field(description="The model that did the scoring")]
    n_examples: int | None
    created_at: Annotated[str | None, Field(description="ISO 8601 timestamp")]


class Explanation(TypedDict):
    """An explanation of a feature with its scores."""

    id: str
    description: str
    method: Annotated[str | None, Field(description="e.g. np_max-act-logits, oai_token-act-pair, import, manual")]
    model: Annotated[str | None, Field(description="The model that wrote it (None when a person did)")]
    score: Annotated[float | None, Field(description="The score that came with it (an import's), else None")]
    source: Annotated[str, Field(description="typed | imported | generated")]
    prompt_version: str | None
    scores: list[ExplanationScore]
    created_at: Annotated[str | None, Field(description="ISO 8601 timestamp")]


@with_config(ConfigDict(extra="allow"))
class FeatureDashboard(TypedDict):
    """Everything the dashboard of one feature shows."""

    feature_index: int
    statistics: Statistics
    activations: Annotated[list[ActivationExample],
                           Field(description="Top examples first, then the interval examples")]
    histogram: Annotated[Histogram, Field(description="Log-binned histogram of the non-zero activations")]
    frequency_histogram: Annotated[Histogram, Field(description="Linear bins over the non-zero activations")]
    logits: Logits
    top_tokens: list[TopToken]


class FeatureDashboardView(FeatureDashboard):
    """A feature's dashboard as the API serves it: with its ids, label and explanations."""

    sae_id: str
    extraction_id: str
    label: str | None
    category: str | None
    explanations: list[Explanation]

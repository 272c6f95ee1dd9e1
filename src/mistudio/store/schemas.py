"""The shapes of what the feature store reads back per feature: exact statistics and their quantiles.

TypedDicts, so the hot read path builds plain dicts; the dashboard contract (`dashboards/schemas.py`) and the
API's response models reuse them.
"""

from typing import Annotated

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict


@with_config(ConfigDict(extra="allow"))
class Quantiles(TypedDict):
    """Quantiles of the feature's non-zero activations (from the fine histogram)."""

    p25: float
    p50: float
    p75: float
    p95: float
    p99: float


@with_config(ConfigDict(extra="allow"))
class Statistics(TypedDict):
    """Exact activation statistics of one feature over the extraction's tokens."""

    activation_frequency: Annotated[float, Field(description="Fraction of tokens on which the feature is non-zero")]
    n_active: Annotated[int, Field(description="Tokens on which the feature is non-zero")]
    n_tokens: Annotated[int, Field(description="Tokens seen by the extraction")]
    max_activation: float
    min_activation: Annotated[float, Field(description="Smallest non-zero activation")]
    mean_activation: Annotated[float, Field(description="Mean over the active tokens")]
    std_activation: Annotated[float, Field(description="Standard deviation over the active tokens")]
    l0_contribution: Annotated[float, Field(description="The feature's share of the SAE's average L0")]
    dead: Annotated[bool, Field(description="Never active on the extraction's tokens")]
    quantiles: Quantiles
    quantile_error_bound: Annotated[float, Field(description="Relative error bound of the quantiles")]

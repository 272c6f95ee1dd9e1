"""What the model server and live activations return (served by the API as is)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

LoadState = Literal["loading", "ready", "failed"]


class ResidentInfo(BaseModel):
    """One model (or SAE) the studio's model server holds or is loading."""

    kind: Literal["model", "sae"]
    ref: str = Field(description="The model reference (hub id or local folder) or the SAE id.")
    name: str | None = Field(None, description="The loaded model's name (its hub id or folder).")
    device: str
    dtype: str | None = None
    state: LoadState
    bytes: int | None = Field(None, description="Memory held once loaded (parameters and buffers).")
    expected_bytes: int | None = Field(None, description="Size of the weight files, when known before loading.")
    elapsed_s: float = Field(description="Seconds since the load started (the load's duration once ready).")
    in_use: int = Field(0, description="Requests holding or waiting for it.")
    idle_s: float | None = Field(None, description="Seconds since it was last used (ready only).")
    error: str | None = None


class ResidentList(BaseModel):
    """Everything the model server holds, and its memory budget."""

    items: list[ResidentInfo]
    budget_bytes: int
    used_bytes: int


class FeatureValue(BaseModel):
    """One feature's activation at one token."""

    index: int
    value: float


class FeatureTrace(BaseModel):
    """One requested feature's activation at every token."""

    index: int
    values: list[float]
    max_value: float
    max_token_index: int


class TopFeature(BaseModel):
    """A feature that fires on the text: its largest activation, where, and at how many tokens."""

    index: int
    value: float
    token_index: int
    n_active: int


class LiveActivations(BaseModel):
    """An SAE's activations on a text, computed as the extraction computes them (same hook, transform,
    normalisation and BOS; special-token positions read 0, as in the stored examples)."""

    sae_id: str
    model: str
    hook: str
    extraction_id: str | None = Field(None, description="The extraction whose conventions were applied.")
    prepend_bos: bool
    tokens: list[str]
    token_ids: list[int]
    special: list[bool] = Field(description="Positions holding a special token (BOS/EOS/PAD), masked to 0.")
    features: list[FeatureTrace] = Field(description="The requested features, in the order asked.")
    top_features: list[list[FeatureValue]] = Field(
        description="Per token, the top_k active features, largest first.")
    overall: list[TopFeature] = Field(description="The top_k features by their largest activation on the text.")

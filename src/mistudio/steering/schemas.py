"""The steering API's request and answer models (defaults as Neuronpedia's steering page sets them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mistudio.paging import Page
from mistudio.steering.methods import SteerMethod

SteerType = Literal["STEERED", "DEFAULT"]
STEER_TYPES: tuple[SteerType, ...] = ("STEERED", "DEFAULT")
MAX_COMPLETION_TOKENS = 256  # Neuronpedia's STEER_N_COMPLETION_TOKENS_MAX
MAX_FEATURES = 32
MAX_SWEEP = 16
MAX_PROMPT_CHARS = 8192
MAX_PROMPT_TOKENS = 2048


class SteerFeature(BaseModel):
    """A feature of the SAE and the strength to steer with (negative steers away)."""

    index: int = Field(ge=0, description="Feature index in the SAE")
    strength: float = Field(description="Multiplies the decoder direction (times strength_multiplier)")


class NeuronpediaCompare(BaseModel):
    """Send the same request to a Neuronpedia host's steering API as well."""

    host: str = Field("https://www.neuronpedia.org", description="Neuronpedia base URL")
    api_key: str | None = Field(None, description="Neuronpedia API key (x-api-key); never stored")
    source: str | None = Field(None, description="Neuronpedia model/source, e.g. `gemma-2-2b/20-gemmascope-res-16k`; "
                                                 "default: the SAE's neuronpedia id")


class SteerRequest(BaseModel):
    """Steer the SAE's model with some of its features (Neuronpedia's steering payload)."""

    model_config = ConfigDict(extra="forbid")

    sae_id: str
    model: str | None = Field(None, description="HF model id or local folder; default: the SAE's model")
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    chat: bool = Field(False, description="Apply the tokenizer's chat template to the prompt (one user turn)")
    features: list[SteerFeature] = Field(min_length=1, max_length=MAX_FEATURES)
    steer_method: SteerMethod = "SIMPLE_ADDITIVE"
    normalize_steering: bool = Field(False, description="Steer along W_dec[index] / ‖W_dec[index]‖")
    strength_multiplier: float = Field(1.0, ge=-100, le=100)
    steer_special_tokens: bool = Field(True, description="Steer at special-token positions too (BOS, chat markers)")
    n_completion_tokens: int = Field(64, ge=1, le=MAX_COMPLETION_TOKENS)
    temperature: float = Field(0.5, ge=0, le=2, description="0 is greedy")
    freq_penalty: float = Field(1.0, ge=-2, le=2, description="Subtracted per earlier occurrence (when > 0)")
    seed: int = Field(16, ge=-(2**62), le=2**62)
    types: list[SteerType] = Field(default_factory=lambda: list(STEER_TYPES), min_length=1, max_length=2)
    n_logprobs: int = Field(5, ge=0, le=10, description="Top candidates kept per generated token")
    compare_neuronpedia: NeuronpediaCompare | None = None


class SweepRequest(SteerRequest):
    """The same prompt steered at several strength multipliers (each replaces `strength_multiplier`)."""

    strength_multipliers: list[float] = Field(min_length=1, max_length=MAX_SWEEP)


class TokenLogprob(BaseModel):
    """A candidate token and its log-probability."""

    token: str
    token_id: int
    logprob: float


class GeneratedToken(TokenLogprob):
    """A generated token, its log-probability and the top candidates at its position."""

    top_logprobs: list[TokenLogprob] = Field(default_factory=list)


class Completion(BaseModel):
    """One completion: the generated text (without the prompt), its token ids, and per-token log-probabilities."""

    text: str
    token_ids: list[int]
    logprobs: list[GeneratedToken]


class NeuronpediaOutput(BaseModel):
    """A completion from Neuronpedia (the prompt stripped from the front when it echoes it)."""

    text: str
    logprobs: list[TokenLogprob] | None = None


class Comparison(BaseModel):
    """Neuronpedia's answer to the same request, beside ours."""

    host: str
    source: str
    STEERED: NeuronpediaOutput | None = None
    DEFAULT: NeuronpediaOutput | None = None
    default_match: bool | None = Field(None, description="The two DEFAULT completions are equal (temperature 0 "
                                                         "only; None when not comparable)")
    mismatch: bool = Field(False, description="The DEFAULT completions differ at temperature 0: a model, "
                                              "tokenisation or BOS mismatch")
    message: str | None = None
    error: str | None = Field(None, description="Why Neuronpedia gave no answer")


class SteerResult(BaseModel):
    """Completions of the types asked for, the stored run's id and the optional Neuronpedia comparison."""

    run_id: str
    STEERED: Completion | None = None
    DEFAULT: Completion | None = None
    prompt_token_ids: list[int]
    comparison: Comparison | None = None


class SweepRow(BaseModel):
    """The steered completion at one strength multiplier."""

    strength_multiplier: float
    STEERED: Completion


class SweepResult(BaseModel):
    """The DEFAULT completion once and one steered completion per strength multiplier."""

    run_id: str
    DEFAULT: Completion
    rows: list[SweepRow]
    prompt_token_ids: list[int]


class SteeringRunSummary(BaseModel):
    """A stored steering run, as listed."""

    id: str
    sae_id: str
    kind: Literal["steer", "sweep"]
    prompt: str
    chat: bool
    features: list[SteerFeature]
    steer_method: str
    created_at: str


class SteeringRun(SteeringRunSummary):
    """A stored steering run with its settings and outputs."""

    settings: dict[str, object]
    result: SteerResult | None = None
    sweep: SweepResult | None = None


class SteeringRunPage(Page[SteeringRunSummary]):
    """A page of stored steering runs, newest first."""

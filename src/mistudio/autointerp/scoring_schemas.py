"""What scoring explanations takes and returns (service, CLI, REST)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ScorerName = Literal["detection", "fuzzing", "simulation"]


class ScoreRequest(BaseModel):
    """Score explanations of an SAE's features with an OpenAI-compatible model as the judge."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(description="The API base URL, e.g. http://localhost:8000/v1 (vLLM) or https://api.openai.com/v1")
    model: str = Field(description="The judge model's name as the endpoint knows it")
    api_key: str | None = Field(None, description="Sent as a bearer token; never stored (a job secret)")
    scorer: ScorerName = Field("detection", description="detection | fuzzing (delphi, balanced accuracy) | "
                               "simulation (OpenAI, correlation; needs log-probabilities)")
    features: str | None = Field(None, description="Features to score: 0-99, 1,5,9 or a mix; default all explained")
    concurrency: int = Field(8, ge=1, le=256, description="Requests in flight at once")
    all_explanations: bool = Field(False, description="Score every explanation of each feature, not only its latest")
    explanation_ids: list[str] | None = Field(None, description="Score exactly these explanations of the SAE "
                                              "(`features` and `all_explanations` are then ignored)")
    force: bool = Field(False, description="Score again explanations this scorer and model already scored")
    n_activating: int | None = Field(None, ge=1, le=500, description="Activating examples per explanation "
                                     "(default 25 for detection/fuzzing, 10 for simulation)")
    n_non_activating: int | None = Field(None, ge=0, le=500, description="Non-activating examples per explanation "
                                         "(default as n_activating)")
    examples_per_prompt: int = Field(5, ge=1, le=50, description="Examples per detection/fuzzing prompt (delphi: 5)")
    context: int = Field(32, ge=4, le=1024, description="Tokens per example (delphi: 32)")
    seed: int = Field(0, description="Seed of the example draw and the prompt order")
    extraction_id: str | None = Field(None, description="The extraction the examples come from (default: latest)")
    max_retries: int = Field(5, ge=0, le=20, description="Retries of a request on 429/5xx/connection errors")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="Seconds to wait for one answer")


class ScoreStarted(BaseModel):
    """A scoring job was created."""

    job_id: str
    sae_id: str
    n_explanations: int = Field(description="Explanations the job will score")
    n_skipped: int = Field(0, description="Explanations left out: already scored by this scorer and model")


class ScoredExplanation(BaseModel):
    """One explanation's new score."""

    feature_index: int
    explanation_id: str
    score: float
    n_examples: int


class ScoreFailure(BaseModel):
    """An explanation that could not be scored, and why."""

    feature_index: int
    explanation_id: str
    error: str = Field(description="What went wrong and what to do")
    error_type: str = Field(description="The error's class, e.g. EndpointResponseError")


class ScoreResult(BaseModel):
    """What a scoring job did (its `result`)."""

    sae_id: str
    extraction_id: str
    scorer: str
    model: str
    n_explanations: int
    n_scored: int = Field(description="Scored by this job (resumed runs included)")
    n_failed: int
    mean_score: float | None = Field(None, description="Mean over the explanations this job scored")
    scores: list[ScoredExplanation] = Field(default_factory=list)
    failures: list[ScoreFailure] = Field(default_factory=list)
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


__all__ = ["ScoreFailure", "ScoreRequest", "ScoreResult", "ScoreStarted", "ScoredExplanation", "ScorerName"]

"""Request and response models of explaining features (the CLI, the REST API and the UI share them)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from mistudio.autointerp.explainers import DEFAULT_METHOD


class ExplainMethod(BaseModel):
    """An explanation method the studio offers."""

    method: str = Field(description="The id to pass as ExplainRequest.method (Neuronpedia's explanation type name)")
    prompt_version: str
    summary: str
    default: bool = False


class ExplainRequest(BaseModel):
    """Explain an SAE's features with a model behind an OpenAI-compatible chat API."""

    endpoint: str = Field(description="API base URL, e.g. http://localhost:8000/v1 (vLLM), "
                                      "http://localhost:11434/v1 (Ollama), https://api.openai.com/v1")
    model: str = Field(description="The model name the endpoint serves")
    api_key: str | None = Field(None, description="Bearer token for the endpoint; never stored")
    features: str | None = Field(None, description="Features to explain: '0-99' (inclusive), '1,5,9'; "
                                                   "default every live feature")
    labeled: bool | None = Field(None, description="true: only labelled features; false: only unlabelled ones")
    method: str = Field(DEFAULT_METHOD, description="np_max-act-logits | oai_token-act-pair")
    concurrency: int = Field(8, ge=1, le=1024, description="Requests in flight at once")
    max_cost_usd: float | None = Field(None, ge=0, description="Stop the run once its measured cost reaches this "
                                                               "(needs both prices)")
    price_per_1m_input: float | None = Field(None, ge=0, description="USD per million prompt tokens")
    price_per_1m_output: float | None = Field(None, ge=0, description="USD per million completion tokens")
    force: bool = Field(False, description="Explain features that already have an explanation by this method")
    n_examples: int | None = Field(None, ge=1, le=200, description="Top examples shown per feature (default: "
                                                                   "the method's, 20)")
    assumed_latency_s: float = Field(4.0, gt=0, description="Seconds per request assumed by the time estimate")
    extraction_id: str | None = Field(None, description="Which extraction's examples (default: the latest)")


class ExplainEstimate(BaseModel):
    """What a run would cost before it starts (tokens by the characters/4 rule on the real prompts)."""

    n_features: int = Field(description="Features that would be explained")
    n_already_explained: int = Field(0, description="Selected features skipped: explained by this method already")
    n_requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None = Field(None, description="With both prices given, else null")
    seconds: float | None = Field(None, description="n_requests / concurrency × assumed_latency_s")
    method: str
    prompt_version: str
    sampled_features: int = Field(0, description="Features whose prompts were built to measure the prompt size")


class ExplainStarted(BaseModel):
    """The queued explain job and its estimate."""

    job_id: str
    estimate: ExplainEstimate


class ExplainFailure(BaseModel):
    """A feature the run could not explain."""

    feature_index: int
    error: str
    error_type: str


class ExplainResult(BaseModel):
    """What an explain job did (its `result`)."""

    n_selected: int
    n_explained: int = Field(description="Explained by this job, over all its runs (resumes included)")
    n_skipped_explained: int = Field(description="Skipped: already explained by the method (no --force)")
    n_skipped_dead: int = Field(0, description="Skipped: no activating example")
    failures: list[ExplainFailure] = Field(default_factory=list)
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    stopped: str | None = Field(None, description="'max_cost' when the cost limit stopped the run")
    elapsed_s: float = 0.0
    requests_per_s: float = 0.0
    method: str
    model: str
    labels_set: int = Field(0, description="Features that had no label and got this explanation as label")

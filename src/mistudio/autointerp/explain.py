"""Explain an SAE's features with an OpenAI-compatible model: the estimate, the service and the `explain` job.

The job explains the selected features `concurrency` at a time, storing each explanation as it arrives
(`catalog.explanations.add_explanation`, source "generated") and, where the feature has no label yet, making it the
label. It is resumable by feature: a resumed or re-run job skips features explained by this job; a new run skips
features the method already explained unless `force`. A feature that fails is listed in the result with its error
while the others go on; a refused API key stops the job. `max_cost_usd` stops feeding requests once the measured
cost (from `usage`) reaches it (requests in flight then still finish and are stored).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from mistudio.autointerp.client import ChatClient, ChatResponse, Endpoint
from mistudio.autointerp.estimate import check_prices, cost_usd, prompt_tokens, run_seconds
from mistudio.autointerp.evidence import FeatureEvidence, feature_evidence
from mistudio.autointerp.explainers import (
    DEFAULT_METHOD,
    EXPLAINERS,
    Explainer,
    finish_description,
    get_explainer,
)
from mistudio.autointerp.schemas import (
    ExplainEstimate,
    ExplainFailure,
    ExplainMethod,
    ExplainRequest,
    ExplainResult,
    ExplainStarted,
)
from mistudio.catalog.explanations import add_explanation, explained_by_job, explained_features
from mistudio.catalog.feature_spec import parse_feature_spec
from mistudio.catalog.service import get_record
from mistudio.db.models import FeatureSummary
from mistudio.errors import EndpointAuthError, InvalidInputError, JobCancelled, JobPaused, MiStudioError
from mistudio.extraction.service import get_store
from mistudio.jobs.context import JobContext
from mistudio.jobs.registry import register_job_type
from mistudio.store.feature_store import FeatureStore
from mistudio.studio import Studio

JOB_TYPE = "explain"
SAVE_EVERY = 32
SAVE_INTERVAL_S = 0.5
"""Explanations are stored in batches of at most `SAVE_EVERY`, at least every `SAVE_INTERVAL_S` seconds."""
API_KEY_ENV = "MISTUDIO_EXPLAIN_API_KEY"
"""The key a job uses when it has none in memory (a job resumed by another process than the one that made it)."""
ESTIMATE_SAMPLE = 8
STAGES = ["select", "explain"]


@dataclass
class Plan:
    """The features a run would explain, and those it skips."""

    extraction_id: str
    store: FeatureStore
    selected: list[int]
    todo: list[int]
    already_explained: int


def explain_methods() -> list[ExplainMethod]:
    """The registered explanation methods, the default first."""
    ordered = sorted(EXPLAINERS.values(), key=lambda e: (e.method != DEFAULT_METHOD, e.method))
    return [ExplainMethod(method=e.method, prompt_version=e.prompt_version, summary=e.summary,
                          default=e.method == DEFAULT_METHOD) for e in ordered]


def select_features(studio: Studio, sae_id: str, extraction_id: str, n_features: int, spec: str | None,
                    labeled: bool | None) -> list[int]:
    """The live features of the extraction named by `spec` (all when None), filtered by having a label or not.

    Raises:
        InvalidInputError: a bad spec, or nothing selected.
    """
    with studio.sessions() as s:
        rows = s.execute(select(FeatureSummary.feature_index, FeatureSummary.dead, FeatureSummary.label)
                         .where(FeatureSummary.extraction_id == extraction_id)).all()
    dead = {int(i) for i, is_dead, _ in rows if is_dead}
    labelled = {int(i) for i, _, label in rows if label}
    candidates = parse_feature_spec(spec, n_features) if spec else range(n_features)
    chosen = [i for i in candidates if i not in dead]
    if labeled is True:
        chosen = [i for i in chosen if i in labelled]
    elif labeled is False:
        chosen = [i for i in chosen if i not in labelled]
    if not chosen:
        what = {True: " labelled", False: " unlabelled", None: ""}[labeled]
        raise InvalidInputError(f"no live{what} feature of SAE {sae_id} matches the selection "
                                f"{spec or '(all)'}; widen --features or drop --labeled/--unlabeled")
    return chosen


def _explained_by_job(studio: Studio, sae_id: str, job_id: str) -> dict[int, dict[str, Any]]:
    with studio.sessions() as s:
        return explained_by_job(s, sae_id, job_id)


def plan_explain(studio: Studio, sae_id: str, req: ExplainRequest, *, job_id: str | None = None) -> Plan:
    """Which features a run explains: the selection minus those this job already explained, minus (unless
    `force`) those the method explained before.

    Raises:
        NotFoundError: no such SAE or no completed extraction.
        InvalidInputError: a bad selection or method.
    """
    with studio.sessions() as s:
        get_record(s, sae_id)
    get_explainer(req.method)
    extraction_id, store = get_store(studio, sae_id, req.extraction_id)
    done_by_job = set(_explained_by_job(studio, sae_id, job_id)) if job_id else set()
    try:
        selected = select_features(studio, sae_id, extraction_id, store.n_features, req.features, req.labeled)
    except InvalidInputError:
        if not done_by_job:  # a resumed --unlabeled job may have labelled every feature it selected
            raise
        selected = []
    skip = set(done_by_job)
    already = 0
    if not req.force:
        with studio.sessions() as s:
            by_method = explained_features(s, sae_id, method=req.method) - done_by_job
        already = sum(1 for i in selected if i in by_method)
        skip |= by_method
    todo = [i for i in selected if i not in skip]
    return Plan(extraction_id=extraction_id, store=store, selected=selected, todo=todo, already_explained=already)


def _evidence(store: FeatureStore, index: int, explainer: Explainer, n_examples: int | None) -> FeatureEvidence:
    return feature_evidence(store, index, n_top=n_examples or explainer.settings.n_examples, quantiles=False)


def estimate_explain(studio: Studio, sae_id: str, req: ExplainRequest) -> ExplainEstimate:
    """Requests, tokens, cost (with prices) and time of the run `req` describes, before it starts: prompt sizes
    measured on the real prompts of up to 8 evenly spaced selected features (see `autointerp.estimate`).

    Raises:
        NotFoundError: no such SAE or no completed extraction.
        InvalidInputError: a bad selection, method or price setting.
    """
    check_prices(req.max_cost_usd, req.price_per_1m_input, req.price_per_1m_output)
    plan = plan_explain(studio, sae_id, req)
    explainer = get_explainer(req.method)
    n = len(plan.todo)
    sample = [plan.todo[round(k * (n - 1) / max(1, ESTIMATE_SAMPLE - 1))] for k in range(min(n, ESTIMATE_SAMPLE))]
    sizes = []
    for index in dict.fromkeys(sample):
        evidence = _evidence(plan.store, index, explainer, req.n_examples)
        if not evidence.dead:
            sizes.append(prompt_tokens(explainer.build_messages(evidence)))
    per_prompt = sum(sizes) / len(sizes) if sizes else 0.0
    prompt = round(per_prompt * n)
    completion = explainer.settings.expected_completion_tokens * n
    return ExplainEstimate(
        n_features=n, n_already_explained=plan.already_explained, n_requests=n, prompt_tokens=prompt,
        completion_tokens=completion,
        cost_usd=cost_usd(prompt, completion, req.price_per_1m_input, req.price_per_1m_output),
        seconds=run_seconds(n, req.concurrency, req.assumed_latency_s), method=req.method,
        prompt_version=explainer.prompt_version, sampled_features=len(sizes))


def job_params(sae_id: str, req: ExplainRequest, extraction_id: str) -> dict[str, Any]:
    """The job's params: the request without its API key."""
    return {"sae_id": sae_id, **req.model_dump(exclude={"api_key"}), "extraction_id": extraction_id}


def start_explain(studio: Studio, sae_id: str, req: ExplainRequest, *, submit: bool = True) -> ExplainStarted:
    """Estimate, then create (and queue, if `submit`) an `explain` job; the API key travels as a job secret.

    Raises:
        NotFoundError: no such SAE or no completed extraction.
        InvalidInputError: a bad endpoint URL, selection, method or price setting.
    """
    Endpoint(req.endpoint, req.model, api_key=req.api_key)
    estimate = estimate_explain(studio, sae_id, req)
    extraction_id, _ = get_store(studio, sae_id, req.extraction_id)
    create = studio.runner.submit if submit else studio.runner.create
    job_id = create(JOB_TYPE, job_params(sae_id, req, extraction_id), sae_id, secrets={"api_key": req.api_key})
    return ExplainStarted(job_id=job_id, estimate=estimate)


def _set_label_if_missing(session: Session, sae_id: str, index: int, description: str) -> int:
    result = session.execute(update(FeatureSummary)
                             .where(FeatureSummary.sae_id == sae_id, FeatureSummary.feature_index == index,
                                    or_(FeatureSummary.label.is_(None), FeatureSummary.label == ""))
                             .values(label=description[:512]))
    return 1 if getattr(result, "rowcount", 0) else 0


@dataclass
class _Job:
    """One feature of the run; its evidence is read on the worker thread that asks the model."""

    index: int
    evidence: FeatureEvidence | None = None


@register_job_type(JOB_TYPE)
def explain_job(ctx: JobContext[Studio], params: dict[str, Any]) -> dict[str, Any]:
    """Job handler: params = `ExplainRequest` fields (no api_key) + sae_id; the key is `ctx.secret("api_key")`, else
    the environment's MISTUDIO_EXPLAIN_API_KEY."""
    studio = ctx.studio
    sae_id = params["sae_id"]
    req = ExplainRequest.model_validate({k: v for k, v in params.items() if k != "sae_id"})
    explainer = get_explainer(req.method)
    endpoint = Endpoint(req.endpoint, req.model, api_key=ctx.secret("api_key") or os.environ.get(API_KEY_ENV))
    ctx.set_stages(STAGES)
    ctx.stage("select")
    plan = plan_explain(studio, sae_id, req, job_id=ctx.job_id)
    earlier = _explained_by_job(studio, sae_id, ctx.job_id)
    total = len(plan.todo) + len(earlier)
    usage = {"prompt": sum(int(d.get("prompt_tokens", 0)) for d in earlier.values()),
             "completion": sum(int(d.get("completion_tokens", 0)) for d in earlier.values()), "requests": 0}
    spent = sum(float(d.get("cost_usd") or 0.0) for d in earlier.values())
    failures: list[ExplainFailure] = []
    dead = labels_set = explained_now = 0
    stopped: str | None = None
    halt: JobPaused | JobCancelled | None = None
    feeding = True
    ctx.stage("explain")
    start = time.monotonic()

    unsaved: list[tuple[int, str, dict[str, Any]]] = []
    saved_at = time.monotonic()

    def save() -> None:
        """Store the explanations received since the last save, in one transaction."""
        nonlocal labels_set, saved_at
        if unsaved:
            with studio.sessions() as s, s.begin():
                for index, description, details in unsaved:
                    add_explanation(s, sae_id, index, description, method=explainer.method, model=req.model,
                                    source="generated", prompt_version=explainer.prompt_version, job_id=ctx.job_id,
                                    details=details)
                    labels_set += _set_label_if_missing(s, sae_id, index, description)
            unsaved.clear()
        saved_at = time.monotonic()

    def feed() -> Iterator[_Job]:
        for index in plan.todo:
            if not feeding:
                return
            yield _Job(index)

    def ask(job: _Job) -> ChatResponse | None:
        job.evidence = _evidence(plan.store, job.index, explainer, req.n_examples)
        if job.evidence.dead:
            return None
        return client.complete(explainer.build_messages(job.evidence), max_tokens=explainer.settings.max_tokens,
                               temperature=explainer.settings.temperature)

    with ChatClient(endpoint, req.concurrency) as client:
        if plan.todo:
            client.check()
        with closing(client.map_concurrent(ask, feed())) as outcomes:
            try:
                for job, outcome in outcomes:
                    if isinstance(outcome, EndpointAuthError):
                        raise outcome
                    if outcome is None:
                        dead += 1
                    elif isinstance(outcome, MiStudioError):
                        failures.append(ExplainFailure(feature_index=job.index, error=outcome.message,
                                                       error_type=type(outcome).__name__))
                    else:
                        assert job.evidence is not None
                        usage["requests"] += 1
                        usage["prompt"] += outcome.prompt_tokens
                        usage["completion"] += outcome.completion_tokens
                        cost = cost_usd(outcome.prompt_tokens, outcome.completion_tokens, req.price_per_1m_input,
                                        req.price_per_1m_output)
                        spent += cost or 0.0
                        try:
                            parsed = explainer.parse(outcome.text, job.evidence)
                            description = finish_description(parsed, job.evidence, url=endpoint.url)
                        except MiStudioError as err:
                            failures.append(ExplainFailure(feature_index=job.index, error=err.message,
                                                           error_type=type(err).__name__))
                        else:
                            details: dict[str, Any] = {
                                "prompt_tokens": outcome.prompt_tokens,
                                "completion_tokens": outcome.completion_tokens,
                                "raw_answer": outcome.text[:4000], "extraction_id": plan.extraction_id,
                                "n_examples": len(job.evidence.top),
                                "windows": [ex.window_index for ex in job.evidence.top]}
                            if cost is not None:
                                details["cost_usd"] = cost
                            if outcome.usage_estimated:
                                details["usage_estimated"] = True
                            unsaved.append((job.index, description, details))
                            explained_now += 1
                            if len(unsaved) >= SAVE_EVERY or time.monotonic() - saved_at >= SAVE_INTERVAL_S:
                                save()
                    if req.max_cost_usd is not None and spent >= req.max_cost_usd and feeding:
                        feeding, stopped = False, "max_cost"
                    done = len(earlier) + explained_now + len(failures) + dead
                    elapsed = time.monotonic() - start
                    rate = usage["requests"] / elapsed if elapsed > 0 else 0.0
                    left = total - done
                    eta = f", ETA {left / rate:.0f}s" if rate > 0 and feeding else ""
                    cost_text = f", ${spent:.4f}" if req.price_per_1m_input is not None else ""
                    ctx.progress(done / max(1, total),
                                 f"{done}/{total} features, {rate:.1f} req/s{cost_text}{eta}",
                                 stage_fraction=done / max(1, total))
                    if halt is None:
                        try:
                            ctx.check_cancelled()
                        except (JobPaused, JobCancelled) as err:  # stop feeding, store what is in flight, stop
                            halt, feeding = err, False
            finally:
                save()

    if halt is not None:
        raise halt
    if failures and explained_now == 0 and not earlier and usage["requests"] == 0:
        first = failures[0]
        raise MiStudioError(f"no feature could be explained; feature {first.feature_index}: {first.error}",
                            details={"failures": [f.model_dump() for f in failures[:20]]})
    elapsed = time.monotonic() - start
    priced = req.price_per_1m_input is not None and req.price_per_1m_output is not None
    return ExplainResult(
        n_selected=len(plan.selected), n_explained=len(earlier) + explained_now,
        n_skipped_explained=plan.already_explained, n_skipped_dead=dead, failures=failures,
        requests=usage["requests"], prompt_tokens=usage["prompt"], completion_tokens=usage["completion"],
        cost_usd=spent if priced else None, stopped=stopped, elapsed_s=round(elapsed, 3),
        requests_per_s=round(usage["requests"] / elapsed, 2) if elapsed > 0 else 0.0, method=req.method,
        model=req.model, labels_set=labels_set).model_dump()

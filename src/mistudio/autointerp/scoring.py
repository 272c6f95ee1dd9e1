"""Scoring explanations as a job (type `score`): which explanations, their held-out examples, the judge's answers,
the scores stored with `catalog.explanations.add_score`.

`start_scoring` picks the explanations (the latest of each selected feature, generated ones first; every one with
`all_explanations`), leaves out those this scorer and model already scored unless `force`, and creates the job
with them in its params (the API key as a job secret). The job draws each feature's examples
(`scorers.samples`: held-out activating examples across the quantile bands, non-activating windows of the same
extraction verified zero by the live SAE), asks the judge with at most `concurrency` requests in flight, and
stores each score as it arrives, so a resumed or re-run job skips what is done. An explanation that fails (an
unusable answer, an endpoint error) is reported in the result with its message; the others are scored. A server
that is down or refuses the key fails the job before the first prompt (`ChatClient.check`); a job where every
explanation failed fails with the first message, and one where `max(3, concurrency)` explanations in a row could
not reach the endpoint stops there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mistudio.autointerp.client import ChatClient, Endpoint
from mistudio.autointerp.evidence import feature_evidence
from mistudio.autointerp.scorers import get_scorer
from mistudio.autointerp.scorers.base import ScoreOutcome, Scorer
from mistudio.autointerp.scorers.examples import ScoringExample
from mistudio.autointerp.scorers.samples import (
    ZeroWindows,
    activating_examples,
    feature_rng,
    non_activating_examples,
)
from mistudio.autointerp.scoring_schemas import (
    ScoredExplanation,
    ScoreFailure,
    ScoreRequest,
    ScoreResult,
    ScoreStarted,
)
from mistudio.catalog.explanations import ExplanationView, add_score, explanations_by_feature, scores_by_job
from mistudio.catalog.feature_spec import parse_feature_spec
from mistudio.catalog.service import get_record
from mistudio.errors import (
    AutoInterpError,
    EndpointAuthError,
    EndpointUnreachableError,
    InvalidInputError,
    MiStudioError,
    NotFoundError,
)
from mistudio.jobs.context import JobContext
from mistudio.jobs.registry import register_job_type
from mistudio.store.feature_store import FeatureStore
from mistudio.studio import Studio

JOB_TYPE = "score"
STAGES = ["Drawing examples", "Scoring"]
SEEN_TOP_EXAMPLES = 10
"""Top examples assumed shown to the explainer when an explanation does not record its windows (Neuronpedia's
`np_max-act-logits` shows 10)."""


def _latest(views: list[ExplanationView]) -> ExplanationView:
    generated = [v for v in views if v.source == "generated"]
    return (generated or views)[-1]


def select_explanations(studio: Studio, sae_id: str, request: ScoreRequest,
                        n_features: int) -> tuple[list[ExplanationView], int]:
    """The explanations `request` asks to score and how many were left out as already scored by this scorer and
    model (none with `force`).

    Raises:
        InvalidInputError: a bad feature list.
    """
    features = parse_feature_spec(request.features, n_features) if request.features else None
    if request.explanation_ids is not None:
        features = None
    with studio.sessions() as s:
        by_feature = explanations_by_feature(s, sae_id, features)
    if request.explanation_ids is not None:
        wanted = set(request.explanation_ids)
        chosen = [v for _, views in sorted(by_feature.items()) for v in views if v.id in wanted]
        missing = wanted - {v.id for v in chosen}
        if missing:
            raise InvalidInputError(f"SAE {sae_id} has no explanation {', '.join(sorted(missing)[:5])}; "
                                    "the ids are on each feature's dashboard (`mistudio feature SAE_ID INDEX --json`)")
    else:
        chosen = [v for _, views in sorted(by_feature.items())
                  for v in (views if request.all_explanations else [_latest(views)])]
    if request.force:
        return chosen, 0
    kept = [v for v in chosen if not any(sc.scorer == request.scorer and sc.model == request.model
                                         for sc in v.scores)]
    return kept, len(chosen) - len(kept)


def start_scoring(studio: Studio, sae_id: str, request: ScoreRequest, *, submit: bool = False) -> ScoreStarted:
    """Create (and with `submit`, queue) a job scoring the explanations `request` selects.

    Raises:
        NotFoundError: no such SAE, or it has no completed extraction to draw examples from.
        InvalidInputError: a bad endpoint URL or feature list, or nothing to score.
    """
    from mistudio.extraction.service import get_store

    Endpoint(request.endpoint, request.model)  # a bad URL or model name is refused now, not in the job
    with studio.sessions() as s:
        get_record(s, sae_id)
    try:
        extraction_id, store = get_store(studio, sae_id, request.extraction_id)
    except NotFoundError as err:
        raise NotFoundError(f"{err.message}; scoring draws its examples from an extraction: run "
                            f"`mistudio extract {sae_id}` first") from err
    chosen, skipped = select_explanations(studio, sae_id, request, store.n_features)
    if not chosen:
        what = f" of features {request.features}" if request.features else ""
        hint = ("; they are all scored by this scorer and model already (use --force to score again)" if skipped
                else "; explain them first (`mistudio explain`) or pick features that have explanations")
        raise InvalidInputError(f"SAE {sae_id} has no explanations{what} to score{hint}")
    params = {"sae_id": sae_id, "extraction_id": extraction_id,
              "request": request.model_dump(exclude={"api_key"}),
              "explanations": [[v.id, v.feature_index] for v in chosen]}
    create = studio.runner.submit if submit else studio.runner.create
    job_id = create(JOB_TYPE, params, sae_id, secrets={"api_key": request.api_key})
    return ScoreStarted(job_id=job_id, sae_id=sae_id, n_explanations=len(chosen), n_skipped=skipped)


@dataclass(frozen=True)
class _Task:
    explanation_id: str
    feature_index: int
    description: str
    examples: list[ScoringExample]
    n_reused: int


def _seen_windows(store: FeatureStore, view: ExplanationView) -> list[int]:
    """The windows the explainer was shown: recorded in the explanation's details (`windows`), else its top
    examples as `evidence.feature_evidence` picks them (`n_examples` of them as recorded, else
    `SEEN_TOP_EXAMPLES`)."""
    recorded = view.details.get("windows")
    if isinstance(recorded, list):
        return [int(w) for w in recorded]
    n_top = view.details.get("n_examples")
    n_top = int(n_top) if isinstance(n_top, int) and n_top > 0 else SEEN_TOP_EXAMPLES
    return [e.window_index for e in feature_evidence(store, view.feature_index, n_top=n_top).top]


def _draw(ctx: JobContext[Studio], sae_id: str, extraction_id: str, store: FeatureStore,
          views: list[ExplanationView], request: ScoreRequest, scorer: Scorer) -> tuple[list[_Task], list[ScoreFailure]]:
    """Each explanation's examples (the non-activating pool encoded once for every feature, on the extraction's
    model)."""
    from mistudio.db.models import Extraction as ExtractionRecord
    from mistudio.inference.sae_session import open_sae

    n_act = request.n_activating or scorer.default_activating
    n_non = request.n_non_activating if request.n_non_activating is not None else (
        request.n_activating or scorer.default_non_activating)
    zero = None
    if n_non > 0:
        with ctx.studio.sessions() as s:
            row = s.get(ExtractionRecord, extraction_id)
            model = row.model_name if row is not None else None
        live = open_sae(ctx.studio, sae_id, model=model)
        zero = ZeroWindows(live, store, sorted({v.feature_index for v in views}), n_wanted=n_non,
                           seed=request.seed)
    tasks, failures = [], []
    for done, view in enumerate(views):
        if done % 50 == 0:
            ctx.progress(0.0, f"drawing examples: {done} of {len(views)} explanations",
                         stage_fraction=done / len(views))
            ctx.check_cancelled()
        f = view.feature_index
        act, reused = activating_examples(store, f, n_act, seen_windows=_seen_windows(store, view),
                                          context=request.context, seed=request.seed)
        non = non_activating_examples(store, f, n_non, zero, context=request.context,
                                      seed=request.seed) if zero is not None else []
        problem = None
        if not act:
            problem = f"feature {f} never fired in the extraction, so there are no activating examples to score"
        elif n_non > 0 and not non and not scorer.needs_logprobs:
            problem = (f"no window of the extraction reads 0 for feature {f} (it fires nearly everywhere), so there "
                       "are no non-activating examples to tell apart")
        if problem:
            failures.append(ScoreFailure(feature_index=f, explanation_id=view.id, error=problem,
                                         error_type="InvalidInputError"))
            continue
        tasks.append(_Task(view.id, f, view.description, act + non, reused))
    return tasks, failures


def _done_by_job(studio: Studio, job_id: str, scorer: str) -> dict[str, ScoredExplanation]:
    with studio.sessions() as s:
        return {sc.explanation_id: ScoredExplanation(feature_index=fi, explanation_id=sc.explanation_id,
                                                     score=float(sc.score), n_examples=int(sc.n_examples or 0))
                for fi, sc in scores_by_job(s, job_id, scorer)}


@register_job_type(JOB_TYPE)
def score_job(ctx: JobContext[Studio], params: dict[str, Any]) -> dict[str, Any]:
    """Score the explanations in `params`; the result is a `ScoreResult`."""
    from mistudio.extraction.service import get_store

    ctx.set_stages(STAGES)
    studio = ctx.studio
    sae_id, extraction_id = params["sae_id"], params["extraction_id"]
    request = ScoreRequest.model_validate({**params["request"], "api_key": ctx.secret("api_key")})
    scorer = get_scorer(request.scorer, examples_per_prompt=request.examples_per_prompt)
    wanted = {str(e): int(f) for e, f in params["explanations"]}
    done = _done_by_job(studio, ctx.job_id, request.scorer)
    ctx.stage(STAGES[0])
    _, store = get_store(studio, sae_id, extraction_id)
    with studio.sessions() as s:
        by_feature = explanations_by_feature(s, sae_id, set(wanted.values()))
    views = [v for vs in by_feature.values() for v in vs if v.id in wanted and v.id not in done]
    tasks, failures = _draw(ctx, sae_id, extraction_id, store, views, request, scorer) if views else ([], [])
    present = {v.id for vs in by_feature.values() for v in vs}
    failures += [ScoreFailure(feature_index=f, explanation_id=e, error=f"feature {f}: explanation {e} was deleted",
                              error_type="NotFoundError") for e, f in wanted.items() if e not in present]
    ctx.check_cancelled()
    ctx.stage(STAGES[1])
    scores = list(done.values())
    total = len(wanted)
    endpoint = Endpoint(request.endpoint, request.model, api_key=request.api_key, timeout_s=request.timeout_s,
                        max_retries=request.max_retries)

    def run(task: _Task) -> ScoreOutcome:
        rng = feature_rng(request.seed, task.feature_index, f"prompts:{task.explanation_id}")
        return scorer.score(client, task.description, task.examples, rng)

    in_a_row = 0
    give_up = max(3, request.concurrency)
    with ChatClient(endpoint, concurrency=request.concurrency) as client:
        if tasks:
            client.check()  # a server that is down or refuses the key fails the job now, not once per feature
        for task, outcome in client.map_concurrent(run, tasks):
            if isinstance(outcome, MiStudioError):
                failures.append(ScoreFailure(feature_index=task.feature_index, explanation_id=task.explanation_id,
                                             error=f"feature {task.feature_index}: {outcome.message}",
                                             error_type=type(outcome).__name__))
                in_a_row = in_a_row + 1 if isinstance(outcome, EndpointUnreachableError | EndpointAuthError) else 0
                if in_a_row >= give_up:
                    raise type(outcome)(
                        f"stopped: {in_a_row} explanations in a row could not be scored ({len(scores)} scores are "
                        f"stored; the same command carries on from there); last: {failures[-1].error}")
            else:
                in_a_row = 0
                details = {**outcome.details, "extraction_id": extraction_id, "seed": request.seed,
                           "context": request.context, "seen_examples_reused": task.n_reused}
                with studio.sessions() as s, s.begin():
                    add_score(s, task.explanation_id, request.scorer, outcome.score, model=request.model,
                              n_examples=outcome.n_examples, job_id=ctx.job_id, details=details)
                scores.append(ScoredExplanation(feature_index=task.feature_index, explanation_id=task.explanation_id,
                                                score=outcome.score, n_examples=outcome.n_examples))
            finished = len(scores) + len(failures)
            ctx.progress(finished / max(total, 1), f"{len(scores)} scored, {len(failures)} failed of {total}")
            ctx.check_cancelled()
        usage = client.usage()
    if failures and not scores:
        first = failures[0]
        error_class: type[MiStudioError] = AutoInterpError if first.error_type.startswith("Endpoint") \
            else InvalidInputError
        raise error_class(f"every one of the {total} explanation(s) failed; first: {first.error}")
    scores.sort(key=lambda sc: (sc.feature_index, sc.explanation_id))
    failures.sort(key=lambda fl: (fl.feature_index, fl.explanation_id))
    result = ScoreResult(
        sae_id=sae_id, extraction_id=extraction_id, scorer=request.scorer, model=request.model,
        n_explanations=total, n_scored=len(scores), n_failed=len(failures),
        mean_score=sum(sc.score for sc in scores) / len(scores) if scores else None, scores=scores,
        failures=failures, requests=usage.requests, prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens)
    return result.model_dump()


__all__ = ["JOB_TYPE", "score_job", "select_explanations", "start_scoring"]

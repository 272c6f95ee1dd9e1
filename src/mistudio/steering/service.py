"""Steering runs end to end: check the request, lease the SAE's model, generate STEERED and DEFAULT, compare with
Neuronpedia when asked, store the run. Every check that needs no model runs first, so bad input answers at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mistudio.catalog.service import get_record
from mistudio.errors import ConflictError, InvalidInputError
from mistudio.lm.loading import LoadedModel
from mistudio.steering import generate as gen
from mistudio.steering.compare import compare_with_neuronpedia
from mistudio.steering.methods import check_method, steering_terms
from mistudio.steering.runs import save_run
from mistudio.steering.schemas import (
    MAX_PROMPT_TOKENS,
    Completion,
    GeneratedToken,
    SteerRequest,
    SteerResult,
    SweepRequest,
    SweepResult,
    SweepRow,
    TokenLogprob,
)
from mistudio.studio import Studio


@dataclass
class SteeringTarget:
    """What a steering run needs: the leased model, the SAE's decoder and where and how it reads the model."""

    loaded: LoadedModel
    W_dec: Any
    hook: str
    head_index: int | None
    prepend_bos: bool
    transform: gen.Transform | None
    neuronpedia_id: str | None


def check_request(studio: Studio, request: SteerRequest) -> tuple[str, int]:
    """The model to run and the SAE's width, after the checks that need no model.

    Raises:
        NotFoundError: the SAE is not in the catalog.
        ConflictError: the SAE is not ready.
        InvalidInputError: an empty prompt, an unknown method, a feature outside the SAE, or no model to run.
    """
    if not request.prompt.strip():
        raise InvalidInputError("the prompt is empty; give some text to complete")
    check_method(request.steer_method)
    with studio.sessions() as s:
        record = get_record(s, request.sae_id)
        status, d_sae, model = record.status, record.d_sae, request.model or record.model_name
    if status != "ready":
        raise ConflictError(f"SAE {request.sae_id} is {status}; wait until it is ready")
    if not model:
        raise InvalidInputError(f"SAE {request.sae_id} does not name its model; pass `model`")
    bad = [f.index for f in request.features if d_sae is not None and f.index >= d_sae]
    if bad:
        raise InvalidInputError(f"feature {bad[0]} does not exist: SAE {request.sae_id} has features "
                                f"0..{(d_sae or 1) - 1}")
    return model, d_sae or 0


@contextmanager
def steering_target(studio: Studio, sae_id: str, model: str) -> Iterator[SteeringTarget]:
    """Lease the model from the studio's model server and open the SAE prepared as the extraction prepares it;
    a transcoder steers at the hook it writes (its decoder's space)."""
    from mistudio.inference.sae_session import open_sae

    live = open_sae(studio, sae_id, model=model)
    with live.lease() as loaded:
        cfg = live.sae.cfg
        inputs = live.inputs(loaded)
        if cfg.is_transcoder and inputs.hook_out is not None:
            hook, head_index, transform = inputs.hook_out, None, inputs.target_transform
        else:
            hook, head_index, transform = inputs.hook, inputs.head_index, inputs.transform
        yield SteeringTarget(loaded=loaded, W_dec=live.sae.W_dec, hook=hook, head_index=head_index,
                             prepend_bos=live.prepend_bos, transform=transform, neuronpedia_id=cfg.neuronpedia_id)


def _prompt_ids(target: SteeringTarget, request: SteerRequest) -> list[int]:
    ids = gen.prompt_token_ids(target.loaded.tokenizer, request.prompt, chat=request.chat,
                               prepend_bos=target.prepend_bos)
    if len(ids) > MAX_PROMPT_TOKENS:
        raise InvalidInputError(f"the prompt is {len(ids)} tokens long; steering takes at most {MAX_PROMPT_TOKENS}")
    return ids


def _completion(generation: gen.Generation) -> Completion:
    return Completion(text=generation.text, token_ids=generation.token_ids, logprobs=[
        GeneratedToken(token=t.token, token_id=t.token_id, logprob=t.logprob,
                       top_logprobs=[TokenLogprob(token=c.token, token_id=c.token_id, logprob=c.logprob)
                                     for c in t.top_logprobs])
        for t in generation.logprobs])


def _run(target: SteeringTarget, request: SteerRequest, prompt_ids: list[int], *, steered: bool,
         strength_multiplier: float | None = None) -> Completion:
    """One completion: steered with the request's features (at `strength_multiplier` when given) or not."""
    from mistudio.lm.hooks import resolve_hook

    hook = None
    if steered:
        terms = steering_terms(target.W_dec, [(f.index, f.strength) for f in request.features],
                               strength_multiplier=request.strength_multiplier if strength_multiplier is None
                               else strength_multiplier, normalize_steering=request.normalize_steering)
        point = resolve_hook(target.loaded, target.hook)
        hook = gen.SteeringHook(target.loaded, point, terms, check_method(request.steer_method),
                                steer_special_tokens=request.steer_special_tokens, transform=target.transform,
                                head_index=target.head_index)
    return _completion(gen.generate(target.loaded, prompt_ids, n_tokens=request.n_completion_tokens,
                                    temperature=request.temperature, freq_penalty=request.freq_penalty,
                                    seed=request.seed, n_logprobs=request.n_logprobs, hook=hook))


def steer(studio: Studio, request: SteerRequest, *, store: bool = True) -> SteerResult:
    """Generate the completions of the types asked for (STEERED first, then DEFAULT, each from the same seed),
    compare with Neuronpedia when asked, and store the run.

    Raises:
        NotFoundError: the SAE is not in the catalog.
        ConflictError: the SAE is not ready.
        InvalidInputError: bad input (see `check_request`), or a hook that cannot be steered.
    """
    model, _ = check_request(studio, request)
    with steering_target(studio, request.sae_id, model) as target:
        prompt_ids = _prompt_ids(target, request)
        compare = request.compare_neuronpedia
        if compare is not None and not (compare.source or target.neuronpedia_id):
            raise InvalidInputError("the SAE has no Neuronpedia id; pass the Neuronpedia source (`model/source`, "
                                    "e.g. `gemma-2-2b/20-gemmascope-res-16k`) to compare")
        outputs: dict[str, Completion] = {}
        for kind in ("STEERED", "DEFAULT"):
            if kind in request.types:
                outputs[kind] = _run(target, request, prompt_ids, steered=kind == "STEERED")
        neuronpedia_id = target.neuronpedia_id
    result = SteerResult(run_id="", prompt_token_ids=prompt_ids, STEERED=outputs.get("STEERED"),
                         DEFAULT=outputs.get("DEFAULT"))
    if compare is not None:
        result.comparison = compare_with_neuronpedia(request, compare, neuronpedia_id, outputs)
    if store:
        save_run(studio, request, "steer", result)
    return result


def sweep(studio: Studio, request: SweepRequest, *, store: bool = True) -> SweepResult:
    """The DEFAULT completion once and the STEERED completion at each strength multiplier; stored as one run.

    Raises:
        NotFoundError: the SAE is not in the catalog.
        ConflictError: the SAE is not ready.
        InvalidInputError: bad input (see `check_request`), a Neuronpedia comparison asked for, or a hook that
            cannot be steered.
    """
    model, _ = check_request(studio, request)
    if request.compare_neuronpedia is not None:
        raise InvalidInputError("a sweep is not compared with Neuronpedia; compare single runs (POST /steer)")
    with steering_target(studio, request.sae_id, model) as target:
        prompt_ids = _prompt_ids(target, request)
        default = _run(target, request, prompt_ids, steered=False)
        rows = [SweepRow(strength_multiplier=m, STEERED=_run(target, request, prompt_ids, steered=True,
                                                              strength_multiplier=m))
                for m in request.strength_multipliers]
    result = SweepResult(run_id="", DEFAULT=default, rows=rows, prompt_token_ids=prompt_ids)
    if store:
        save_run(studio, request, "sweep", result)
    return result

"""The same steering request sent to a Neuronpedia host (`POST /api/steer`, chat: `POST /api/steer-chat`, with
the user's `x-api-key`), and its answer set beside ours: four panes and a flag when the DEFAULT completions
differ at temperature 0 (a different model, tokenisation or BOS)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from mistudio.errors import InvalidInputError
from mistudio.steering.schemas import (
    Comparison,
    Completion,
    NeuronpediaCompare,
    NeuronpediaOutput,
    SteerRequest,
    TokenLogprob,
)

TIMEOUT_S = 120.0


def split_source(source: str) -> tuple[str, str]:
    """`gemma-2-2b/20-gemmascope-res-16k` → (model id, source/layer id).

    Raises:
        InvalidInputError: the id is not `model/source`.
    """
    model_id, sep, layer = source.strip().strip("/").partition("/")
    if not sep or not model_id or not layer or "/" in layer:
        raise InvalidInputError(f"Neuronpedia source {source!r} should be `model/source`, e.g. "
                                "`gemma-2-2b/20-gemmascope-res-16k`")
    return model_id, layer


def neuronpedia_payload(request: SteerRequest, source: str) -> tuple[str, dict[str, Any]]:
    """The API path and JSON body Neuronpedia's web API takes for this request."""
    model_id, layer = split_source(source)
    common: dict[str, Any] = {
        "modelId": model_id,
        "features": [{"modelId": model_id, "layer": layer, "index": f.index, "strength": f.strength}
                     for f in request.features],
        "temperature": request.temperature, "n_tokens": request.n_completion_tokens,
        "freq_penalty": request.freq_penalty, "seed": request.seed,
        "strength_multiplier": request.strength_multiplier, "steer_method": request.steer_method,
    }
    if request.chat:
        messages = [{"role": "user", "content": request.prompt}]
        return "/api/steer-chat", {**common, "defaultChatMessages": messages, "steeredChatMessages": messages,
                                   "steer_special_tokens": request.steer_special_tokens}
    return "/api/steer", {**common, "prompt": request.prompt}


def _post(url: str, body: dict[str, Any], api_key: str | None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["x-api-key"] = api_key
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 (a URL the user gave)
        data = json.loads(resp.read().decode())
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    return data


def _logprobs(items: Any) -> list[TokenLogprob] | None:
    if not isinstance(items, list):
        return None
    return [TokenLogprob(token=str(i.get("token", "")), token_id=-1, logprob=float(i.get("logprob", 0.0)))
            for i in items if isinstance(i, dict)]


def _completion_text(value: Any, prompt: str) -> str | None:
    """Neuronpedia's output without the prompt it echoes (completion) or the assistant's last turn (chat)."""
    if isinstance(value, dict):
        turns = value.get("chatTemplate") or value.get("chat_template") or []
        assistant = [t for t in turns if isinstance(t, dict) and t.get("role") in ("assistant", "model")]
        if assistant:
            return str(assistant[-1].get("content", ""))
        value = value.get("raw")
    if not isinstance(value, str):
        return None
    return value[len(prompt):] if value.startswith(prompt) else value


def _output(data: dict[str, Any], kind: str, prompt: str) -> NeuronpediaOutput | None:
    text = _completion_text(data.get(kind), prompt)
    if text is None:
        return None
    raw = data.get(kind)
    logprobs = raw.get("logprobs") if isinstance(raw, dict) else data.get(
        "steeredLogProbs" if kind == "STEERED" else "defaultLogProbs")
    return NeuronpediaOutput(text=text, logprobs=_logprobs(logprobs))


def same_completion(ours: str, theirs: str) -> bool:
    """Whether two completions are the same text (surrounding whitespace ignored: chat turns are stripped)."""
    return ours.strip() == theirs.strip()


def compare_with_neuronpedia(request: SteerRequest, options: NeuronpediaCompare, source: str | None,
                             ours: dict[str, Completion]) -> Comparison:
    """Ask Neuronpedia for the same completions and set them beside `ours`; a failure is reported in the
    comparison (`error`), never raised, so our own completions are still returned.

    Raises:
        InvalidInputError: no Neuronpedia source is known for the SAE.
    """
    source = options.source or source
    if not source:
        raise InvalidInputError("the SAE has no Neuronpedia id; pass the Neuronpedia source "
                                "(`model/source`, e.g. `gemma-2-2b/20-gemmascope-res-16k`) to compare")
    host = options.host.rstrip("/")
    path, body = neuronpedia_payload(request, source)
    try:
        data = _post(host + path, body, options.api_key)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        hint = " (check the API key)" if exc.code in (401, 403) else ""
        return Comparison(host=host, source=source, error=f"Neuronpedia answered {exc.code}{hint}: {detail}")
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        return Comparison(host=host, source=source, error=f"could not reach Neuronpedia at {host}: {exc}")
    comparison = Comparison(host=host, source=source, STEERED=_output(data, "STEERED", request.prompt),
                            DEFAULT=_output(data, "DEFAULT", request.prompt))
    ours_default, theirs_default = ours.get("DEFAULT"), comparison.DEFAULT
    if request.temperature == 0 and ours_default is not None and theirs_default is not None:
        match = same_completion(ours_default.text, theirs_default.text)
        comparison.default_match = match
        comparison.mismatch = not match
        comparison.message = ("The DEFAULT completions agree." if match else
                              "The DEFAULT completions differ at temperature 0: the two sides run a different "
                              "model, tokenisation or BOS convention, so steered outputs are not comparable.")
    elif request.temperature != 0:
        comparison.message = "Sampled at temperature > 0: completions are not expected to match."
    return comparison

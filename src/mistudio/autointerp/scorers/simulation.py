"""OpenAI's simulation score (openai/automated-interpretability, `explanations/simulator.py` + `scoring.py`): a
simulator model reads the explanation and predicts the feature's activation, 0 to 10, on every token of each
example; the prediction at a token is the expected value over the log-probabilities of the answers "0" … "10"
(`compute_expected_value`), and the score is the correlation of those expected values with the true activations
over every token of every example at once (`aggregate_scored_sequence_simulations`, `ev_correlation_score`).

The prompt is OpenAI's all-at-once simulator prompt (system text, `Neuron N` / `Explanation of neuron N behavior:
the main thing this neuron does is find …`, `token<tab>activation` lines between `<start>` and `<end>`, "unknown"
for the activations to predict). OpenAI reads the log-probabilities of the prompt itself (`echo=True`), which the
chat API does not offer, so here the simulator answers the same lines with the activations filled in and the
log-probabilities are those of the answer token after each tab (`logprobs: true, top_logprobs: 15`). Endpoints
that return no log-probabilities cannot be used (`EndpointResponseError` says so).
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from mistudio.autointerp.client import ChatClient, TokenLogprobs
from mistudio.autointerp.scorers.base import Message, RequestTally, ScoreOutcome
from mistudio.autointerp.scorers.examples import ScoringExample, display_token
from mistudio.errors import EndpointResponseError

MAX_NORMALIZED_ACTIVATION = 10
TOP_LOGPROBS = 15
"""OpenAI's simulator asks for `logprobs=15`."""
EXPLANATION_PREFIX = "the main thing this neuron does is find"
UNKNOWN = "unknown"
SYSTEM_PROMPT = """We're studying neurons in a neural network.
Each neuron looks for some particular thing in a short document.
Look at summary of what the neuron does, and try to predict how it will fire on each token.

The activation format is token<tab>activation, activations go from 0 to 10, "unknown" indicates an unknown activation. Most activations will be 0.
"""
ANSWER_INSTRUCTION = ("Answer with the same lines, each token followed by a tab and the activation you predict "
                      "(an integer from 0 to 10) in place of \"unknown\", and nothing else.")
FEW_SHOT_EXPLANATION = "the word \"cat\" and words for young cats"
FEW_SHOT_TOKENS = ("The", " cat", " sat", " on", " the", " mat", " while", " a", " kitten", " slept", ".")
FEW_SHOT_ACTIVATIONS = (0, 10, 0, 0, 0, 0, 0, 0, 7, 0, 0)
def activation_lines(tokens: Sequence[str], activations: Sequence[int] | None) -> str:
    """OpenAI's record format: `\\n<start>\\n` + `token<tab>activation` lines (`unknown` when `activations` is
    None) + `\\n<end>\\n`."""
    shown = [UNKNOWN] * len(tokens) if activations is None else [str(int(a)) for a in activations]
    body = "\n".join(f"{display_token(t)}\t{a}" for t, a in zip(tokens, shown, strict=True))
    return f"\n<start>\n{body}\n<end>\n"


def _neuron_question(number: int, explanation: str, tokens: Sequence[str]) -> str:
    return (f"\n\nNeuron {number}\nExplanation of neuron {number} behavior: {EXPLANATION_PREFIX} "
            f"{explanation.strip()}\nActivations: {activation_lines(tokens, None)}\n{ANSWER_INSTRUCTION}")


def simulation_messages(explanation: str, tokens: Sequence[str]) -> list[Message]:
    """The all-at-once simulator prompt for one example: the system text, one worked neuron, then this one."""
    worked = activation_lines(FEW_SHOT_TOKENS, FEW_SHOT_ACTIVATIONS).strip("\n")
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": _neuron_question(1, FEW_SHOT_EXPLANATION, FEW_SHOT_TOKENS)},
            {"role": "assistant", "content": worked},
            {"role": "user", "content": _neuron_question(2, explanation, tokens)}]


def expected_value(top: Sequence[tuple[str, float]]) -> float | None:
    """OpenAI's `compute_predicted_activation_stats_for_token`: the alternatives that read as an integer 0 … 10,
    their probabilities normalised to sum 1, and the expected value; None when no alternative is such a number."""
    probabilities: dict[int, float] = {}
    for token, logprob in top:
        text = token.strip()
        if text.isdigit() and int(text) <= MAX_NORMALIZED_ACTIVATION and str(int(text)) == text:
            probabilities[int(text)] = probabilities.get(int(text), 0.0) + math.exp(logprob)
    total = sum(probabilities.values())
    if total <= 0:
        return None
    return sum(value * p / total for value, p in probabilities.items())


def parse_simulation(answer_tokens: Sequence[TokenLogprobs], n_tokens: int) -> tuple[list[float], int]:
    """The expected activation of each of `n_tokens` tokens read from the answer's log-probabilities: the answer
    is re-assembled from its tokens, each `token<tab>value` line located, and the expected value taken at the
    answer token where the value starts (the sampled value itself when no alternative there is a number).
    Returns the expected values and how many fell back to the sampled value.

    Raises:
        ValueError: the answer does not hold exactly `n_tokens` activation lines with a value 0 … 10.
    """
    starts, text = [], ""
    for entry in answer_tokens:
        starts.append(len(text))
        text += entry.token
    values: list[float] = []
    fallbacks = 0
    offset = 0
    for line in text.split("\n"):
        line_start, offset = offset, offset + len(line) + 1
        stripped = line.strip()
        if not stripped or stripped in ("<start>", "<end>") or "\t" not in line:
            continue
        tab = line.rindex("\t")
        raw = line[tab + 1:]
        value_text = raw.strip()
        if not (value_text.isdigit() and int(value_text) <= MAX_NORMALIZED_ACTIVATION):
            raise ValueError(f"line {line[:40]!r} does not end in an activation 0 … 10")
        at = line_start + tab + 1 + (len(raw) - len(raw.lstrip()))
        k = bisect.bisect_right(starts, at) - 1
        ev = expected_value(answer_tokens[k].top) if k >= 0 else None
        if ev is None:
            fallbacks += 1
            ev = float(int(value_text))
        values.append(ev)
    if len(values) != n_tokens:
        raise ValueError(f"the answer has {len(values)} activation lines for {n_tokens} tokens")
    return values, fallbacks


def correlation(true_values: Sequence[float], predicted: Sequence[float]) -> float | None:
    """OpenAI's `correlation_score` (Pearson, `np.corrcoef`); None when either side is constant."""
    a = np.asarray(true_values, dtype=np.float64)
    b = np.asarray(predicted, dtype=np.float64)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


class SimulationScorer:
    """Correlation of the simulated (expected-value) activations with the true ones, one prompt per example."""

    name = "simulation"
    needs_logprobs = True
    default_activating = 10
    default_non_activating = 10

    def score(self, client: ChatClient, explanation: str, examples: Sequence[ScoringExample],
              rng: random.Random) -> ScoreOutcome:
        """Simulate every example and correlate.

        Raises:
            EndpointUnreachableError, EndpointAuthError: from the client.
            EndpointResponseError: the endpoint returns no log-probabilities, or no answer could be read.
        """
        tally = RequestTally()
        true_values: list[float] = []
        predicted: list[float] = []
        unparsed: list[str] = []
        fallbacks = 0
        n_sequences = 0
        for example in examples:
            response = client.complete(simulation_messages(explanation, example.tokens),
                                       max_tokens=8 * len(example.tokens) + 32, temperature=0.0,
                                       logprobs=True, top_logprobs=TOP_LOGPROBS)
            tally.add(response)
            if response.logprobs is None:
                raise EndpointResponseError(
                    f"{client.endpoint.url} ({client.endpoint.model}) returned no log-probabilities; the simulation "
                    "scorer needs them (OpenAI, vLLM and llama.cpp's server return them; Ollama's OpenAI API may "
                    "not); score with --scorer detection or fuzzing instead", details={"url": client.endpoint.url})
            try:
                values, fell_back = parse_simulation(response.logprobs, len(example.tokens))
            except ValueError as err:
                unparsed.append(f"{err} (answer {response.text[:80]!r})")
                continue
            fallbacks += fell_back
            n_sequences += 1
            true_values += example.values
            predicted += values
        if not predicted:
            raise EndpointResponseError(
                f"{client.endpoint.url} ({client.endpoint.model}) answered none of the {len(examples)} simulation "
                f"prompts with one token<tab>activation line per token: {unparsed[0] if unparsed else 'no examples'}",
                details={"url": client.endpoint.url})
        value = correlation(true_values, predicted)
        activating = [p for p, t in zip(predicted, true_values, strict=True) if t > 0]
        details: dict[str, Any] = {
            "correlation": value, "n_tokens": len(true_values), "n_sequences": n_sequences,
            "unparsed_sequences": len(unparsed), "fallback_tokens": fallbacks,
            "mean_expected_active": float(np.mean(activating)) if activating else None,
            "mean_expected_inactive": float(np.mean([p for p, t in zip(predicted, true_values, strict=True)
                                                     if t <= 0] or [0.0])), **tally.as_dict()}
        if value is None:
            details["undefined"] = "the simulated or the true activations are constant; the score is 0"
        if unparsed:
            details["unparsed_example"] = unparsed[0]
        return ScoreOutcome(score=value if value is not None else 0.0, n_examples=n_sequences, details=details)


__all__ = ["EXPLANATION_PREFIX", "SYSTEM_PROMPT", "SimulationScorer", "activation_lines", "correlation",
           "expected_value", "parse_simulation", "simulation_messages"]

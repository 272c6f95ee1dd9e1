"""delphi's classifier scorers (`delphi/scorers/classifier/`): show the judge a few examples per prompt (5 by
default), ask which ones the explanation fits, read its answer as a Python list of 0/1 and score the predictions
by balanced accuracy, (TPR + TNR) / 2 (0.5 = chance).

The examples are shuffled once (seeded) and cut into prompts of `examples_per_prompt`; an answer that holds no
list of exactly that many 0/1 values leaves its examples unscored (delphi's `prediction = None`), and an
explanation none of whose prompts got a usable answer fails with `EndpointResponseError`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mistudio.autointerp.client import ChatClient
from mistudio.autointerp.scorers.base import Message, RequestTally, ScoreOutcome
from mistudio.autointerp.scorers.examples import ScoringExample
from mistudio.errors import EndpointResponseError

EXAMPLES_PER_PROMPT = 5
"""delphi's `num_examples_per_scorer_prompt` default."""
ANSWER_MAX_TOKENS = 100
_FIRST_LIST = re.compile(r"\[.*?\]", re.DOTALL)


@dataclass(frozen=True)
class Sample:
    """One example as a prompt shows it, and whether the feature fires on it."""

    text: str
    activating: bool
    quantile: int


def batch_samples(samples: Sequence[Sample], size: int) -> list[list[Sample]]:
    """`samples` cut into prompts of `size` (the last one may be shorter)."""
    return [list(samples[i:i + size]) for i in range(0, len(samples), size)]


def examples_block(batch: Sequence[Sample]) -> str:
    """The prompt's example lines, `Example {i}: {text}` from 0, as delphi numbers them."""
    return "\n".join(f"Example {i}: {sample.text}" for i, sample in enumerate(batch))


def parse_predictions(answer: str, n: int) -> list[int]:
    """The judge's answer read as delphi reads it: the first `[...]` in the text, parsed as JSON, `n` values each
    0/1 (or false/true).

    Raises:
        ValueError: no list, not JSON, the wrong length, or a value other than 0/1.
    """
    match = _FIRST_LIST.search(answer)
    if match is None:
        raise ValueError("no [...] list in the answer")
    try:
        values = json.loads(match.group(0))
    except ValueError as err:
        raise ValueError(f"{match.group(0)[:60]!r} is not a JSON list") from err
    if not isinstance(values, list) or len(values) != n:
        raise ValueError(f"{match.group(0)[:60]!r} holds {len(values) if isinstance(values, list) else 0} values, "
                         f"not {n}")
    out = []
    for value in values:
        if isinstance(value, bool) or value in (0, 1):
            out.append(int(value))
        else:
            raise ValueError(f"{value!r} in the answer is neither 0 nor 1")
    return out


def balanced_accuracy(predictions: Sequence[int], activating: Sequence[bool]) -> dict[str, float | int]:
    """delphi's `compute_classification_metrics`: counts, TPR, TNR and balanced accuracy (TPR + TNR) / 2 (a rate
    over an empty class counts 0)."""
    tp = sum(1 for p, a in zip(predictions, activating, strict=True) if p and a)
    fn = sum(1 for p, a in zip(predictions, activating, strict=True) if not p and a)
    tn = sum(1 for p, a in zip(predictions, activating, strict=True) if not p and not a)
    fp = sum(1 for p, a in zip(predictions, activating, strict=True) if p and not a)
    pos, neg = tp + fn, tn + fp
    tpr = tp / pos if pos else 0.0
    tnr = tn / neg if neg else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    f1 = 2 * precision * tpr / (precision + tpr) if precision + tpr else 0.0
    return {"balanced_accuracy": (tpr + tnr) / 2, "tpr": tpr, "tnr": tnr, "precision": precision, "f1": f1,
            "tp": tp, "tn": tn, "fp": fp, "fn": fn}


def chat_messages(system: str, few_shot: Sequence[tuple[str, str]], explanation: str,
                  batch: Sequence[Sample]) -> list[Message]:
    """delphi's prompt: the system prompt, the few-shot (user, assistant) turns, then the explanation and the
    examples of this batch."""
    messages: list[Message] = [{"role": "system", "content": system}]
    for question, answer in few_shot:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": f"Latent explanation: {explanation}\n\nText examples:\n\n"
                                                f"{examples_block(batch)}\n"})
    return messages


class ClassifierScorer:
    """Shared run of detection and fuzzing: subclasses say how examples become samples and what the prompt is."""

    name = "classifier"
    needs_logprobs = False
    default_activating = 25
    default_non_activating = 25
    system_prompt = ""
    few_shot: tuple[tuple[str, str], ...] = ()

    def __init__(self, examples_per_prompt: int = EXAMPLES_PER_PROMPT) -> None:
        self.examples_per_prompt = examples_per_prompt

    def samples(self, examples: Sequence[ScoringExample], rng: random.Random) -> list[Sample]:
        """The examples as the prompt shows them (before shuffling)."""
        raise NotImplementedError

    def messages(self, explanation: str, batch: Sequence[Sample]) -> list[Message]:
        """The chat messages asking about one batch."""
        return chat_messages(self.system_prompt, self.few_shot, explanation, batch)

    def plan(self, explanation: str, examples: Sequence[ScoringExample],
             rng: random.Random) -> list[tuple[list[Sample], list[Message]]]:
        """Every prompt of one explanation: (its samples, its messages), samples shuffled with `rng`."""
        samples = self.samples(examples, rng)
        rng.shuffle(samples)
        return [(batch, self.messages(explanation, batch)) for batch in batch_samples(samples,
                                                                                      self.examples_per_prompt)]

    def score(self, client: ChatClient, explanation: str, examples: Sequence[ScoringExample],
              rng: random.Random) -> ScoreOutcome:
        """Ask about every batch and score the predictions by balanced accuracy.

        Raises:
            EndpointUnreachableError, EndpointAuthError: from the client.
            EndpointResponseError: no prompt got an answer holding a list of its examples' 0/1 predictions.
        """
        tally = RequestTally()
        predictions: list[int] = []
        labels: list[bool] = []
        quantiles: list[int] = []
        unparsed: list[str] = []
        prompts = self.plan(explanation, examples, rng)
        for batch, messages in prompts:
            response = client.complete(messages, max_tokens=ANSWER_MAX_TOKENS, temperature=0.0)
            tally.add(response)
            try:
                answer = parse_predictions(response.text, len(batch))
            except ValueError as err:
                unparsed.append(f"{err} (answer {response.text[:80]!r})")
                continue
            predictions += answer
            labels += [s.activating for s in batch]
            quantiles += [s.quantile for s in batch]
        if not predictions:
            raise EndpointResponseError(
                f"{client.endpoint.url} ({client.endpoint.model}) answered none of the {len(prompts)} {self.name} "
                f"prompts with a list of 0/1 predictions like [1,0,0,1,0]: {unparsed[0] if unparsed else 'no prompts'}"
                "; use an instruction-following model", details={"url": client.endpoint.url})
        metrics = balanced_accuracy(predictions, labels)
        by_quantile: dict[str, float] = {}
        for q in sorted({q for q, a in zip(quantiles, labels, strict=True) if a}):
            hits = [p for p, qq, a in zip(predictions, quantiles, labels, strict=True) if a and qq == q]
            by_quantile[str(q)] = sum(hits) / len(hits)
        details: dict[str, Any] = {
            **{k: v for k, v in metrics.items() if k != "balanced_accuracy"},
            "n_activating": sum(labels), "n_non_activating": len(labels) - sum(labels),
            "n_prompts": len(prompts), "unparsed_prompts": len(unparsed), "examples_per_prompt":
                self.examples_per_prompt, "tpr_by_quantile": by_quantile, **tally.as_dict()}
        if unparsed:
            details["unparsed_example"] = unparsed[0]
        return ScoreOutcome(score=float(metrics["balanced_accuracy"]), n_examples=len(predictions), details=details)


__all__ = ["EXAMPLES_PER_PROMPT", "ClassifierScorer", "Sample", "balanced_accuracy", "batch_samples",
           "chat_messages", "examples_block", "parse_predictions"]

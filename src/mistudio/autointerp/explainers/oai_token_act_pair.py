"""`oai_token-act-pair`: OpenAI's token–activation-pair explainer (Bills et al. 2023), as Neuronpedia runs it.

Reproduces `TokenActivationPairExplainer.make_explanation_prompt` of openai/automated-interpretability
(`neuron-explainer/neuron_explainer/explanations/explainer.py`, `activations/activation_records.py`) with the
128k context of Neuronpedia's fork (hijohnnylin/automated-interpretability, which `batch-autointerp.py` of
hijohnnylin/neuronpedia calls): a system message, three few-shot neurons (the `ORIGINAL` set) and the feature's
top examples, each as `token<tab>activation` lines between `<start>` and `<end>`, activations normalised to
integers 0..10 by the neuron's maximum (`min(10, floor(10 · relu(a) / max))`), the non-zero lines repeated when
fewer than 20 % are non-zero, and the request ending in the answer prefix "the main thing this neuron does is
find". The answer is the continuation of that sentence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mistudio.autointerp.evidence import FeatureEvidence
from mistudio.autointerp.explainers.base import ExplainerSettings, Messages
from mistudio.autointerp.explainers.few_shot import ORIGINAL

METHOD = "oai_token-act-pair"
PROMPT_VERSION = "oai_token-act-pair/1 (openai/automated-interpretability TokenActivationPairExplainer, ORIGINAL)"
EXPLANATION_PREFIX = "the main thing this neuron does is find"
SYSTEM_PROMPT = (
    "We're studying neurons in a neural network. Each neuron looks for some particular "
    "thing in a short document. Look at the parts of the document the neuron activates for "
    "and summarize in a single sentence what the neuron is looking for. Don't list "
    "examples of words.\n\nThe activation format is token<tab>activation. Activation "
    "values range from 0 to 10. A neuron finding what it's looking for is represented by a "
    "non-zero activation value. The higher the activation value, the stronger the match."
)

Record = tuple[Sequence[str], Sequence[float]]


def relu(x: float) -> float:
    return max(0.0, x)


def max_activation(records: Sequence[Record]) -> float:
    """`calculate_max_activation`: the largest relu'd activation over the records."""
    return max(max(relu(x) for x in values) for _, values in records)


def normalize_activations(values: Sequence[float], max_value: float) -> list[int]:
    """`normalize_activations`: integers 0..10 relative to `max_value` (all 0 when it is not positive)."""
    if max_value <= 0:
        return [0 for _ in values]
    return [min(10, math.floor(10 * relu(x) / max_value)) for x in values]


def _format_record(tokens: Sequence[str], values: Sequence[float], max_value: float, omit_zeros: bool) -> str:
    normalized = normalize_activations(values, max_value)
    pairs = list(zip(tokens, normalized, strict=True))
    if omit_zeros:
        pairs = [(t, a) for t, a in pairs if a > 0]
    return "\n".join(f"{token}\t{activation}" for token, activation in pairs)


def format_activation_records(records: Sequence[Record], max_value: float, *, omit_zeros: bool = False) -> str:
    """`format_activation_records`: each record's lines between `<start>` and `<end>`."""
    return ("\n<start>\n" + "\n<end>\n<start>\n".join(
        _format_record(tokens, values, max_value, omit_zeros) for tokens, values in records) + "\n<end>\n")


def non_zero_proportion(records: Sequence[Record], max_value: float) -> float:
    """`non_zero_activation_proportion`: the share of tokens whose normalised activation is not 0."""
    total = sum(len(values) for _, values in records)
    nonzero = sum(sum(1 for a in normalize_activations(values, max_value) if a != 0) for _, values in records)
    return nonzero / total


def neuron_message(records: Sequence[Record], index: int) -> str:
    """The user message of neuron `index` (0-based): its records, the zero-filtered repeat when sparse, and the
    request ending in the answer prefix."""
    top = max_activation(records)
    message = f"\n\nNeuron {index + 1}\nActivations:{format_activation_records(records, top, omit_zeros=False)}"
    if non_zero_proportion(records, top) < 0.2:
        message += ("\nSame activations, but with all zeros filtered out:"
                    f"{format_activation_records(records, top, omit_zeros=True)}")
    return message + f"\nExplanation of neuron {index + 1} behavior: {EXPLANATION_PREFIX}"


class TokenActivationPairExplainer:
    """OpenAI's explainer; see the module docstring."""

    method = METHOD
    prompt_version = PROMPT_VERSION
    summary = ("OpenAI's token-activation-pair explainer (Bills et al. 2023): every token with its 0-10 activation, "
               "a one-sentence answer")
    settings = ExplainerSettings(max_tokens=2000, temperature=1.0, n_examples=20, expected_completion_tokens=25)

    def build_messages(self, evidence: FeatureEvidence) -> Messages:
        messages: Messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        for i, example in enumerate(ORIGINAL):
            records: list[Record] = [(r.tokens, r.activations) for r in example.records]
            messages.append({"role": "user", "content": neuron_message(records, i)})
            messages.append({"role": "assistant", "content": f" {example.explanation}."})
        records = [(list(ex.tokens), list(ex.values)) for ex in evidence.top]
        messages.append({"role": "user", "content": neuron_message(records, len(ORIGINAL))})
        return messages

    def parse(self, answer: str, evidence: FeatureEvidence) -> str:
        """The completion as it stands (OpenAI's parse for one explanation); a chat model that repeats the answer
        prefix has it removed."""
        text = answer.strip()
        if text.lower().startswith(EXPLANATION_PREFIX):
            text = text[len(EXPLANATION_PREFIX):].strip()
        return text

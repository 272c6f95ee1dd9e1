"""What every explainer is: a method id, a prompt version, the chat messages for a feature, the answer parsed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mistudio.autointerp.evidence import FeatureEvidence, clean_token
from mistudio.errors import EndpointResponseError

Messages = list[dict[str, str]]

VAGUE_WORDS = ("unclear", "unsure", "first token")
"""Answers containing these (case-insensitive) are replaced by the top example's max token, as Neuronpedia does."""


@dataclass(frozen=True)
class ExplainerSettings:
    """Request settings of one explainer (Neuronpedia's `batch-autointerp.py` values by default)."""

    max_tokens: int = 2000
    temperature: float = 1.0
    n_examples: int = 20
    expected_completion_tokens: int = 60
    """Typical answer length, for the cost estimate before a run (the run measures the real one)."""


class Explainer(Protocol):
    """An explanation method: `build_messages` makes the prompt, `parse` turns the answer into a description."""

    method: str
    prompt_version: str
    summary: str
    settings: ExplainerSettings

    def build_messages(self, evidence: FeatureEvidence) -> Messages:
        """The chat messages asking for an explanation of the feature."""
        ...

    def parse(self, answer: str, evidence: FeatureEvidence) -> str:
        """The description in `answer` (may be empty: `finish_description` then falls back)."""
        ...


def finish_description(parsed: str, evidence: FeatureEvidence, *, url: str) -> str:
    """Neuronpedia's last step for every method (`batch-autointerp.py`): drop one final period and the line
    breaks; an empty or vague answer ("unclear", "unsure", "first token") becomes the top example's max token.

    Raises:
        EndpointResponseError: no description and no top token to fall back on.
    """
    text = parsed[:-1] if parsed.endswith(".") else parsed
    text = text.replace("\n", "").replace("\r", "")
    lowered = text.strip().lower()
    if not lowered or any(word in lowered for word in VAGUE_WORDS):
        top = evidence.top[0] if evidence.top else None
        text = clean_token(top.tokens[top.max_index]).strip() if top and top.tokens else ""
        if not text:
            raise EndpointResponseError(
                f"{url} gave no usable explanation for feature {evidence.feature_index} (answer {parsed[:200]!r}) "
                "and its top token is blank; try another model or method", details={"url": url})
    return text.strip()

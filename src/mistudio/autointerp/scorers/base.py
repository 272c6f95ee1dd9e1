"""What every scorer shares: its outcome, the tally of what it asked, and the scorer protocol the registry holds."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mistudio.autointerp.client import ChatClient, ChatResponse
from mistudio.autointerp.scorers.examples import ScoringExample

Message = dict[str, str]


@dataclass
class ScoreOutcome:
    """One explanation's score: the value, the number of examples it rests on, and the details stored with it."""

    score: float
    n_examples: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class RequestTally:
    """Requests and tokens spent on one explanation's score."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, response: ChatResponse) -> None:
        """Count one answer."""
        self.requests += 1
        self.prompt_tokens += response.prompt_tokens
        self.completion_tokens += response.completion_tokens

    def as_dict(self) -> dict[str, int]:
        """The counts as a score's details store them."""
        return {"requests": self.requests, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}


class Scorer(Protocol):
    """A scorer: asks the endpoint about `examples` given an explanation and turns the answers into a score."""

    name: str
    needs_logprobs: bool
    default_activating: int
    default_non_activating: int

    def score(self, client: ChatClient, explanation: str, examples: Sequence[ScoringExample],
              rng: random.Random) -> ScoreOutcome: ...


__all__ = ["Message", "RequestTally", "ScoreOutcome", "Scorer"]

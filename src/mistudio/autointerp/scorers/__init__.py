"""Scorers of feature explanations: delphi's detection and fuzzing (balanced accuracy) and OpenAI's simulation
(correlation), by name."""

from __future__ import annotations

from mistudio.autointerp.scorers.base import ScoreOutcome, Scorer
from mistudio.autointerp.scorers.classifier import EXAMPLES_PER_PROMPT
from mistudio.autointerp.scorers.detection import DetectionScorer
from mistudio.autointerp.scorers.fuzzing import FuzzingScorer
from mistudio.autointerp.scorers.simulation import SimulationScorer
from mistudio.errors import InvalidInputError

SCORER_NAMES = ("detection", "fuzzing", "simulation")


def get_scorer(name: str, *, examples_per_prompt: int = EXAMPLES_PER_PROMPT) -> Scorer:
    """A fresh scorer by name (`examples_per_prompt` for detection and fuzzing).

    Raises:
        InvalidInputError: no scorer of that name.
    """
    if name == "detection":
        return DetectionScorer(examples_per_prompt)
    if name == "fuzzing":
        return FuzzingScorer(examples_per_prompt)
    if name == "simulation":
        return SimulationScorer()
    raise InvalidInputError(f"unknown scorer {name!r}; choose one of {', '.join(SCORER_NAMES)}")


__all__ = ["SCORER_NAMES", "ScoreOutcome", "Scorer", "get_scorer"]

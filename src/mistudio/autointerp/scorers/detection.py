"""delphi's detection scorer (`delphi/scorers/classifier/detection.py`): the judge sees plain-text examples
(activating ones from across the quantile bands, non-activating ones from the same text) and says which ones the
explanation describes. The prompt is delphi's `prompts/detection_prompt.py`, word for word."""

from __future__ import annotations

import random
from collections.abc import Sequence

from mistudio.autointerp.scorers.classifier import ClassifierScorer, Sample
from mistudio.autointerp.scorers.examples import ScoringExample

SYSTEM_PROMPT = """You are an intelligent and meticulous linguistics researcher.

You will be given a certain latent of text, such as "male pronouns" or "text with negative sentiment".

You will then be given several text examples. Your task is to determine which examples possess the latent.

For each example in turn, return 1 if the sentence is correctly labeled or 0 if the tokens are mislabeled. You must return your response in a valid Python list. Do not return anything else besides a Python list.
"""

FEW_SHOT: tuple[tuple[str, str], ...] = (
    ("""Latent explanation: Words related to American football positions, specifically the tight end position.

Test examples:

Example 0:<|endoftext|>Getty ImagesĊĊPatriots tight end Rob Gronkowski had his bossâĢĻ
Example 1: names of months used in The Lord of the Rings:ĊĊâĢľâĢ¦the
Example 2: Media Day 2015ĊĊLSU defensive end Isaiah Washington (94) speaks to the
Example 3: shown, is generally not eligible for ads. For example, videos about recent tragedies,
Example 4: line, with the left side âĢĶ namely tackle Byron Bell at tackle and guard Amini
""",
     '[1,0,0,0,1]'),
    ("""Latent explanation: The word "guys" in the phrase "you guys".

Test examples:

Example 0: enact an individual health insurance mandate?âĢĿ, Pelosi's response was to dismiss both
Example 1: birth control access<|endoftext|> but I assure you women in Kentucky aren't laughing as they struggle
Example 2: du Soleil Fall Protection Program with construction requirements that do not apply to theater settings because
Example 3:Ċ<|endoftext|> distasteful. Amidst the slime lurk bits of Schadenfre
Example 4: the<|endoftext|>ľI want to remind you all that 10 days ago (director Massimil
""",
     '[0,0,0,0,0]'),
    ("""Latent explanation: "of" before words that start with a capital letter.

Test examples:

Example 0: climate, TomblinâĢĻs Chief of Staff Charlie Lorensen said.Ċ
Example 1: no wonderworking relics, no true Body and Blood of Christ, no true Baptism
Example 2:ĊĊDeborah Sathe, Head of Talent Development and Production at Film London,
Example 3:ĊĊIt has been devised by Director of Public Prosecutions (DPP)
Example 4: and fair investigation not even include the Director of Athletics? Â· Finally, we believe the
""",
     '[1,1,1,1,1]'),
)


class DetectionScorer(ClassifierScorer):
    """Balanced accuracy of the judge telling activating from non-activating contexts, given the explanation."""

    name = "detection"
    system_prompt = SYSTEM_PROMPT
    few_shot = FEW_SHOT

    def samples(self, examples: Sequence[ScoringExample], rng: random.Random) -> list[Sample]:
        """Each example's plain text (non-activating ones first, as delphi lists them before shuffling)."""
        ordered = [e for e in examples if not e.activating] + [e for e in examples if e.activating]
        return [Sample(text=e.text, activating=e.activating, quantile=e.quantile) for e in ordered]


__all__ = ["FEW_SHOT", "SYSTEM_PROMPT", "DetectionScorer"]

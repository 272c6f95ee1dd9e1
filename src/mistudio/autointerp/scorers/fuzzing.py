"""delphi's fuzzing scorer (`delphi/scorers/classifier/fuzz.py`, `sample.py`): the judge sees examples with some
tokens between << and >> and says whether every marked token fits the explanation. Activating examples mark the
tokens where the feature reaches 30 % of the example's maximum; non-activating examples (verified zero) mark
`ceil(mean number of active tokens per activating example)` random tokens, always including the token where an
activating example holds its maximum (`context - context // 4`), so its position gives nothing away. The prompt is
delphi's `prompts/fuzz_prompt.py`, word for word."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from mistudio.autointerp.scorers.classifier import ClassifierScorer, Sample
from mistudio.autointerp.scorers.examples import ScoringExample, display_token

LEFT, RIGHT = "<<", ">>"
THRESHOLD = 0.3
"""delphi's `threshold`: a token is marked when its activation reaches this fraction of the example's maximum."""

SYSTEM_PROMPT = """You are an intelligent and meticulous linguistics researcher.

You will be given a certain latent of text, such as "male pronouns" or "text with negative sentiment". You will be given a few examples of text that contain this latent. Portions of the sentence which strongly represent this latent are between tokens << and >>.

Some examples might be mislabeled. Your task is to determine if every single token within << and >> is correctly labeled. Consider that all provided examples could be correct, none of the examples could be correct, or a mix. An example is only correct if every marked token is representative of the latent

For each example in turn, return 1 if the sentence is correctly labeled or 0 if the tokens are mislabeled. You must return your response in a valid Python list. Do not return anything else besides a Python list.
"""

FEW_SHOT: tuple[tuple[str, str], ...] = (
    ("""Latent explanation: Words related to American football positions, specifically the tight end position.

Test examples:

Example 0:<|endoftext|>Getty ImagesĊĊPatriots<< tight end>> Rob Gronkowski had his bossâĢĻ
Example 1: posted<|endoftext|>You should know this<< about>> offensive line coaches: they are large, demanding<< men>>
Example 2: Media Day 2015ĊĊLSU<< defensive>> end Isaiah Washington (94) speaks<< to the>>
Example 3:<< running backs>>," he said. .. Defensive<< end>> Carroll Phillips is improving and his injury is
Example 4:<< line>>, with the left side âĢĶ namely<< tackle>> Byron Bell at<< tackle>> and<< guard>> Amini
""",
     '[1,0,0,1,1]'),
    ("""Latent explanation: The word "guys" in the phrase "you guys".

Test examples:

Example 0: if you are<< comfortable>> with it. You<< guys>> support me in many other ways already and
Example 1: birth control access<|endoftext|> but I assure you<< women>> in Kentucky aren't laughing as they struggle
Example 2:âĢĻs gig! I hope you guys<< LOVE>> her, and<< please>> be nice,
Example 3:American, told<< Hannity>> that âĢľyou<< guys>> are playing the race card.âĢĿ
Example 4:<< the>><|endoftext|>ľI want to<< remind>> you all that 10 days ago (director Massimil
""",
     '[0,0,0,0,0]'),
    ("""Latent explanation: "of" before words that start with a capital letter.

Test examples:

Example 0: climate, TomblinâĢĻs Chief<< of>> Staff Charlie Lorensen said.Ċ
Example 1: no wonderworking relics, no true Body and Blood<< of>> Christ, no true Baptism
Example 2:ĊĊDeborah Sathe, Head<< of>> Talent Development and Production at Film London,
Example 3:ĊĊIt has been devised by Director<< of>> Public Prosecutions (DPP)
Example 4: and fair investigation not even include the Director<< of>> Athletics? Â· Finally, we believe the
""",
     '[1,1,1,1,1]'),
)


def highlight(tokens: Sequence[str], marked: Callable[[int], bool]) -> str:
    """The tokens joined (as `display_token` shows them), each run of consecutive marked tokens wrapped in << >>
    (delphi's `_highlight`)."""
    out: list[str] = []
    inside = False
    for i, token in enumerate(tokens):
        mark = marked(i)
        if mark and not inside:
            out.append(LEFT)
        elif not mark and inside:
            out.append(RIGHT)
        inside = mark
        out.append(display_token(token))
    if inside:
        out.append(RIGHT)
    return "".join(out)


def activating_text(example: ScoringExample, threshold: float = THRESHOLD) -> str:
    """An activating example with the tokens at or above `threshold` × its maximum marked."""
    cut = threshold * example.max_value
    return highlight(example.tokens, lambda i: example.values[i] > 0 and example.values[i] >= cut)


def false_positive_positions(example: ScoringExample, n_marked: int, rng: random.Random,
                             threshold: float = THRESHOLD) -> set[int]:
    """`n_marked` positions at or below `threshold` × the example's maximum (all of them for a zero example):
    the position `len - len // 4` first when it qualifies, the rest drawn at random (delphi's `_prepare_text`)."""
    cut = threshold * example.max_value
    below = [i for i, v in enumerate(example.values) if v <= cut]
    n = min(n_marked, len(below))
    if n <= 0:
        return set()
    anchor = len(example.tokens) - len(example.tokens) // 4
    if anchor in below:
        rest = [i for i in below if i != anchor]
        return {anchor, *rng.sample(rest, n - 1)}
    return set(rng.sample(below, n))


def mean_active_tokens(examples: Sequence[ScoringExample]) -> int:
    """delphi's `mean_n_activations_ceil`: the ceiling of the mean number of active tokens per example."""
    if not examples:
        return 0
    return math.ceil(sum(sum(1 for v in e.values if v > 0) for e in examples) / len(examples))


class FuzzingScorer(ClassifierScorer):
    """Balanced accuracy of the judge telling correctly marked activating contexts from randomly marked
    non-activating ones, given the explanation."""

    name = "fuzzing"
    system_prompt = SYSTEM_PROMPT
    few_shot = FEW_SHOT

    def samples(self, examples: Sequence[ScoringExample], rng: random.Random) -> list[Sample]:
        """Non-activating examples with random marks (first, as delphi lists them), then activating ones marked
        where the feature fires."""
        activating = [e for e in examples if e.activating]
        n_marked = max(1, mean_active_tokens(activating))
        out = []
        for e in examples:
            if e.activating:
                continue
            if e.max_value > 0:  # a contrastive example: marked where it fires, as delphi does
                text = activating_text(e)
            else:
                marks = false_positive_positions(e, n_marked, rng)
                text = highlight(e.tokens, marks.__contains__)
            out.append(Sample(text=text, activating=False, quantile=e.quantile))
        out += [Sample(text=activating_text(e), activating=True, quantile=e.quantile) for e in activating]
        return out


__all__ = ["FEW_SHOT", "LEFT", "RIGHT", "SYSTEM_PROMPT", "FuzzingScorer", "activating_text",
           "false_positive_positions", "highlight", "mean_active_tokens"]

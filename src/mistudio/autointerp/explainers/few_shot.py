"""Few-shot examples of the explainer prompts, as data: Neuronpedia's fork of OpenAI's neuron-explainer
(`neuron_explainer/explanations/few_shot_examples.py` of hijohnnylin/automated-interpretability): `ORIGINAL`
(the set OpenAI's `TokenActivationPairExplainer` uses, identical to openai/automated-interpretability's
`ORIGINAL_EXAMPLES`) and `LOGITS` (the set of `MaxActivationAndLogitsExplainer`, Neuronpedia's `np_max-act-logits`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FewShotRecord:
    """One example text: its tokens and their raw activations."""

    tokens: tuple[str, ...]
    activations: tuple[float, ...]


@dataclass(frozen=True)
class FewShotExample:
    """A few-shot neuron: its texts, the explanation shown as the answer, and (LOGITS) its top logits."""

    records: tuple[FewShotRecord, ...]
    explanation: str
    top_positive_logits: tuple[str, ...] | None = None


ORIGINAL: tuple[FewShotExample, ...] = (
    FewShotExample(
        records=(
            FewShotRecord(
                tokens=(
                    "t", "urt", "ur", "ro", " is", " fab", "ulously", " funny", " and", " over", " the",
                    " top", " as", " a", " '", "very", " sneaky", "'", " but", "ler", " who", " excel",
                    "s", " in", " the", " art", " of", " impossible", " disappearing", "/", "re", "app",
                    "earing", " acts",
                ),
                activations=(
                    -0.71, -1.85, -2.39, -2.58, -1.34, -1.92, -1.69, -0.84, -1.25, -1.75, -1.42, -1.47,
                    -1.51, -0.8, -1.89, -1.56, -1.63, 0.44, -1.87, -2.55, -2.09, -1.76, -1.33, -0.88,
                    -1.63, -2.39, -2.63, -0.99, 2.83, -1.11, -1.19, -1.33, 4.24, -1.51,
                ),
            ),
            FewShotRecord(
                tokens=(
                    "esc", "aping", " the", " studio", " ,", " pic", "col", "i", " is", " warm", "ly",
                    " affecting", " and", " so", " is", " this", " ad", "roit", "ly", " minimalist",
                    " movie", " .",
                ),
                activations=(
                    -0.69, 4.12, 1.83, -2.28, -0.28, -0.79, -2.2, -2.03, -1.77, -1.71, -2.44, 1.6, -1.0,
                    -0.38, -1.93, -2.09, -1.63, -1.94, -1.82, -1.64, -1.32, -1.92,
                ),
            ),
        ),
        explanation="present tense verbs ending in 'ing'",
        top_positive_logits=(
            " calling", " sleeping", " laughing", " dancing", " singing", " frying", " grounding",
            " laying", " eating", " meeting",
        ),
    ),
    FewShotExample(
        records=(
            FewShotRecord(
                tokens=(
                    "as", " sac", "char", "ine", " movies", " go", " ,", " this", " is", " likely", " to",
                    " cause", " massive", " cardiac", " arrest", " if", " taken", " in", " large",
                    " doses", " .",
                ),
                activations=(
                    -0.14, -1.37, -0.68, -2.27, -1.46, -1.11, -0.9, -2.48, -2.07, -3.49, -2.16, -1.79,
                    -0.23, -0.04, 4.46, -1.02, -2.26, -2.95, -1.49, -1.46, -0.6,
                ),
            ),
            FewShotRecord(
                tokens=(
                    "shot", " perhaps", " '", "art", "istically", "'", " with", " handheld", " cameras",
                    " and", " apparently", " no", " movie", " lights", " by", " jo", "aquin", " b", "aca",
                    "-", "as", "ay", " ,", " the", " low", "-", "budget", " production", " swings",
                    " annoy", "ingly", " between", " vert", "igo", " and", " opacity", " .",
                ),
                activations=(
                    -0.09, -3.53, -0.72, -2.36, -1.05, -1.12, -2.49, -2.14, -1.98, -1.59, -2.62, -2.0,
                    -2.73, -2.87, -3.23, -1.11, -2.23, -0.97, -2.28, -2.37, -1.5, -2.81, -1.73, -3.14,
                    -2.61, -1.7, -3.08, -4.0, -0.71, -2.48, -1.39, -1.96, -1.09, 4.37, -0.74, -0.5, -0.62,
                ),
            ),
        ),
        explanation="words related to physical medical conditions",
        top_positive_logits=(
            " fainting", " bleed", " stroke", " hernia", " disease", " broken", " cast", " emergency",
            " sprain", " pain",
        ),
    ),
    FewShotExample(
        records=(
            FewShotRecord(
                tokens=(
                    "the", " sense", " of", " together", "ness", " in", " our", " town", " is", " strong",
                    " .",
                ),
                activations=(
                    0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.23, 0.5, 0.0, 0.0, 0.0,
                ),
            ),
            FewShotRecord(
                tokens=(
                    "a", " buoy", "ant", " romantic", " comedy", " about", " friendship", " ,", " love",
                    " ,", " and", " the", " truth", " that", " we", "'re", " all", " in", " this",
                    " together", " .",
                ),
                activations=(
                    -0.15, -2.33, -1.4, -2.17, -2.53, -0.85, 0.23, -1.89, 0.09, -0.47, -0.5, -0.58, -0.87,
                    0.22, 0.58, 1.34, 0.98, 2.21, 2.84, 1.7, -0.89,
                ),
            ),
        ),
        explanation="phrases related to community",
        top_positive_logits=(
            " community", " together", " love", " friendship", " friendly", " joint", " peace",
            " companion", " team", " sympathy",
        ),
    ),
)

LOGITS: tuple[FewShotExample, ...] = (
    FewShotExample(
        records=(
            FewShotRecord(
                tokens=(
                    "She", " was", " taking", " a", " nap", " when", " her", " phone", " started",
                    " ringing", ".",
                ),
                activations=(
                    8.0, 0.0, 0.0, 0.0, 7.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                ),
            ),
            FewShotRecord(
                tokens=(
                    "I", " enjoy", " watching", " movies", " with", " my", " family", ".",
                ),
                activations=(
                    0.0, 9.0, 0.0, 7.5, 0.0, 0.0, 0.0, 0.0,
                ),
            ),
        ),
        explanation="Method 1 fails: MAX_ACTIVATING_TOKENS (She, enjoy) are not similar tokens.\nMethod 2 succeeds: All TOKENS_AFTER_MAX_ACTIVATING_TOKEN have a pattern in common: they all start with \"w\".\nExplanation: say \"w\" words",
        top_positive_logits=(
            " walking", " WA", " waiting", " was", " we", " WHAM", " wish", " win", " wake", " whisper",
        ),
    ),
    FewShotExample(
        records=(
            FewShotRecord(
                tokens=(
                    "The", " apple", " and", " banana", " are", " delicious", " foods", " that",
                    " provide", " essential", " vitamins", " and", " nutrients", ".",
                ),
                activations=(
                    0.0, 20.0, 0.0, 30.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                ),
            ),
            FewShotRecord(
                tokens=(
                    "I", " enjoy", " eating", " fresh", " strawberries", ",", " blueberries", ",", " and",
                    " mangoes", " during", " the", " summer", " months", ".",
                ),
                activations=(
                    0.0, 0.0, 0.0, 0.0, 25.0, 0.0, 35.0, 0.0, 0.0, 15.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                ),
            ),
        ),
        explanation="Method 1 succeeds: All MAX_ACTIVATING_TOKENS (banana, blueberries) are fruits.\nExplanation: fruits",
        top_positive_logits=(
            " apple", " orange", " pineapple", " watermelon", " kiwi", " peach", " pear", " grape",
            " cherry", " plum",
        ),
    ),
    FewShotExample(
        records=(
            FewShotRecord(
                tokens=(
                    "It", " was", " a", " beautiful", " day", " outside", " with", " clear", " skies",
                    " and", " warm", " sunshine", ".",
                ),
                activations=(
                    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 8.0, 0.0, 0.0, 0.0,
                ),
            ),
            FewShotRecord(
                tokens=(
                    "And", " the", " garden", " has", " roses", " and", " tulips", " and", " daisies",
                    " and", " sunflowers", " blooming", " together", ".",
                ),
                activations=(
                    9.0, 0.0, 0.0, 0.0, 0.0, 6.0, 0.0, 5.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0,
                ),
            ),
        ),
        explanation="Method 1 succeeds: All MAX_ACTIVATING_TOKENS are the word \"and\".\nExplanation: and",
        top_positive_logits=(
            " elephant", " guitar", " mountain", " bicycle", " ocean", " telescope", " candle",
            " umbrella", " tornado", " butterfly",
        ),
    ),
    FewShotExample(
        records=(
            FewShotRecord(
                tokens=(
                    "the", " civil", " war", " was", " a", " major", " topic", " in", " history", " class",
                    " .",
                ),
                activations=(
                    0.0, 0.0, 15.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                ),
            ),
            FewShotRecord(
                tokens=(
                    " seasons", " of", " the", " year", " are", " winter", " ,", " spring", " ,",
                    " summer", " ,", " and", " fall", " or", " autumn", " in", " some", " places", " .",
                ),
                activations=(
                    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 10.0,
                    0.0, 0.0,
                ),
            ),
        ),
        explanation="Method 1 fails: MAX_ACTIVATING_TOKENS (war, some) are not all the same token.\nMethod 2 fails: TOKENS_AFTER_MAX_ACTIVATING_TOKEN (was, places) are not all similar tokens and don't have a text pattern in common.\nMethod 3 succeeds: All TOP_POSITIVE_LOGITS are the number 4.\nExplanation: 4",
        top_positive_logits=(
            " 4", " four", " fourth", " 4th", " IV", " Four", " FOUR", " ~4", " 4.0", " quartet",
        ),
    ),
)

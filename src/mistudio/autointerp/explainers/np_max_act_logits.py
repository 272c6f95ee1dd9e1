"""`np_max-act-logits`: Neuronpedia's concise explainer from max-activating tokens and top logits.

Reproduces `MaxActivationAndLogitsExplainer` of Neuronpedia's fork of OpenAI's neuron-explainer
(hijohnnylin/automated-interpretability, `neuron_explainer/explanations/explainer.py`, with the `LOGITS` few-shot
set of `few_shot_examples.py`), as `utils/neuronpedia-utils/neuronpedia_utils/batch-autointerp.py` of
hijohnnylin/neuronpedia calls it: four lists per neuron (the token after each text's max-activating token, the
max-activating tokens, the top positive logits, each text trimmed to 24 tokens either side of its maximum), the
model walks through "Method 1..4" and ends with "Explanation: ...". Parsing: the fork's `strip_explanation`
(common prefixes and suffixes), the text after the last "Explanation: ", then `_remove_method_from_explanation`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mistudio.autointerp.evidence import FeatureEvidence
from mistudio.autointerp.explainers.base import ExplainerSettings, Messages
from mistudio.autointerp.explainers.few_shot import LOGITS

METHOD = "np_max-act-logits"
PROMPT_VERSION = "np_max-act-logits/1 (hijohnnylin/automated-interpretability MaxActivationAndLogitsExplainer)"
TOKENS_AROUND_MAX = 24
SYSTEM_PROMPT = (
    "You are explaining the behavior of a neuron in a neural network. Your response should be a very concise "
    "explanation (1-6 words) that captures what the neuron detects or predicts by finding patterns in lists.\n\n"
    "To determine the explanation, you are given four lists:\n\n"
    "- MAX_ACTIVATING_TOKENS, which are the top activating tokens in the top activating texts.\n"
    "- TOKENS_AFTER_MAX_ACTIVATING_TOKEN, which are the tokens immediately after the max activating token.\n"
    "- TOP_POSITIVE_LOGITS, which are the most likely words or tokens associated with this neuron.\n"
    "- TOP_ACTIVATING_TEXTS, which are top activating texts.\n\n"
    "You should look for a pattern by trying the following methods in order. Once you find a pattern, stop and "
    "return that pattern. Do not proceed to the later methods.\n"
    "Method 1: Look at MAX_ACTIVATING_TOKENS. If they share something specific in common, or are all the same "
    "token or a variation of the same token (like different cases or conjugations), respond with that token.\n"
    "Method 2: Look at TOKENS_AFTER_MAX_ACTIVATING_TOKEN. Try to find a specific pattern or similarity in all the "
    "tokens. A common pattern is that they all start with the same letter. If you find a pattern (like 's word', "
    "'the ending -ing', 'number 8'), respond with 'say [the pattern]'. You can ignore uppercase/lowercase "
    "differences for this.\n"
    "Method 3: Look at TOP_POSITIVE_LOGITS for similarities and describe it very briefly (1-3 words).\n"
    "Method 4: Look at TOP_ACTIVATING_TEXTS and make a best guess by describing the broad theme or context, "
    "ignoring the max activating tokens.\n\n"
    "Rules:\n"
    "- Keep your explanation extremely concise (1-6 words, mostly 1-3 words).\n"
    '- Do not add unnecessary phrases like "words related to", "concepts related to", or "variations of the '
    'word".\n'
    '- Do not mention "tokens" or "patterns" in your explanation.\n'
    '- The explanation should be specific. For example, "unique words" is not a specific enough pattern, nor is '
    '"foreign words".\n'
    "- Remember to use the 'say [the pattern]' when using Method 2 above (pattern found in "
    "TOKENS_AFTER_MAX_ACTIVATING_TOKEN).\n"
    "- If you absolutely cannot make any guesses, return the first token in MAX_ACTIVATING_TOKENS.\n\n"
    "Respond by going through each method number until you find one that helps you find an explanation for what "
    "this neuron is detecting or predicting. If a method does not help you find an explanation, briefly explain "
    "why it does not, then go on to the next method. "
    "Finally, end your response with the method number you used, the reason for your explanation, and then the "
    "explanation."
)
PREFIXES_TO_REMOVE = (
    "References to ", "Associated with ", "Relates to ", "Relating to ", "Occurrences of ", "Mentions of ",
    "Related to ", "Words related to ", "Concepts related to ", "Variations of the word ", "Words indicating ",
    "Words ", "The word ", "The phrase ", "The tokens ", "This neuron detects", "This neuron predicts",
    "This neuron activates for",
)
SUFFIXES_TO_REMOVE = (
    " or related terms", " and related terms", " or its variations", " and its variations", " or related forms",
    " and related forms",
)
_METHOD_PATTERNS = (  # `_remove_method_from_explanation`, in its order
    r"\s*[–—-]?\s*\(\s*[Mm]ethod\s+\d+\s*\)\s*$",
    r"\s*\n\s*[Mm]ethod\s+\d+.*$",
    r"\.\s*[Mm]ethod\s+\d+.*$",
    r"\s*[–—-]\s*[Mm]ethod\s+\d+.*$",
    r"\s*\(\s*used\s+[Mm]ethod\s+\d+\s*\)\s*$",
    r"\s*\(\s*used\s+\d+\s*\)\s*$",
    r"\s*\(\s*\d+\s*\)\s*$",
    r"[Mm]ethod\s+\d+\s*$",
    r"[Mm]ethod:\s*\d+\s*$",
)

Record = tuple[Sequence[str], Sequence[float]]


def _max_index(values: Sequence[float]) -> int:
    return list(values).index(max(values))


def tokens_after_max(records: Sequence[Record]) -> str:
    out = []
    for tokens, values in records:
        i = _max_index(values)
        out.append(tokens[i + 1].replace("\n", "").strip() if i + 1 < len(tokens) else "")
    return "\n".join(out)


def max_activating_tokens(records: Sequence[Record]) -> str:
    return "\n".join(tokens[_max_index(values)].replace("\n", "").strip() for tokens, values in records)


def top_activating_texts(records: Sequence[Record], around: int = TOKENS_AROUND_MAX) -> str:
    out = []
    for tokens, values in records:
        i = _max_index(values)
        start, end = max(0, i - around), min(len(tokens), i + around + 1)
        out.append("".join(list(tokens[start:i]) + [tokens[i]] + list(tokens[i + 1:end])).replace("\n", "  "))
    return "\n".join(out)


def neuron_message(records: Sequence[Record], logits: Sequence[str] | None, index: int) -> str:
    """The user message of neuron `index` (0-based)."""
    logit_lines = "\n".join(logit.strip() for logit in logits) if logits else ""
    return (
        f"\n\nNeuron {index + 1}\n\n<TOKENS_AFTER_MAX_ACTIVATING_TOKEN>\n\n{tokens_after_max(records)}\n\n"
        f"</TOKENS_AFTER_MAX_ACTIVATING_TOKEN>\n\n\n<MAX_ACTIVATING_TOKENS>\n\n{max_activating_tokens(records)}\n\n"
        f"</MAX_ACTIVATING_TOKENS>\n\n\n<TOP_POSITIVE_LOGITS>\n\n{logit_lines}\n\n</TOP_POSITIVE_LOGITS>\n\n\n"
        f"<TOP_ACTIVATING_TEXTS>\n\n{top_activating_texts(records)}\n\n</TOP_ACTIVATING_TEXTS>\n\n"
        f"\nExplanation of neuron {index + 1} behavior: "
    )


def strip_explanation(text: str) -> str:
    """The fork's `NeuronExplainer.strip_explanation`: one common prefix and one suffix off, odd spaces, a final
    period."""
    for prefix in PREFIXES_TO_REMOVE:
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    for suffix in SUFFIXES_TO_REMOVE:
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    text = text.replace("\u202f", " ").replace("\u2003", "").replace("\u2002", "").strip()
    if text.endswith("."):
        text = text[:-1]
    return text.strip()


def remove_method(text: str) -> str:
    """The fork's `_remove_method_from_explanation`: "(Method 3)", "— Method 1", "Method: 3" … at the end."""
    for pattern in _METHOD_PATTERNS:
        text = re.sub(pattern, "", text).strip()
    return text.strip(".")


class MaxActivationAndLogitsExplainer:
    """Neuronpedia's explainer; see the module docstring."""

    method = METHOD
    prompt_version = PROMPT_VERSION
    summary = ("Neuronpedia's concise explainer (1-6 words): max-activating tokens, the tokens after them, top "
               "logits and the top texts")
    settings = ExplainerSettings(max_tokens=2000, temperature=1.0, n_examples=20, expected_completion_tokens=120)

    def build_messages(self, evidence: FeatureEvidence) -> Messages:
        messages: Messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        for i, example in enumerate(LOGITS):
            records: list[Record] = [(r.tokens, r.activations) for r in example.records]
            messages.append({"role": "user", "content": neuron_message(records, example.top_positive_logits, i)})
            messages.append({"role": "assistant", "content": example.explanation})
        records = [([t.replace("▁", " ") for t in ex.tokens], ex.values) for ex in evidence.top]
        logits = [logit.replace("▁", " ").replace("\n", "").strip() for logit in evidence.top_logits]
        messages.append({"role": "user", "content": neuron_message(records, logits, len(LOGITS))})
        return messages

    def parse(self, answer: str, evidence: FeatureEvidence) -> str:
        """The text after the last "Explanation: " (empty when there is none), cleaned as the fork cleans it."""
        text = strip_explanation(answer)
        if "Explanation: " in text:
            text = text.split("Explanation: ")[-1]
        elif "explanation: " in text:
            text = text.split("explanation: ")[-1]
        else:
            return ""
        return remove_method(text)

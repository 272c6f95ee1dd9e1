"""The feature document `features/{index}.json[.gz]` and the explanations document `explanations/explanations.json`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mistudio.export.prepare import ExplanationDoc, PreparedFeature, explanation_doc

_EXAMPLE_KEYS = ("tokens", "values", "max_value", "max_token_index", "qualifying_token_index", "bin_min", "bin_max",
                 "bin_contains", "source")


def feature_document(feat: PreparedFeature, *, include_top_tokens: bool,
                     include_token_ids: bool = False) -> dict[str, Any]:
    """The document of one feature (keys are sorted when written); token ids only when asked for
    (they are a third of a compressed document and no consumer needs them)."""
    keys = (*_EXAMPLE_KEYS, "token_ids") if include_token_ids else _EXAMPLE_KEYS
    doc: dict[str, Any] = {
        "feature_index": feat.index,
        "activations": [{k: ex.get(k, []) for k in keys} for ex in feat.examples],
        "logits": {"top_positive": feat.top_positive, "top_negative": feat.top_negative,
                   "histogram": feat.logits_histogram},
        "histogram": feat.histogram,
        "statistics": feat.statistics,
    }
    if include_top_tokens:
        doc["top_tokens"] = feat.top_tokens
    if feat.explanations:
        doc["explanations"] = [explanation_doc(e) for e in feat.explanations]
    return doc


def explanations_document(features: Iterable[tuple[int, list[ExplanationDoc]]]) -> dict[str, Any]:
    """`{"explanations": [{feature_index, explanations: [{description, method, model, score, source,
    prompt_version, scores: [{scorer, score, model, n_examples, details, created_at}], created_at}]}]}`."""
    return {"explanations": [
        {"feature_index": index, "explanations": [explanation_doc(e) for e in items]}
        for index, items in features if items
    ]}

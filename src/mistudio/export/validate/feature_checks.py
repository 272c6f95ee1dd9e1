"""Checks of a `features/{index}.json` document: a fast structural test of our own output, and the semantic
checks that go beyond its JSON Schema."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from mistudio.export.validate.report import ValidationIssue
from mistudio.export.validate.values import (
    MIN_EXAMPLES,
    check_example,
    is_number,
    token_issues,
    top_example_count,
)


def check_feature_document(doc: dict[str, Any], loc: str) -> list[ValidationIssue]:
    """Semantic checks of a feature document (beyond its JSON Schema)."""
    out: list[ValidationIssue] = []
    stats = doc.get("statistics") or {}
    examples = doc.get("activations") or []
    for key, value in stats.items():
        if is_number(value) and not math.isfinite(value):
            out.append(ValidationIssue("non_finite", f"{loc}: statistics.{key}", f"{key} is {value}", "replace it with 0.0",
                             fixable=True))
    if stats.get("dead") is False:
        if not examples:
            out.append(ValidationIssue("empty_array", f"{loc}: activations", "a live feature has no examples",
                             "re-run the extraction over more tokens"))
        elif (n_top := top_example_count(examples)) < MIN_EXAMPLES:
            out.append(ValidationIssue("too_few_examples", f"{loc}: activations",
                             f"{n_top} top examples; Neuronpedia expects at least {MIN_EXAMPLES} for a live feature",
                             "extract over more tokens, or accept a sparse dashboard", severity="warning"))
    for n, ex in enumerate(examples):
        out += check_example(ex, f"{loc}: activations[{n}]", keys=("tokens", "values", "max_value", "max_token_index"))
    for side in ("top_positive", "top_negative"):
        items = (doc.get("logits") or {}).get(side) or []
        out += token_issues([t.get("token") for t in items], f"{loc}: logits.{side}")
    return out


def _nums(values: Any) -> bool:
    return isinstance(values, list) and all(type(v) is float or type(v) is int for v in values)


def _ints(values: Any) -> bool:
    return isinstance(values, list) and all(type(v) is int for v in values)


def _opt(obj: dict[str, Any], key: str, ok: Callable[[Any], bool]) -> bool:
    return key not in obj or ok(obj[key])


def _hist_ok(h: Any) -> bool:
    return isinstance(h, dict) and _opt(h, "bin_edges", _nums) and _opt(h, "counts", _ints)


def _logits_ok(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(t, dict) and type(t["token"]) is str and is_number(t["value"])
                                           for t in items)


def _example_ok(ex: Any) -> bool:
    tokens, values = ex["tokens"], ex["values"]
    return (isinstance(tokens, list) and bool(tokens) and all(type(t) is str for t in tokens) and _nums(values)
            and bool(values) and is_number(ex["max_value"]) and type(ex["max_token_index"]) is int
            and ex["max_token_index"] >= 0 and _opt(ex, "token_ids", _ints)
            and _opt(ex, "qualifying_token_index", lambda v: type(v) is int and v >= 0)
            and all(_opt(ex, k, is_number) for k in ("bin_min", "bin_max", "bin_contains"))
            and _opt(ex, "source", lambda v: isinstance(v, dict)))


def feature_document_conforms(doc: Any) -> bool:
    """Fast path for `json_schemas/feature.schema.json`: True only when `doc` certainly satisfies it (our own output);
    False sends the document through the JSON Schema validator, which says exactly what is wrong."""
    try:
        stats, acts = doc["statistics"], doc["activations"]
        logits = doc.get("logits", {})
        return bool(
            type(doc["feature_index"]) is int and doc["feature_index"] >= 0 and isinstance(stats, dict)
            and type(stats["dead"]) is bool
            and all(is_number(stats[k]) for k in ("activation_frequency", "max_activation", "mean_activation",
                                                "std_activation"))
            and 0 <= stats["activation_frequency"] <= 1
            and _opt(stats, "quantiles", lambda q: isinstance(q, dict) and _nums(list(q.values())))
            and isinstance(acts, list) and (stats["dead"] or acts) and all(_example_ok(ex) for ex in acts)
            and isinstance(logits, dict) and _opt(logits, "top_positive", _logits_ok)
            and _opt(logits, "top_negative", _logits_ok) and _opt(logits, "histogram", _hist_ok)
            and _opt(doc, "histogram", _hist_ok)
            and _opt(doc, "top_tokens", lambda items: isinstance(items, list) and all(
                type(t["token"]) is str and is_number(t["total_activation"]) and type(t["count"]) is int
                for t in items)))
    except (KeyError, TypeError, AttributeError):
        return False

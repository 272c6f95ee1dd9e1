"""Checks of values shared by the export job and the validator: numbers, tokens, one example's invariants."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mistudio.export.archive.jsonio import BYTE_LEVEL_MARKERS
from mistudio.export.validate.report import ValidationIssue

MIN_EXAMPLES = 20


def is_number(v: Any) -> bool:
    """True for an int or float that is not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _tokens_clean(tokens: list[Any]) -> bool:
    """Fast path: every token is a str, encodes as UTF-8 and holds no raw BPE piece or NUL."""
    try:
        joined = "\x01".join(tokens)
        joined.encode("utf-8")
    except (TypeError, UnicodeEncodeError):
        return False
    return "\x00" not in joined and not any(m in joined for m in BYTE_LEVEL_MARKERS)


def as_floats(values: list[Any]) -> np.ndarray | None:
    """`values` as float64, or None when an item is not a number."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.ndim == 1 else None


def token_issues(tokens: list[Any], loc: str) -> list[ValidationIssue]:
    """Tokens that are not strings, not valid UTF-8, raw byte-level BPE pieces or hold NUL."""
    if _tokens_clean(tokens):
        return []
    out = []
    for t, tok in enumerate(tokens):
        if not isinstance(tok, str):
            out.append(ValidationIssue("wrong_type", f"{loc}[{t}]", f"token is {type(tok).__name__}, not a string",
                             "re-export; tokens must be strings", fixable=False))
            continue
        try:
            tok.encode("utf-8")
        except UnicodeEncodeError:
            out.append(ValidationIssue("lone_surrogate", f"{loc}[{t}]", f"token {tok!r} holds a lone surrogate (not valid UTF-8)",
                             "render the token as text (U+FFFD for incomplete bytes)", fixable=True))
            continue
        if any(m in tok for m in BYTE_LEVEL_MARKERS):
            out.append(ValidationIssue("raw_bpe_token", f"{loc}[{t}]", f"token {tok!r} is a raw byte-level BPE piece",
                             "render it as Neuronpedia does (Ġ→space, Ċ→newline)", fixable=True))
        if "\x00" in tok:
            out.append(ValidationIssue("nul_in_token", f"{loc}[{t}]", "token holds a NUL character",
                             "replace it (PostgreSQL text cannot hold NUL)", fixable=True))
    return out


def _values_issues(values: list[Any], loc: str) -> list[ValidationIssue]:
    arr = as_floats(values)
    if arr is not None and np.isfinite(arr).all():
        return []
    bad = [i for i, v in enumerate(values) if not is_number(v) or not math.isfinite(v)]
    if not bad:
        return []
    return [ValidationIssue("non_finite", f"{loc}[{bad[0]}]", f"{len(bad)} value(s) are NaN, Inf or not numbers",
                  "replace them with 0.0", fixable=True)]


def check_example(ex: dict[str, Any], loc: str, *, keys: tuple[str, str, str | None, str | None]) -> list[ValidationIssue]:
    """Checks of one example: `keys` = (tokens, values, max value key, max index key)."""
    tk, vk, mk, ik = keys
    tokens, values = ex.get(tk), ex.get(vk)
    if not isinstance(tokens, list) or not isinstance(values, list):
        return [ValidationIssue("missing_field", loc, f"example lacks a '{tk}' or '{vk}' list", "re-export the feature")]
    out = token_issues(tokens, f"{loc}.{tk}") + _values_issues(values, f"{loc}.{vk}")
    if not tokens or not values:
        out.append(ValidationIssue("empty_array", loc, "example has no tokens/values", "drop the example or re-export"))
        return out
    if len(tokens) != len(values):
        out.append(ValidationIssue("length_mismatch", loc, f"{len(tokens)} tokens but {len(values)} values",
                         "cut both to the shorter length", fixable=True))
    arr = as_floats(values)
    if arr is None:
        arr = np.array([v if is_number(v) else 0.0 for v in values], dtype=np.float64)
    finite = np.where(np.isfinite(arr), arr, 0.0)
    top = float(finite.max())
    for key in ("qualifying_token_index", "qualifyingTokenIndex", ik):
        lowest = -1 if key in ("qualifying_token_index", "qualifyingTokenIndex") else 0  # SAEDashboard: -1 = position 0
        if key and key in ex and ex[key] is not None and not (isinstance(ex[key], int)
                                                              and lowest <= ex[key] < len(values)):
            out.append(ValidationIssue("index_out_of_range", f"{loc}.{key}", f"{key}={ex[key]!r} is outside [0, {len(values)})",
                             "recompute it from the values", fixable=True))
    if ik and isinstance(ex.get(ik), int) and 0 <= ex[ik] < len(values) and float(finite[ex[ik]]) != top:
        out.append(ValidationIssue("max_mismatch", f"{loc}.{ik}", f"{ik} points at {finite[ex[ik]]}, but the maximum is {top}",
                         "recompute it from the values", fixable=True))
    if mk and (not is_number(ex.get(mk)) or abs(float(ex[mk]) - top) > 1e-6 * max(1.0, abs(top))):
        out.append(ValidationIssue("max_mismatch", f"{loc}.{mk}", f"{mk}={ex.get(mk)!r} but max(values)={top}",
                         "recompute it from the values", fixable=True))
    return out


def top_example_count(examples: Sequence[Mapping[str, Any]]) -> int:
    """Examples in the top group (`bin_min` -1 or absent); interval-group examples do not count."""
    return sum(1 for ex in examples if ex.get("bin_min", -1) == -1)

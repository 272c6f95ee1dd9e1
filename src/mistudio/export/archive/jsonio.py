"""Deterministic serialisation: fixed float rounding, compact JSON, gzip without timestamps, token rendering."""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import orjson

from mistudio.lm.tokens import byte_decoder

NP_DECIMALS = 5  # SAEDashboard's round_list
BYTE_LEVEL_MARKERS = ("\u0120", "\u010a", "\u0109")  # Ġ Ċ ĉ


def round_list(values: Sequence[float], decimals: int = NP_DECIMALS) -> list[float]:
    """Floats rounded to `decimals` places (NaN/Inf become 0.0), as Python floats."""
    arr = np.round(np.asarray(values, dtype=np.float64), decimals)
    if not np.isfinite(arr).all():
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    return arr.tolist()


def round_float(value: float | None, decimals: int = NP_DECIMALS) -> float:
    """One float rounded to `decimals` places (NaN/Inf/None → 0.0)."""
    if value is None or not math.isfinite(value):
        return 0.0
    return round(float(value), decimals)


def sig_float(value: float | None, digits: int = 6) -> float:
    """A float kept to `digits` significant digits (NaN/Inf/None → 0.0)."""
    if value is None or not math.isfinite(value):
        return 0.0
    return float(f"{float(value):.{digits}g}")


def dumps(obj: Any, *, sort_keys: bool = True, indent: bool = False) -> bytes:
    """Compact UTF-8 JSON (orjson: shortest round-trip floats, so output is deterministic); `indent` gives
    2-space indentation. Callers pass finite floats only (the preparation step rounds and cleans every number)."""
    option = (orjson.OPT_SORT_KEYS if sort_keys else 0) | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(obj, option=option | orjson.OPT_SERIALIZE_NUMPY)


def jsonl(rows: Iterable[dict[str, Any]]) -> bytes:
    """One JSON object per line (keys in their given order, as Neuronpedia's tools write them)."""
    return b"".join(dumps(row, sort_keys=False) + b"\n" for row in rows)


GZIP_LEVEL = 5  # measured (docs/export.md): the archive-size target needs 5; 6 costs twice the CPU of 5 for 2 % less


def gzip_bytes(data: bytes, level: int = GZIP_LEVEL) -> bytes:
    """gzip with mtime 0 and no file name, so equal input gives equal bytes."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def render_token(piece: str) -> str:
    """A token as Neuronpedia shows it: byte-level BPE pieces decoded (`Ġ`→space, `Ċ`→newline), incomplete
    UTF-8 shown as U+FFFD, lone surrogates replaced; other strings returned unchanged."""
    if any(m in piece for m in BYTE_LEVEL_MARKERS):
        table = byte_decoder()
        if all(ch in table for ch in piece):
            piece = bytes(table[ch] for ch in piece).decode("utf-8", errors="replace")
    return clean_text(piece)


def clean_text(text: str) -> str:
    """`text` with lone surrogates and NUL replaced (they cannot be stored as UTF-8 / in PostgreSQL)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", errors="surrogatepass").decode("utf-8", errors="replace")
        text = "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)
    return text.replace("\x00", "\ufffd")


def render_tokens(tokens: Sequence[str]) -> list[str]:
    """`render_token` over a sequence, with a fast path when nothing needs changing."""
    joined = "\x01".join(tokens)
    if "\x00" not in joined and not any(m in joined for m in BYTE_LEVEL_MARKERS):
        try:
            joined.encode("utf-8")
            return list(tokens)
        except UnicodeEncodeError:
            pass
    return [render_token(t) for t in tokens]

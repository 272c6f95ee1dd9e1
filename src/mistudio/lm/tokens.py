"""Token id → display string for a whole vocabulary, computed once per tokenizer.

* byte-level BPE pieces (GPT-2, Llama-3, Qwen, gpt-oss): the piece's characters are mapped back to bytes (`Ġ` → space,
  `Ċ` → newline) and decoded as UTF-8; bytes that are not valid UTF-8 on their own (one token holding part of a
  multi-byte character) become U+FFFD, so every string is valid text;
* SentencePiece pieces (Llama-2, Gemma 1-3): `▁` → space and byte-fallback pieces `<0xNN>` → that byte;
* special and added tokens (BOS/EOS/PAD, `<|endoftext|>`) are shown as themselves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, printable character → byte (the inverse of `bytes_to_unicode`)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def _is_byte_level(pieces: Sequence[str | None]) -> bool:
    sample = [p for p in pieces[:5000] if p]
    return any(p.startswith("Ġ") for p in sample) and not any("▁" in p for p in sample)


def _render_byte_level(piece: str, table: dict[str, int]) -> str:
    if all(ch in table for ch in piece):
        return bytes(table[ch] for ch in piece).decode("utf-8", errors="replace")
    return piece


def _render_sentencepiece(piece: str) -> str:
    match = _BYTE_PIECE.match(piece)
    if match:
        return bytes([int(match.group(1), 16)]).decode("utf-8", errors="replace")
    return piece.replace("▁", " ")


def vocab_strings(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The display string of every token id `0 .. len(tokenizer) - 1`."""
    size = len(tokenizer)
    converted = tokenizer.convert_ids_to_tokens(list(range(size)))
    pieces: list[str | None] = [converted] if isinstance(converted, str) else list(converted)
    special = set(special_token_ids(tokenizer))
    byte_level = _is_byte_level(pieces)
    table = byte_decoder()
    out: list[str] = []
    for i, piece in enumerate(pieces):
        if piece is None:
            out.append("")
        elif i in special:
            out.append(piece)
        elif byte_level:
            out.append(_render_byte_level(piece, table))
        else:
            out.append(_render_sentencepiece(piece))
    return out


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids never chosen as an example's max token: BOS, EOS, PAD and the tokenizer's other special tokens
    (added tokens flagged special included, e.g. Gemma 3's `<start_of_image>`, Qwen's `<|im_start|>`)."""
    ids = set(tokenizer.all_special_ids) | {
        i for i, tok in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(tok, "special", False)
    }
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            ids.add(int(value))
    return sorted(ids)

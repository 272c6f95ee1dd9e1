"""Tokenise a text source into fixed windows of `context_size` tokens with exact provenance.

Documents are tokenised without special tokens and concatenated, each followed by the EOS token (as SAELens
does). The stream is cut into bodies of `context_size - 1` tokens when a BOS is prepended (`prepend_bos`), else
`context_size`. Every window records the document index and the token offset (inside that document) of its first
body token, so each example can be traced back. Windows whose token ids are identical are kept once. With
`shuffle`, the window order is permuted with `seed` (from a pool of at most `pool_factor` × the windows asked for).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from mistudio.datasets.sources import TextSource
from mistudio.errors import InvalidInputError

_DOC_BATCH = 256


@dataclass
class Windows:
    """`tokens [n, context_size]` (int64) with `document [n]` and `offset [n]` provenance."""

    tokens: torch.Tensor
    document: torch.Tensor
    offset: torch.Tensor
    dataset: str
    prepend_bos: bool
    bos_token_id: int | None

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def context_size(self) -> int:
        """Tokens per window (BOS included)."""
        return int(self.tokens.shape[1])


def n_windows_for(n_tokens: int | None, n_prompts: int | None, context_size: int) -> int:
    """How many windows `n_prompts` or `n_tokens` (rounded up to whole windows) asks for."""
    if n_prompts is not None:
        return int(n_prompts)
    if n_tokens is None:
        raise InvalidInputError("give n_tokens or n_prompts")
    return math.ceil(int(n_tokens) / context_size)


def tokenize_windows(source: TextSource, tokenizer: PreTrainedTokenizerBase, *, context_size: int,
                     n_windows: int, prepend_bos: bool = True, shuffle: bool = True, seed: int = 0,
                     pool_factor: int = 4) -> Windows:
    """Build up to `n_windows` distinct windows of `context_size` tokens from `source`."""
    if context_size < 2 or n_windows < 1:
        raise InvalidInputError("context_size must be ≥ 2 and the number of windows ≥ 1")
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if prepend_bos and bos is None:
        raise InvalidInputError("the tokenizer has no BOS or EOS token to prepend; set prepend_bos=False")
    sep = tokenizer.eos_token_id
    body = context_size - (1 if prepend_bos else 0)
    wanted = n_windows * (pool_factor if shuffle else 1)
    ids, docs, offs = _token_stream(source, tokenizer, sep, (wanted + 1) * body)
    n_full = len(ids) // body
    if n_full == 0:
        raise InvalidInputError(f"dataset {source.reference!r} has fewer than {body} tokens; nothing to extract")
    starts = np.arange(n_full) * body
    bodies = ids[: n_full * body].reshape(n_full, body)
    if prepend_bos:
        bodies = np.concatenate([np.full((n_full, 1), bos, dtype=np.int64), bodies], axis=1)
    keep = _first_occurrences(bodies)
    bodies, starts = bodies[keep], starts[keep]
    order = np.random.default_rng(seed).permutation(len(bodies)) if shuffle else np.arange(len(bodies))
    order = order[:n_windows]
    return Windows(tokens=torch.from_numpy(bodies[order].copy()),
                   document=torch.from_numpy(docs[starts[order]].copy()),
                   offset=torch.from_numpy(offs[starts[order]].copy()),
                   dataset=source.reference, prepend_bos=prepend_bos, bos_token_id=bos)


def _token_stream(source: TextSource, tokenizer: PreTrainedTokenizerBase, sep: int | None,
                  limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenated token ids with each position's document index and offset, stopping after `limit`."""
    ids: list[np.ndarray] = []
    docs: list[np.ndarray] = []
    offs: list[np.ndarray] = []
    total = 0
    batch: list[tuple[int, str]] = []

    def flush() -> None:
        nonlocal total
        encoded = tokenizer([t for _, t in batch], add_special_tokens=False)["input_ids"]
        for (doc, _), toks in zip(batch, encoded, strict=True):
            arr = np.asarray(list(toks) + ([sep] if sep is not None else []), dtype=np.int64)
            ids.append(arr)
            docs.append(np.full(len(arr), doc, dtype=np.int64))
            offs.append(np.arange(len(arr), dtype=np.int64))
            total += len(arr)
        batch.clear()

    for doc, text in source.iter_docs():
        batch.append((doc, text))
        if len(batch) >= _DOC_BATCH:
            flush()
            if total >= limit:
                break
    if batch:
        flush()
    if not ids:
        raise InvalidInputError(f"dataset {source.reference!r} holds no text")
    return np.concatenate(ids), np.concatenate(docs), np.concatenate(offs)


def _first_occurrences(rows: np.ndarray) -> np.ndarray:
    """Indices of the rows whose exact token ids were not seen earlier (hash of the row bytes)."""
    seen: set[bytes] = set()
    keep = []
    for i, row in enumerate(rows):
        digest = hashlib.blake2b(row.tobytes(), digest_size=16).digest()
        if digest not in seen:
            seen.add(digest)
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)

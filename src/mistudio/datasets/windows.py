"""Tokenise a text source into fixed windows of `context_size` tokens with exact provenance, the way SAELens's
activation store builds its training sequences (`sae_lens.tokenization_and_batching.concat_and_batch_sequences`).

Documents are tokenised without special tokens. By default (SAELens's default) they are concatenated: a window
starts with BOS when `prepend_bos` (unless its first token already is BOS), and inside a window consecutive
documents are separated by `separator` (SAELens's `sequence_separator_token`: "bos" by default, "eos", "sep",
a token id, or None for no separator; not repeated when the next document already starts with it). A document
that does not fit continues in the next window, which starts with BOS again. With `concat_sequences=False`
(SAELens's `disable_concat_sequences`) each document gives at most one window, its first `context_size` tokens
(BOS first), and shorter documents are skipped. Every window records the document index and the token offset
(inside that document) of its first text token, so each example can be traced back. Windows whose token ids are
identical are kept once. With `shuffle`, the window order is permuted with `seed` (from a pool of at most
`pool_factor` × the windows asked for).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from mistudio.datasets.sources import TextSource
from mistudio.errors import InvalidInputError

SeparatorSpec = int | str | None
SEPARATOR_NAMES = ("bos", "eos", "sep")
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
    separator_token_id: int | None = None
    concat_sequences: bool = True

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


def bos_token_id(tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The token a window starts with: BOS, else EOS (GPT-2 style tokenizers), else None."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def text_tokens(text: str, tokenizer: PreTrainedTokenizerBase, *, prepend_bos: bool = True) -> list[int]:
    """One text's token ids as a window holds them: tokenised without special tokens, BOS first when
    `prepend_bos` (unless the text already starts with it).

    Raises:
        InvalidInputError: `prepend_bos` and the tokenizer has neither BOS nor EOS.
    """
    ids = [int(t) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]
    if not prepend_bos:
        return ids
    bos = bos_token_id(tokenizer)
    if bos is None:
        raise InvalidInputError("the tokenizer has no BOS or EOS token to prepend; set prepend_bos=False")
    return ids if ids and ids[0] == bos else [bos, *ids]


def resolve_separator(separator: SeparatorSpec, tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The token id SAELens's `sequence_separator_token` names ("bos", "eos", "sep", an id, or None).

    Raises:
        InvalidInputError: `separator` is none of those.
    """
    if separator is None or isinstance(separator, int) and not isinstance(separator, bool):
        return separator
    if separator == "bos":
        return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if separator == "eos":
        return tokenizer.eos_token_id
    if separator == "sep":
        return tokenizer.sep_token_id
    raise InvalidInputError(f"sequence separator {separator!r} is not a token id or one of "
                            f"{', '.join(SEPARATOR_NAMES)} (or None for no separator)")


def tokenize_windows(source: TextSource, tokenizer: PreTrainedTokenizerBase, *, context_size: int,
                     n_windows: int, prepend_bos: bool = True, shuffle: bool = True, seed: int = 0,
                     pool_factor: int = 4, separator: SeparatorSpec = "bos",
                     concat_sequences: bool = True) -> Windows:
    """Build up to `n_windows` distinct windows of `context_size` tokens from `source`.

    Raises:
        InvalidInputError: bad sizes, no BOS to prepend, an unknown separator, or too little text.
    """
    if context_size < 2 or n_windows < 1:
        raise InvalidInputError("context_size must be ≥ 2 and the number of windows ≥ 1")
    bos = bos_token_id(tokenizer)
    if prepend_bos and bos is None:
        raise InvalidInputError("the tokenizer has no BOS or EOS token to prepend; set prepend_bos=False")
    sep = resolve_separator(separator, tokenizer)
    wanted = n_windows * (pool_factor if shuffle else 1)
    rows, docs, offs = [], [], []
    for row, doc, off in _sequences(_documents(source, tokenizer), context_size, bos if prepend_bos else None,
                                    sep, concat_sequences):
        rows.append(row)
        docs.append(doc)
        offs.append(off)
        if len(rows) >= wanted:
            break
    if not rows:
        raise InvalidInputError(f"dataset {source.reference!r} has fewer than {context_size} tokens in "
                                f"{'all' if concat_sequences else 'any one of'} its documents; nothing to extract")
    bodies = np.stack(rows)
    keep = _first_occurrences(bodies)
    bodies, document, offset = bodies[keep], np.asarray(docs)[keep], np.asarray(offs)[keep]
    order = np.random.default_rng(seed).permutation(len(bodies)) if shuffle else np.arange(len(bodies))
    order = order[:n_windows]
    return Windows(tokens=torch.from_numpy(bodies[order].copy()),
                   document=torch.from_numpy(document[order].astype(np.int64)),
                   offset=torch.from_numpy(offset[order].astype(np.int64)),
                   dataset=source.reference, prepend_bos=prepend_bos, bos_token_id=bos,
                   separator_token_id=sep, concat_sequences=concat_sequences)


def _documents(source: TextSource, tokenizer: PreTrainedTokenizerBase) -> Iterator[tuple[int, np.ndarray]]:
    """(document index, token ids without special tokens) of every document, tokenised in batches.

    Raises:
        InvalidInputError: the source holds no text.
    """
    batch: list[tuple[int, str]] = []
    seen = False

    def flush() -> Iterator[tuple[int, np.ndarray]]:
        encoded = tokenizer([t for _, t in batch], add_special_tokens=False)["input_ids"]
        for (doc, _), toks in zip(batch, encoded, strict=True):
            yield doc, np.asarray(list(toks), dtype=np.int64)
        batch.clear()

    for doc, text in source.iter_docs():
        seen = True
        batch.append((doc, text))
        if len(batch) >= _DOC_BATCH:
            yield from flush()
    if batch:
        yield from flush()
    if not seen:
        raise InvalidInputError(f"dataset {source.reference!r} holds no text")


def _sequences(documents: Iterator[tuple[int, np.ndarray]], context_size: int, bos: int | None,
               sep: int | None, concat: bool) -> Iterator[tuple[np.ndarray, int, int]]:
    """(window tokens, document, offset of its first text token), as SAELens's `concat_and_batch_sequences`
    with `begin_batch_token_id=bos`, `sequence_separator_token_id=sep`, `disable_concat_sequences=not concat`."""
    if not concat:
        for doc, toks in documents:
            seq = toks
            if bos is not None and len(seq) >= context_size - 1 and seq[0] != bos:
                seq = np.concatenate([np.asarray([bos], dtype=np.int64), seq[:context_size - 1]])
            if len(seq) >= context_size:
                yield seq[:context_size], doc, 0
        return
    pieces: list[np.ndarray] | None = None
    length, source = 0, (0, 0)
    for doc, toks in documents:
        offset, total = 0, len(toks)
        while total - offset > 0:
            first = toks[offset]
            if pieces is None:
                prefix = [bos] if bos is not None and first != bos else []
                take = context_size - len(prefix)
                pieces = [np.asarray(prefix, dtype=np.int64), toks[offset:offset + take]]
                source = (doc, offset)
            else:
                prefix = [sep] if sep is not None and first != sep else []
                take = max(context_size - length - len(prefix), 0)
                pieces += [np.asarray(prefix[:max(context_size - length, 0)], dtype=np.int64),
                           toks[offset:offset + take]]
            offset += take
            length = sum(len(p) for p in pieces)
            if length == context_size:
                yield np.concatenate(pieces), source[0], source[1]
                pieces, length = None, 0


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

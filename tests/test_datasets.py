"""Text sources and token windows: every format, provenance back to the document, dedup, BOS, seeds."""

from __future__ import annotations

import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mistudio.datasets.sources import BUILTIN_CORPUS, load_texts
from mistudio.datasets.windows import n_windows_for, tokenize_windows
from mistudio.errors import InvalidInputError, NotFoundError
from mistudio.testing.tiny_models import build_tokenizer, default_corpus

DOCS = [f"Document number {i}. " + " ".join(default_corpus(6, seed=i)) for i in range(30)]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(vocab_size=400)


def _docs(reference, **kw) -> list[str]:
    return [t for _, t in load_texts(reference, **kw).iter_docs()]


def test_every_format_yields_the_same_documents(tmp_path):
    (tmp_path / "a.txt").write_text("\n\n".join(DOCS))
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"body": d}) for d in DOCS))
    pq.write_table(pa.table({"text": DOCS}), tmp_path / "a.parquet")
    datasets.Dataset.from_dict({"text": DOCS}).save_to_disk(str(tmp_path / "hf"))
    assert _docs(tmp_path / "a.txt") == DOCS
    assert _docs(tmp_path / "a.jsonl", text_field="body") == DOCS
    assert _docs(tmp_path / "a.parquet") == DOCS
    assert _docs(tmp_path / "hf") == DOCS
    assert _docs(tmp_path / "a.txt", txt_mode="file") == ["\n\n".join(DOCS)]
    with pytest.raises(InvalidInputError, match="text_field"):
        _docs(tmp_path / "a.jsonl")
    with pytest.raises(NotFoundError):
        load_texts(tmp_path / "missing.txt")


def test_builtin_corpus_is_shipped():
    docs = _docs(BUILTIN_CORPUS)
    assert len(docs) > 50 and sum(len(d) for d in docs) > 50_000


def test_windows_trace_back_to_their_document(tokenizer, tmp_path):
    (tmp_path / "a.txt").write_text("\n\n".join(DOCS))
    w = tokenize_windows(load_texts(tmp_path / "a.txt"), tokenizer, context_size=16, n_windows=40,
                         prepend_bos=True, shuffle=True, seed=1)
    assert w.tokens.shape == (40, 16) and (w.tokens[:, 0] == tokenizer.bos_token_id).all()
    for row, doc, off in zip(w.tokens, w.document, w.offset, strict=True):
        separator = tokenizer.bos_token_id  # SAELens's default sequence separator
        doc_ids = tokenizer(DOCS[int(doc)], add_special_tokens=False)["input_ids"] + [separator]
        body = row[1:].tolist()
        n = min(len(body), len(doc_ids) - int(off))
        assert body[:n] == doc_ids[int(off):int(off) + n]
    again = tokenize_windows(load_texts(tmp_path / "a.txt"), tokenizer, context_size=16, n_windows=40, seed=1)
    assert (again.tokens == w.tokens).all()
    other = tokenize_windows(load_texts(tmp_path / "a.txt"), tokenizer, context_size=16, n_windows=40, seed=2)
    assert not (other.tokens == w.tokens).all()


def test_no_bos_and_duplicates_removed(tokenizer, tmp_path):
    (tmp_path / "rep.txt").write_text("\n\n".join(["the cat sat on the mat"] * 200))
    w = tokenize_windows(load_texts(tmp_path / "rep.txt"), tokenizer, context_size=8, n_windows=500,
                         prepend_bos=False, shuffle=False)
    rows = {tuple(r) for r in w.tokens.tolist()}
    assert len(rows) == len(w) < 20  # the repeated text has only a few distinct windows
    assert n_windows_for(1000, None, 128) == 8 and n_windows_for(None, 5, 128) == 5


@pytest.mark.parametrize("concat", [True, False])
@pytest.mark.parametrize("separator", ["bos", "eos", None])
def test_windows_follow_sae_lens_activation_store(tmp_path, separator, concat):
    """The windows are SAELens's own token sequences (`concat_and_batch_sequences`, as its activation store calls
    it), duplicates dropped, for each `sequence_separator_token` and `disable_concat_sequences`."""
    torch = pytest.importorskip("torch")
    from sae_lens.tokenization_and_batching import concat_and_batch_sequences

    tok = build_tokenizer(vocab_size=400, style="llama")  # BOS <s> ≠ EOS </s>
    docs = [" ".join(default_corpus(1 + i % 4, seed=i)) for i in range(60)]
    (tmp_path / "a.txt").write_text("\n\n".join(docs))
    w = tokenize_windows(load_texts(tmp_path / "a.txt"), tok, context_size=16, n_windows=10_000, shuffle=False,
                         separator=separator, concat_sequences=concat)
    sep_id = {"bos": tok.bos_token_id, "eos": tok.eos_token_id, None: None}[separator]
    assert w.separator_token_id == sep_id and w.concat_sequences == concat
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in docs]
    reference = concat_and_batch_sequences(iter(torch.tensor(i) for i in ids), 16,
                                           begin_batch_token_id=tok.bos_token_id,
                                           sequence_separator_token_id=sep_id, disable_concat_sequences=not concat)
    distinct = list(dict.fromkeys(tuple(r.tolist()) for r in reference))
    assert w.tokens.tolist() == [list(r) for r in distinct]
    for row, doc, off in zip(w.tokens.tolist(), w.document.tolist(), w.offset.tolist(), strict=True):
        assert row[0] == tok.bos_token_id and row[1] == ids[doc][off]  # provenance of the first text token
    if concat and separator == "bos":  # SAELens's default: documents joined by BOS, never by EOS
        assert tok.eos_token_id not in w.tokens and (w.tokens[:, 1:] == tok.bos_token_id).any()

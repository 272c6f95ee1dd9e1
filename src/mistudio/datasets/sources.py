"""Text sources: local .txt / .jsonl / .parquet files or folders, HF `save_to_disk` folders, HF dataset ids.

A source yields documents in a fixed order. Document numbering (what a window's provenance refers to):
* `.txt` file: each blank-line-separated paragraph is one document (`txt_mode="paragraph"`, the default),
  or the whole file is one document (`txt_mode="file"`);
* `.jsonl`: one document per line (the `text_field` value);
* `.parquet` / HF folder / HF id: one document per row (the `text_field` column).
A folder of files is read in sorted path order and numbered continuously.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from mistudio.errors import InvalidInputError, NotFoundError

BUILTIN_CORPUS = "builtin:corpus"
_FILE_SUFFIXES = (".txt", ".jsonl", ".parquet")


@dataclass
class TextSource:
    """A named stream of documents; `iter_docs()` yields `(document_index, text)` in a fixed order."""

    reference: str
    text_field: str = "text"
    txt_mode: str = "paragraph"
    split: str = "train"
    files: list[Path] = field(default_factory=list)
    hf_folder: Path | None = None
    hf_id: str | None = None

    def iter_docs(self) -> Iterator[tuple[int, str]]:
        """Yield (document index, text) for every non-empty document."""
        index = 0
        for text in self._iter_texts():
            if text and text.strip():
                yield index, text
                index += 1

    def _iter_texts(self) -> Iterator[str]:
        if self.hf_folder is not None:
            yield from _iter_hf_folder(self.hf_folder, self.split, self.text_field)
            return
        if self.hf_id is not None:
            yield from _iter_hf_id(self.hf_id, self.split, self.text_field)
            return
        for path in self.files:
            yield from _iter_file(path, self.text_field, self.txt_mode)


def builtin_corpus_dir() -> Path:
    """The folder of the public-domain corpus shipped with miStudio."""
    return Path(str(resources.files("mistudio") / "data" / "corpus"))


def load_texts(reference: str | Path, *, text_field: str = "text", txt_mode: str = "paragraph",
               split: str = "train") -> TextSource:
    """Resolve `reference` (a path, `builtin:corpus`, or an HF dataset id) into a TextSource."""
    if txt_mode not in ("paragraph", "file"):
        raise InvalidInputError(f"txt_mode must be 'paragraph' or 'file', not {txt_mode!r}")
    ref = str(reference)
    source = partial(TextSource, reference=ref, text_field=text_field, txt_mode=txt_mode, split=split)
    path = builtin_corpus_dir() if ref == BUILTIN_CORPUS else Path(ref).expanduser()
    if path.is_file():
        _check_suffix(path)
        return source(files=[path])
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            return source(hf_folder=path)
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _FILE_SUFFIXES)
        if not files:
            raise InvalidInputError(f"{path} holds no .txt, .jsonl or .parquet files and is not a `save_to_disk` folder")
        return source(files=files)
    if ref.startswith(("/", ".", "~")) or ref.endswith(_FILE_SUFFIXES):
        raise NotFoundError(f"dataset {ref!r} not found: no such file or folder")
    return source(hf_id=ref)


def _check_suffix(path: Path) -> None:
    if path.suffix not in _FILE_SUFFIXES:
        raise InvalidInputError(f"unsupported dataset file {path.name}; use .txt, .jsonl or .parquet")


def _iter_file(path: Path, text_field: str, txt_mode: str) -> Iterator[str]:
    if path.suffix == ".txt":
        text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
        if txt_mode == "file":
            yield text
        else:
            yield from (p.strip() for p in text.split("\n\n"))
    elif path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    yield _field(json.loads(line), text_field, f"{path.name} line {n}")
    else:
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path)
        if text_field not in table.schema_arrow.names:
            raise InvalidInputError(f"{path.name} has no column {text_field!r} (columns: {table.schema_arrow.names})")
        for batch in table.iter_batches(columns=[text_field]):
            yield from (str(v) for v in batch.column(0).to_pylist() if v is not None)


def _field(row: dict[str, Any], text_field: str, where: str) -> str:
    if text_field not in row:
        raise InvalidInputError(f"{where} has no field {text_field!r} (fields: {sorted(row)}); set text_field")
    return str(row[text_field])


def _iter_hf_folder(path: Path, split: str, text_field: str) -> Iterator[str]:
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise InvalidInputError(f"{path} has no split {split!r} (splits: {list(ds)})")
        ds = ds[split]
    if text_field not in ds.column_names:
        raise InvalidInputError(f"{path} has no column {text_field!r} (columns: {ds.column_names})")
    for row in ds.select_columns([text_field]):
        yield str(row[text_field])


def _iter_hf_id(dataset_id: str, split: str, text_field: str) -> Iterator[str]:
    import datasets

    try:
        ds = datasets.load_dataset(dataset_id, split=split, streaming=True)
    except Exception as exc:  # noqa: BLE001 - any hub/network failure becomes one actionable message
        raise NotFoundError(f"could not open dataset {dataset_id!r} from the HuggingFace Hub "
                            f"(offline, unknown id or private): {exc}") from exc
    for row in ds:
        yield _field(row, text_field, f"dataset {dataset_id}")

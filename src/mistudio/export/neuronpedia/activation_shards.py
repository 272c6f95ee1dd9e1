"""Bulk-import `activations/batch-{p}.jsonl.gz` ordered by prompt window instead of by feature.

With the usual settings every prompt window is a top example of many features (16,384 features × 20 examples over
24,576 windows: about 13 each), and every copy carries the same 128 token strings. Neuronpedia's importer reads
each row on its own (the order of rows and files does not matter to it), so rows are written grouped by window:
the repeated token lists then sit next to each other and deflate stores each window's text about once.

How, with bounded memory and crash resume: each feature batch `k` spills its rows, sorted by
(window, feature, example), into one file holding a zlib segment per output shard (shard `p` covers an equal
range of window indices); once every batch is done, shard `p` is a streaming merge of its segments from all
batches into `activations/batch-{p}.jsonl.gz`. Rows whose window is unknown stay in their feature batch's shard.
"""

from __future__ import annotations

import gzip
import heapq
import os
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from mistudio.export.archive.jsonio import GZIP_LEVEL, dumps
from mistudio.export.layout import bulk_batch_file
from mistudio.export.workers import pool_context
from mistudio.fsutil import atomic_write_bytes

_UNKNOWN_WINDOW = 10**18 - 1
_KEY_WIDTH = 18 + 12 + 6  # window, feature index, example ordinal: fixed-width digits sort as the tuple does
_SPILL_LEVEL = 1
_READ_CHUNK = 1 << 16
_WRITE_CHUNK = 1 << 20

# (shard, byte offset, byte length) of one zlib segment in a batch's spill file
Segment = tuple[int, int, int]


def shard_of(window: int | None, *, batch: int, n_shards: int, n_windows: int) -> int:
    """The output shard of a row: an equal slice of the window range, or the feature batch's own shard."""
    if window is None or n_windows <= 0:
        return min(batch, n_shards - 1)
    return min(n_shards - 1, max(0, window * n_shards // n_windows))


def _window(row: dict[str, Any]) -> int | None:
    data_index = row.get("dataIndex")
    return int(data_index) if isinstance(data_index, str) and data_index.isdigit() else None


def spill_rows(path: Path, rows: list[tuple[int, dict[str, Any]]], *, batch: int, n_shards: int,
               n_windows: int) -> list[Segment]:
    """Write one batch's `(example ordinal, activation row)` pairs to `path` (atomically), one sorted zlib segment
    per shard; returns the segments."""
    by_shard: dict[int, list[bytes]] = {}
    for ordinal, row in rows:
        window = _window(row)
        key = b"%018d%012d%06d" % (_UNKNOWN_WINDOW if window is None else window, row["index"], ordinal)
        shard = shard_of(window, batch=batch, n_shards=n_shards, n_windows=n_windows)
        by_shard.setdefault(shard, []).append(key + dumps(row, sort_keys=False) + b"\n")
    segments: list[Segment] = []
    blobs, offset = [], 0
    for shard in sorted(by_shard):
        blob = zlib.compress(b"".join(sorted(by_shard[shard])), _SPILL_LEVEL)
        segments.append((shard, offset, len(blob)))
        blobs.append(blob)
        offset += len(blob)
    atomic_write_bytes(path, b"".join(blobs))
    return segments


def _segment_lines(path: Path, offset: int, length: int) -> Iterator[bytes]:
    """The lines of one spilled segment. The compressed bytes are read at once (no file stays open while a
    merge runs over hundreds of segments) and inflated a chunk at a time."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(length)
    if len(data) != length:
        raise OSError(f"{path} is truncated; delete the export's work folder and export again")
    inflate, pending = zlib.decompressobj(), b""
    for start in range(0, length, _READ_CHUNK):
        lines = (pending + inflate.decompress(data[start:start + _READ_CHUNK])).split(b"\n")
        pending = lines.pop()
        yield from lines
    lines = (pending + inflate.flush()).split(b"\n")
    yield from (line for line in lines if line)


def merge_shard(out_path: Path, parts: list[tuple[Path, int, int]], level: int = GZIP_LEVEL) -> int:
    """Merge one shard's segments (each sorted) into the gzip JSONL file `out_path`, written atomically; returns
    the number of rows. Memory: the shard's compressed segments plus an inflated chunk of each."""
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    n_rows, buffer, size = 0, [], 0
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=level,
                                               mtime=0) as gz:
        for line in heapq.merge(*(_segment_lines(*part) for part in parts)):
            buffer.append(line[_KEY_WIDTH:])
            buffer.append(b"\n")
            size += len(line)
            n_rows += 1
            if size >= _WRITE_CHUNK:
                gz.write(b"".join(buffer))
                buffer, size = [], 0
        gz.write(b"".join(buffer))
    os.replace(tmp, out_path)
    return n_rows


def merge_all(folder: Path, spills: dict[int, tuple[Path, list[Segment]]], *, workers: int = 1,
              on_shard: Callable[[int, int], None] | None = None,
              check_cancelled: Callable[[], None] = lambda: None) -> None:
    """Write `folder/batch-{p}.jsonl.gz` for every shard with rows, from the spills of all feature batches
    (`{batch: (spill path, segments)}`); `on_shard(done, total)` after each file. Shards already written (by an
    earlier, interrupted run) are kept."""
    parts: dict[int, list[tuple[Path, int, int]]] = {}
    for k in sorted(spills):
        path, segments = spills[k]
        for shard, offset, length in segments:
            parts.setdefault(shard, []).append((path, offset, length))
    todo = [p for p in sorted(parts) if not (folder / bulk_batch_file(p)).exists()]
    if todo:
        folder.mkdir(parents=True, exist_ok=True)
    report = on_shard or (lambda done, total: None)
    if workers <= 1 or len(todo) < 2:
        for n, p in enumerate(todo, 1):
            check_cancelled()
            merge_shard(folder / bulk_batch_file(p), parts[p])
            report(n, len(todo))
        return
    with ProcessPoolExecutor(workers, mp_context=pool_context()) as pool:
        futures = [(p, pool.submit(merge_shard, folder / bulk_batch_file(p), parts[p])) for p in todo]
        try:
            for n, (_, fut) in enumerate(futures, 1):
                check_cancelled()
                fut.result()
                report(n, len(todo))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise

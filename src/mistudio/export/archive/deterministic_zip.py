"""A byte-for-byte deterministic zip of a staged folder plus pre-packed members."""

from __future__ import annotations

import os
import shutil
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mistudio.export.archive.checksums import staged_files
from mistudio.export.archive.jsonio import GZIP_LEVEL
from mistudio.export.archive.packs import PackedEntry
from mistudio.export.workers import pool_context

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_STORED_SUFFIXES = (".gz", ".safetensors", ".zip")
_CHUNK = 1 << 20
ZIP_LEVEL = GZIP_LEVEL


def _deflate_file(path: Path, level: int) -> tuple[int, int, bytes]:
    """(CRC-32, size, raw deflate stream) of a file — what a zip entry holds; runs in worker processes."""
    data = path.read_bytes()
    comp = zlib.compressobj(level, zlib.DEFLATED, -15)
    return zlib.crc32(data), len(data), comp.compress(data) + comp.flush()


def _entry(rel: str, compress_type: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(rel, date_time=_ZIP_TIME)
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    info.compress_type = compress_type
    return info


def _write_raw(zf: zipfile.ZipFile, info: zipfile.ZipInfo, crc: int, size: int, data: bytes) -> None:
    """Append an entry whose bytes (a deflate stream, or the content for a stored entry) were made elsewhere
    (CPython's zipfile has no public raw write; this does what `ZipFile.open(..., "w")` does on a seekable
    file, through the same attributes). `zf` is open for writing a new archive (mode "w" or "x"), so
    `close()` writes the central directory of every entry in `filelist`.

    Raises:
        ValueError: `zf` is closed, or was not opened with mode "w" or "x".
    """
    fp = zf.fp
    if fp is None or zf.mode not in ("w", "x"):
        raise ValueError("raw entries go into a zip file open for writing a new archive (mode 'w' or 'x')")
    info.CRC, info.file_size, info.compress_size = crc, size, len(data)
    info.header_offset = fp.tell()
    fp.write(info.FileHeader(size > zipfile.ZIP64_LIMIT or len(data) > zipfile.ZIP64_LIMIT))
    fp.write(data)
    zf.start_dir = fp.tell()
    zf.filelist.append(info)
    zf.NameToInfo[info.filename] = info


def zip_folder(root: Path, out_zip: Path, *, level: int = ZIP_LEVEL, workers: int = 1,
               progress: Callable[[float], None] | None = None, packed: Sequence[PackedEntry] = ()) -> Path:
    """Zip `root` and the `packed` members into `out_zip` deterministically (sorted entries, fixed times and
    modes); already-compressed files are stored, the others deflated by `workers` processes. Written to a
    temporary name and renamed, so a partial zip is never visible."""
    by_name = {entry.name: entry for entry in packed}
    staged = staged_files(root)
    if clash := set(staged) & set(by_name):
        raise ValueError(f"archive members both staged and packed: {sorted(clash)[:3]}")
    files = sorted([*staged, *by_name])
    sizes = {rel: by_name[rel].length if rel in by_name else (root / rel).stat().st_size for rel in files}
    total = sum(sizes.values()) or 1
    deflated = [rel for rel in staged if not rel.endswith(_STORED_SUFFIXES)]
    tmp = out_zip.with_name(f".{out_zip.name}.tmp")
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    pool = ProcessPoolExecutor(workers, mp_context=pool_context()) if workers > 1 and deflated else None
    try:
        streams: Iterator[tuple[int, int, bytes]] = (
            pool.map(_deflate_file, [root / rel for rel in deflated], [level] * len(deflated)) if pool
            else (_deflate_file(root / rel, level) for rel in deflated))
        done = 0
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
            for rel in files:
                if rel in by_name:
                    entry = by_name[rel]
                    method = zipfile.ZIP_DEFLATED if entry.deflated else zipfile.ZIP_STORED
                    _write_raw(zf, _entry(rel, method), entry.crc, entry.size, entry.payload())
                elif rel.endswith(_STORED_SUFFIXES):
                    info = _entry(rel, zipfile.ZIP_STORED)
                    with open(root / rel, "rb") as fin, zf.open(info, "w", force_zip64=sizes[rel] > 2**31) as fout:
                        shutil.copyfileobj(fin, fout, _CHUNK)
                else:
                    _write_raw(zf, _entry(rel, zipfile.ZIP_DEFLATED), *next(streams))
                done += sizes[rel]
                if progress is not None:
                    progress(done / total)
        os.replace(tmp, out_zip)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return out_zip

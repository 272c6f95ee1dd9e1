"""Packaging: SHA256SUMS over a staged folder and a byte-for-byte deterministic zip of it."""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

from mistudio.fsutil import atomic_write_text

SUMS_FILE = "SHA256SUMS"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_STORED_SUFFIXES = (".gz", ".safetensors", ".zip")
_CHUNK = 1 << 20


def staged_files(root: Path) -> list[str]:
    """Relative POSIX paths of every file under `root` (hidden entries skipped), sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith("."):
                out.append((Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(out)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_sha256sums(root: Path) -> Path:
    """Write `SHA256SUMS` (`sha256sum -c` format) for every file under `root` except itself."""
    lines = [f"{sha256_file(root / rel)}  {rel}\n" for rel in staged_files(root) if rel != SUMS_FILE]
    path = root / SUMS_FILE
    atomic_write_text(path, "".join(lines))
    return path


def parse_sha256sums(text: str) -> dict[str, str]:
    """`SHA256SUMS` text → {relative path: hex digest}."""
    out = {}
    for line in text.splitlines():
        if line.strip():
            digest, _, rel = line.partition("  ")
            out[rel.strip()] = digest.strip()
    return out


def zip_folder(root: Path, out_zip: Path, *, level: int = 6,
               progress: Callable[[float], None] | None = None) -> Path:
    """Zip `root` into `out_zip` deterministically (sorted entries, fixed times and modes); already-compressed
    files are stored. Written to a temporary name and renamed, so a partial zip is never visible."""
    files = staged_files(root)
    total = sum((root / rel).stat().st_size for rel in files) or 1
    done = 0
    tmp = out_zip.with_name(f".{out_zip.name}.tmp")
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
            for rel in files:
                info = zipfile.ZipInfo(rel, date_time=_ZIP_TIME)
                info.create_system = 3
                info.external_attr = 0o100644 << 16
                stored = rel.endswith(_STORED_SUFFIXES)
                info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
                if not stored:  # the attribute is `_compresslevel` before Python 3.13
                    setattr(info, "compress_level" if hasattr(info, "compress_level") else "_compresslevel", level)
                src = root / rel
                with open(src, "rb") as fin, zf.open(info, "w", force_zip64=src.stat().st_size > 2**31) as fout:
                    shutil.copyfileobj(fin, fout, _CHUNK)
                done += src.stat().st_size
                if progress is not None:
                    progress(done / total)
        os.replace(tmp, out_zip)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_zip

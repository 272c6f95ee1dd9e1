"""`SHA256SUMS` over a staged folder and pre-packed members, in `sha256sum -c` format."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from mistudio.export.archive.packs import PackedEntry
from mistudio.export.layout import SHA256SUMS
from mistudio.fsutil import atomic_write_text

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


def write_sha256sums(root: Path, packed: Sequence[PackedEntry] = ()) -> Path:
    """Write `SHA256SUMS` (`sha256sum -c` format) for every file under `root` except itself, and for the
    `packed` archive members."""
    digests = {rel: sha256_file(root / rel) for rel in staged_files(root) if rel != SHA256SUMS}
    digests.update((entry.name, entry.sha256) for entry in packed)
    lines = [f"{digests[rel]}  {rel}\n" for rel in sorted(digests)]
    path = root / SHA256SUMS
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

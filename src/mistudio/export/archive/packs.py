"""Zip entries prepared ahead of packaging, kept many to a file.

An export has one `features/{i}.json[.gz]` per feature; creating tens of thousands of small files costs about a
millisecond each on common file systems (more than compressing them). A batch's entries are therefore written
into one pack file, already in their final zip form (gzip files stored, plain JSON as a raw deflate stream),
with their CRC-32 and SHA-256, and `deterministic_zip.zip_folder` copies them into the archive next to the
staged files.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

from mistudio.fsutil import atomic_write_bytes


@dataclass(frozen=True)
class PackedEntry:
    """One archive member whose bytes wait in a pack file."""

    name: str  # path inside the archive
    pack: str  # pack file path
    offset: int
    length: int  # bytes in the pack (the zip entry's compressed size)
    crc: int  # CRC-32 of the member's content
    size: int  # the member's content size
    deflated: bool  # the pack holds a raw deflate stream (else the content itself, stored)
    sha256: str  # of the member's content

    def payload(self) -> bytes:
        """The bytes the zip entry holds."""
        with open(self.pack, "rb") as fh:
            fh.seek(self.offset)
            return fh.read(self.length)

    def to_list(self) -> list[object]:
        """A JSON-friendly form (batch results are stored as JSON for crash resume)."""
        return [self.name, self.pack, self.offset, self.length, self.crc, self.size, self.deflated, self.sha256]

    @classmethod
    def from_list(cls, items: list[object]) -> PackedEntry:
        """Inverse of `to_list`."""
        return cls(*items)  # type: ignore[arg-type]


class PackWriter:
    """Collects members, then writes them into one pack file atomically."""

    def __init__(self, path: Path, level: int) -> None:
        self.path, self.level = Path(path), level
        self._blobs: list[bytes] = []
        self._entries: list[PackedEntry] = []
        self._offset = 0

    def add(self, name: str, content: bytes, *, deflate: bool) -> None:
        """Add a member; `deflate` for content that is not compressed already."""
        if deflate:
            comp = zlib.compressobj(self.level, zlib.DEFLATED, -15)
            blob = comp.compress(content) + comp.flush()
        else:
            blob = content
        self._entries.append(PackedEntry(name, str(self.path), self._offset, len(blob), zlib.crc32(content),
                                         len(content), deflate, hashlib.sha256(content).hexdigest()))
        self._blobs.append(blob)
        self._offset += len(blob)

    def close(self) -> list[PackedEntry]:
        """Write the pack; returns its entries."""
        atomic_write_bytes(self.path, b"".join(self._blobs))
        return self._entries

"""Read small things from files on the Hub without downloading them: whole small files, safetensors
headers, and `.npz` tensor shapes through HTTP range reads; `RemoteFiles` offers them as the `FileAccess` the
SAE format inspectors use (`mistudio.saes.formats.access`)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from huggingface_hub.errors import SafetensorsParsingError
from huggingface_hub.utils import get_session, hf_raise_for_status

from mistudio.errors import CorruptFileError
from mistudio.hub.client import HubConnection
from mistudio.saes.formats.access import parse_yaml
from mistudio.saes.formats.base import TensorInfo, npz_arrays

_SAFETENSORS_DTYPES = {
    "F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
    "I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2), "I8": ("int8", 1), "U8": ("uint8", 1),
    "BOOL": ("bool", 1), "F8_E4M3": ("float8_e4m3fn", 1), "F8_E5M2": ("float8_e5m2", 1),
}
BLOCK_SIZE = 4 * 1024


@dataclass(frozen=True)
class TensorHeader:
    """A tensor's dtype (torch-style name), shape and bytes, read from a file header."""

    dtype: str
    shape: tuple[int, ...]
    itemsize: int

    @property
    def numel(self) -> int:
        n = 1
        for dim in self.shape:
            n *= dim
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize


def _get(conn: HubConnection, url: str, byte_range: str | None = None) -> bytes:
    headers = conn.headers()
    if byte_range:
        headers["Range"] = byte_range
    response = get_session().get(url, headers=headers)
    hf_raise_for_status(response)
    return response.content


def fetch_file(conn: HubConnection, repo_id: str, filename: str, commit: str) -> bytes:
    """The whole content of a (small) file."""
    return _get(conn, conn.file_url(repo_id, filename, commit))


def fetch_json(conn: HubConnection, repo_id: str, filename: str, commit: str) -> dict[str, Any]:
    """A small JSON file, parsed; CorruptFileError if it is not a JSON object."""
    try:
        payload = json.loads(fetch_file(conn, repo_id, filename, commit))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{repo_id}/{filename} is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise CorruptFileError(f"{repo_id}/{filename} does not hold a JSON object")
    return payload


def safetensors_headers(conn: HubConnection, repo_id: str, filename: str, commit: str) -> dict[str, TensorHeader]:
    """Tensor dtypes and shapes from a safetensors header (a range read of the first bytes)."""
    try:
        meta = conn.api.parse_safetensors_file_metadata(repo_id, filename, revision=commit)
    except SafetensorsParsingError as exc:
        raise CorruptFileError(f"{repo_id}/{filename} has no readable safetensors header: {exc}") from exc
    out = {}
    for name, info in meta.tensors.items():
        dtype, itemsize = _SAFETENSORS_DTYPES.get(info.dtype, (info.dtype.lower(), 4))
        out[name] = TensorHeader(dtype, tuple(info.shape), itemsize)
    return out


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file that fetches aligned blocks with HTTP Range requests."""

    def __init__(self, conn: HubConnection, url: str, size: int, block_size: int = BLOCK_SIZE) -> None:
        super().__init__()
        self._conn, self._url, self._size, self._block = conn, url, size, block_size
        self._pos = 0
        self._blocks: dict[int, bytes] = {}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(base + offset, 0)
        return self._pos

    def _block_at(self, index: int) -> bytes:
        if index not in self._blocks:
            start = index * self._block
            end = min(start + self._block, self._size) - 1
            self._blocks[index] = _get(self._conn, self._url, f"bytes={start}-{end}")
        return self._blocks[index]

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._size - self._pos)
        got = 0
        while got < want:
            index, offset = divmod(self._pos, self._block)
            chunk = self._block_at(index)[offset:offset + want - got]
            if not chunk:
                break
            buffer[got:got + len(chunk)] = chunk
            got += len(chunk)
            self._pos += len(chunk)
        return got


def npz_headers(conn: HubConnection, repo_id: str, filename: str, commit: str, size: int) -> dict[str, TensorHeader]:
    """Tensor dtypes and shapes of an `.npz`, read from its zip directory and `.npy` headers only."""
    remote = RangeFile(conn, conn.file_url(repo_id, filename, commit), size)
    arrays = npz_arrays(remote, label=f"{repo_id}/{filename}")
    return {name: TensorHeader(dtype.name, shape, dtype.itemsize) for name, (shape, dtype) in arrays.items()}


class RemoteFiles:
    """`FileAccess` over one Hub repo at one commit: JSON/YAML fetched whole, tensor headers by range reads,
    pickles not readable (their shapes are known after download)."""

    def __init__(self, conn: HubConnection, repo_id: str, commit: str, sizes: dict[str, int]) -> None:
        self.conn, self.repo_id, self.commit, self.sizes = conn, repo_id, commit, sizes

    @property
    def where(self) -> str:
        return self.repo_id

    def exists(self, path: str) -> bool:
        return path in self.sizes

    def size(self, path: str) -> int:
        return self.sizes[path]

    def read_json(self, path: str) -> dict[str, Any]:
        return fetch_json(self.conn, self.repo_id, path, self.commit)

    def read_yaml(self, path: str) -> dict[str, Any]:
        return parse_yaml(fetch_file(self.conn, self.repo_id, path, self.commit), f"{self.repo_id}/{path}")

    def safetensors_header(self, path: str) -> dict[str, TensorInfo]:
        return {name: TensorInfo(h.shape, h.dtype)
                for name, h in safetensors_headers(self.conn, self.repo_id, path, self.commit).items()}

    def npz_header(self, path: str) -> dict[str, TensorInfo]:
        return {name: TensorInfo(h.shape, h.dtype)
                for name, h in npz_headers(self.conn, self.repo_id, path, self.commit, self.sizes[path]).items()}

    def pickle_header(self, path: str) -> dict[str, TensorInfo] | None:
        return None

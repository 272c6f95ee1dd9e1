"""Shared pieces of the format readers: the `DetectedSAE` record, header-only tensor inspection, safe file reads."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors import safe_open

from mistudio.errors import CorruptFileError
from mistudio.saes.model import SAEConfig

# safetensors dtype codes → our dtype names
_ST_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}
_MAX_HEADER = 100 * 1024 * 1024
# what reading a damaged .npz raises: zip structure, bad .npy headers, flipped compression/encryption flags
_NPZ_ERRORS = (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError, RuntimeError, zlib.error)


class SeekableByteReader(Protocol):
    """A readable, seekable binary file (what `zipfile` needs to read an archive)."""

    def read(self, n: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def tell(self) -> int: ...


@dataclass
class TensorInfo:
    """Name-independent facts about one stored tensor, read from a file header."""

    shape: tuple[int, ...]
    dtype: str


@dataclass
class DetectedSAE:
    """What a reader found in a folder, without loading any weights.

    `root` is the folder holding the SAE's files and `files` their names relative to it; `location` is empty when
    the SAE is the whole folder, else the file or file stem inside `root` that is this SAE (several SAEs can
    share one folder: `layer3.sae.pt`, `layer_3.safetensors`, a cross-layer transcoder's layer `3`)."""

    format: str
    root: Path
    files: list[str]
    config: SAEConfig
    config_preview: dict[str, Any] = field(default_factory=dict)
    location: str = ""
    source_config: dict[str, Any] | None = None

    @property
    def path(self) -> Path:
        """`root`, or `root/location` for an SAE that is one file (or stem) of its folder."""
        return self.root / self.location if self.location else self.root

    @property
    def d_in(self) -> int:
        """Input width."""
        return self.config.d_in

    @property
    def d_sae(self) -> int:
        """Number of features."""
        return self.config.d_sae

    @property
    def architecture(self) -> str:
        """One of `mistudio.saes.model.ARCHITECTURES`."""
        return self.config.architecture

    @property
    def dtype(self) -> str:
        """The dtype the SAE runs in (`float32`, `bfloat16`, ...)."""
        return self.config.dtype

    @property
    def layer(self) -> int | None:
        """The model layer the SAE reads, when known."""
        return self.config.hook_layer

    @property
    def hook_name(self) -> str | None:
        """TransformerLens hook name, when known."""
        return self.config.hook_name

    @property
    def model_name(self) -> str | None:
        """Model the SAE was trained on, when known."""
        return self.config.model_name

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (paths as strings)."""
        return {
            "format": self.format,
            "root": str(self.root),
            "location": self.location,
            "files": list(self.files),
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "architecture": self.architecture,
            "dtype": self.dtype,
            "layer": self.layer,
            "hook_name": self.hook_name,
            "model_name": self.model_name,
            "is_transcoder": self.config.is_transcoder,
            "d_out": self.config.d_out,
            "hook_name_out": self.config.hook_name_out,
            "config_preview": self.config_preview,
        }


def read_json(path: Path) -> dict[str, Any]:
    """Parse a small JSON file, turning parse errors into `CorruptFileError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"{path} is not valid JSON ({exc}); re-download or re-export it") from exc
    if not isinstance(data, dict):
        raise CorruptFileError(f"{path} should hold a JSON object; re-download or re-export it")
    return data


def _safetensors_layout(path: Path) -> tuple[dict[str, Any], int]:
    """(raw header, bytes the data section needs) of a safetensors file, reading only its header."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                raise CorruptFileError(f"{path} is too short to be a safetensors file; re-download it")
            (length,) = struct.unpack("<Q", raw)
            if length > _MAX_HEADER:
                raise CorruptFileError(
                    f"{path} has an implausible header size; it is not a valid safetensors file"
                )
            header = json.loads(fh.read(length))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CorruptFileError(f"{path} has an unreadable safetensors header; re-download it") from exc
    if not isinstance(header, dict):
        raise CorruptFileError(f"{path} has an invalid safetensors header (not a JSON object); re-download it")
    header.pop("__metadata__", None)
    for name, entry in header.items():
        if not _valid_tensor_entry(entry):
            raise CorruptFileError(
                f"{path} has an invalid safetensors header entry for {name!r:.80} (needs dtype, a shape of "
                "non-negative integers and two data offsets); re-download it"
            )
    end = max((int(v["data_offsets"][1]) for v in header.values()), default=0)
    return header, 8 + length + end


def _valid_tensor_entry(entry: Any) -> bool:
    """A header entry `{"dtype": str, "shape": [int >= 0, ...], "data_offsets": [begin, end]}`."""
    if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str):
        return False
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        return False
    return (isinstance(offsets, list) and len(offsets) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets) and 0 <= offsets[0] <= offsets[1])


def safetensors_expected_size(path: Path) -> int:
    """The size in bytes a complete safetensors file has, from its header alone (compare with the file's size)."""
    return _safetensors_layout(path)[1]


def safetensors_header(path: Path) -> dict[str, TensorInfo]:
    """Tensor name → shape/dtype from a safetensors header (the data is not read)."""
    header, _ = _safetensors_layout(path)
    return {
        name: TensorInfo(tuple(int(d) for d in v["shape"]), _ST_DTYPES.get(v["dtype"], v["dtype"].lower()))
        for name, v in header.items()
    }


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, after checking the file is complete."""
    _, needed = _safetensors_layout(path)
    size = path.stat().st_size
    if size < needed:
        raise CorruptFileError(
            f"{path} is truncated ({size} of {needed} bytes); the download was probably interrupted — "
            "delete it and download again"
        )
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            return {name: fh.get_tensor(name) for name in fh.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types
        raise CorruptFileError(f"{path} could not be read ({exc}); re-download it") from exc


def npz_arrays(source: Path | SeekableByteReader,
               label: str | None = None) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Array name → (shape, dtype) of an `.npz` archive (a path or a seekable file), reading only each member's
    `.npy` header — the hub browser passes a range-reading remote file."""
    out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    try:
        with zipfile.ZipFile(source) as zf:
            for member in zf.namelist():
                if not member.endswith(".npy"):
                    continue
                with zf.open(member) as fh:
                    version = np.lib.format.read_magic(fh)
                    reader = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = reader(fh)
                out[member[: -len(".npy")]] = (tuple(int(d) for d in shape), np.dtype(dtype))
    except _NPZ_ERRORS as exc:
        raise CorruptFileError(f"{label or source} is not a readable .npz archive ({exc}); re-download it") from exc
    return out


def npz_header(path: Path) -> dict[str, TensorInfo]:
    """Array name → shape/dtype of an `.npz` archive, reading only each member's `.npy` header."""
    return {name: TensorInfo(shape, str(dtype)) for name, (shape, dtype) in npz_arrays(path).items()}


def load_npz(path: Path) -> dict[str, torch.Tensor]:
    """Every array of an `.npz` archive as float32 torch tensors."""
    try:
        with np.load(path) as data:
            return {key: torch.from_numpy(np.asarray(data[key], dtype=np.float32)) for key in data.files}
    except _NPZ_ERRORS as exc:
        raise CorruptFileError(
            f"{path} is truncated or unreadable ({exc}); delete it and download again"
        ) from exc


def require(tensors: dict[str, Any], names: list[str], path: Path) -> None:
    """Raise `CorruptFileError` naming `path` when any of `names` is absent."""
    missing = [n for n in names if n not in tensors]
    if missing:
        raise CorruptFileError(
            f"{path} lacks tensor(s) {', '.join(missing)} (has {', '.join(sorted(tensors))}); "
            "it is not a complete SAE file"
        )

"""The small file-access protocol a format inspector needs, so each format is inspected by ONE function, whether
its files are in a local folder (`LocalFiles`) or in a Hub repo (`mistudio.hub.remote_files.RemoteFiles`).

An inspector asks for: whether a file exists and its size, a small JSON or YAML file, the tensor header of a
safetensors or `.npz` file, and (local only) the tensor shapes of a pickled `.pt` state dict.  Paths are
relative POSIX paths inside the access's root (a folder, or the repo root).
"""

from __future__ import annotations

import pickle
import posixpath
import zipfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import yaml

from mistudio.errors import CorruptFileError, InvalidInputError
from mistudio.saes.formats.base import TensorInfo, npz_header, read_json, safetensors_header
from mistudio.saes.model import SAE as SAEModule
from mistudio.saes.model import SAEConfig, dtype_from_str, dtype_to_str


class FileAccess(Protocol):
    """Read-only access to the files of one folder or repo, enough to inspect an SAE without its weights."""

    @property
    def where(self) -> str:
        """Where the files are (a local path or `repo_id`): repo names are parsed from it when no hint says."""
        ...

    def exists(self, path: str) -> bool:
        """True when `path` is a file here."""
        ...

    def size(self, path: str) -> int:
        """Size of `path` in bytes."""
        ...

    def read_json(self, path: str) -> dict[str, Any]:
        """A small JSON object file; `CorruptFileError` if it is not one."""
        ...

    def read_yaml(self, path: str) -> dict[str, Any]:
        """A small YAML mapping file; `CorruptFileError` if it is not one."""
        ...

    def safetensors_header(self, path: str) -> dict[str, TensorInfo]:
        """Tensor name → shape/dtype of a safetensors file, from its header only."""
        ...

    def npz_header(self, path: str) -> dict[str, TensorInfo]:
        """Array name → shape/dtype of an `.npz` archive, from its member headers only."""
        ...

    def pickle_header(self, path: str) -> dict[str, TensorInfo] | None:
        """Tensor name → shape/dtype of a pickled state dict, or None when that needs a download (remote)."""
        ...


def parse_yaml(text: str | bytes, label: str) -> dict[str, Any]:
    """A YAML mapping from `text`; `CorruptFileError` naming `label` otherwise."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CorruptFileError(f"{label} is not valid YAML ({exc}); re-download it") from exc
    if not isinstance(data, dict):
        raise CorruptFileError(f"{label} should hold a YAML mapping; re-download it")
    return data


def load_torch_state(path: Path, *, mmap: bool = False) -> dict[str, torch.Tensor]:
    """`torch.load(weights_only=True)` of a state dict of tensors; refuses pickles that would run code.

    Raises:
        InvalidInputError: the pickle needs arbitrary (unsafe) unpickling, or holds no state dict of tensors.
        CorruptFileError: the file is truncated or unreadable.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise InvalidInputError(
            f"refusing to load {path}: it needs arbitrary (unsafe) unpickling, not just tensors. "
            "Re-save it as a plain state dict (torch.save(model.state_dict(), ...)) or as safetensors."
        ) from exc
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise CorruptFileError(f"{path} is truncated or unreadable ({exc}); re-download it") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InvalidInputError(f"{path} is not a state dict of tensors")
    return state


@dataclass(frozen=True)
class LocalFiles:
    """`FileAccess` over a local folder."""

    root: Path

    @property
    def where(self) -> str:
        return self.root.as_posix()

    def _path(self, path: str) -> Path:
        return self.root / path if path else self.root

    def exists(self, path: str) -> bool:
        return self._path(path).is_file()

    def size(self, path: str) -> int:
        return self._path(path).stat().st_size

    def read_json(self, path: str) -> dict[str, Any]:
        return read_json(self._path(path))

    def read_yaml(self, path: str) -> dict[str, Any]:
        target = self._path(path)
        try:
            text = target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CorruptFileError(f"{target} could not be read ({exc}); re-download it") from exc
        return parse_yaml(text, str(target))

    def safetensors_header(self, path: str) -> dict[str, TensorInfo]:
        return safetensors_header(self._path(path))

    def npz_header(self, path: str) -> dict[str, TensorInfo]:
        return npz_header(self._path(path))

    def pickle_header(self, path: str) -> dict[str, TensorInfo] | None:
        try:
            state = load_torch_state(self._path(path), mmap=True)
        except CorruptFileError:  # a legacy (non-zip) torch.save file cannot be memory-mapped: known after reading
            return None
        return {name: TensorInfo(tuple(int(d) for d in t.shape), dtype_to_str(t.dtype)) for name, t in state.items()}


class Listing:
    """A repo's (or folder tree's) relative file paths, grouped by folder, for locating SAEs by file names."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = {p.strip("/") for p in paths}
        self._by_folder: dict[str, set[str]] = defaultdict(set)
        for path in self.paths:
            folder, name = posixpath.split(path)
            self._by_folder[folder].add(name)

    @property
    def folders(self) -> list[str]:
        """Every folder holding a file, sorted (the root is `""`)."""
        return sorted(self._by_folder)

    def names(self, folder: str) -> set[str]:
        """File names directly inside `folder`."""
        return self._by_folder.get(folder, set())

    def has(self, path: str) -> bool:
        """True when `path` is one of the files."""
        return path in self.paths


def join(folder: str, name: str) -> str:
    """`folder/name`, or `name` at the root."""
    return posixpath.join(folder, name) if folder else name


@dataclass
class Inspection:
    """What one inspector learned about one SAE without its weights: the config it will load with, a preview
    for people (file facts), the stored tensors' shapes when a header gave them, and the SAE's own config file
    as the source wrote it."""

    config: SAEConfig
    preview: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, TensorInfo] | None = None
    source_config: dict[str, Any] | None = None

    @property
    def shapes_known(self) -> bool:
        """False when the weights are a pickle that a remote listing cannot read (shapes come from the config)."""
        return self.tensors is not None

    def n_params(self) -> int:
        """Scalar parameters of the SAE as loaded (from its config)."""
        cfg = self.config
        out = cfg.output_width
        n = cfg.d_in * cfg.d_sae + cfg.d_sae * out + out
        n += 3 * cfg.d_sae if cfg.architecture == "gated" else cfg.d_sae
        if cfg.architecture in ("jumprelu", "batchtopk"):
            n += cfg.d_sae
        if cfg.skip_connection:
            n += cfg.d_in * out
        return n

    def itemsize(self) -> int:
        """Bytes per weight in the dtype the SAE is stored in."""
        dtype = next(iter(self.tensors.values())).dtype if self.tensors else self.config.dtype
        try:
            return torch.empty((), dtype=dtype_from_str(dtype)).element_size()
        except InvalidInputError:
            return 4


class Reader(Protocol):
    """One SAE layout: where its SAEs are in a listing, which files each needs, how it is inspected and read."""

    NAME: str

    def locate(self, listing: Listing, folder: str) -> list[str]:
        """The SAE locations (the folder itself, or files / stems in it) that `folder` holds."""
        ...

    def sae_files(self, listing: Listing, location: str) -> list[str]:
        """The listing's files one SAE at `location` needs."""
        ...

    def inspect(self, files: FileAccess, location: str, hints: dict[str, Any]) -> Inspection:
        """The SAE's config and tensor shapes without its weights."""
        ...

    def read(self, root: Path, location: str, config: SAEConfig) -> SAEModule:
        """Load the weights of the SAE at `root/location`."""
        ...


def tensor_preview(tensors: dict[str, TensorInfo] | None) -> dict[str, list[int]]:
    """Tensor name → shape, for previews."""
    return {name: list(info.shape) for name, info in (tensors or {}).items()}

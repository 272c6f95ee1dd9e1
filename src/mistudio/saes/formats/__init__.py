"""Every on-disk SAE format: detection from file names and headers, reading into `SAE`, writing SAELens/native.

Public API: `detect_format`, `inspect_sae`, `find_saes`, `read_sae`, `read_detected`, `write_saelens`,
`write_native`, `classify_paths`, `read_sparsity`, `FORMAT_NAMES`, `DetectedSAE`, `AmbiguousSAEError`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import posixpath
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from mistudio.errors import AmbiguousSAEError, NotFoundError, UnknownFormatError
from mistudio.saes.formats import dictionary_learning, gemma_scope, native, saelens, sparsify
from mistudio.saes.formats.base import DetectedSAE, list_files
from mistudio.saes.model import SAE, dtype_from_str

# checked in this order; the first whose files match and whose config parses wins
_READERS: tuple[ModuleType, ...] = (native, saelens, sparsify, dictionary_learning, gemma_scope)
FORMAT_NAMES: tuple[str, ...] = tuple(m.NAME for m in _READERS)
_BY_NAME = {m.NAME: m for m in _READERS}
_MAX_LISTED = 40

read_sparsity = saelens.read_sparsity

__all__ = [
    "FORMAT_NAMES",
    "AmbiguousSAEError",
    "DetectedSAE",
    "classify_paths",
    "detect_format",
    "find_saes",
    "inspect_sae",
    "read_detected",
    "read_sae",
    "read_sparsity",
    "write_native",
    "write_saelens",
]


def _detect_here(folder: Path, hints: dict[str, Any]) -> DetectedSAE | None:
    """The SAE stored directly in `folder`, or None when no reader claims it."""
    files = list_files(folder)
    names = set(files)
    for reader in _READERS:
        if reader.matches(names):
            try:
                return reader.inspect(folder, files, hints)
            except UnknownFormatError:
                continue
    return None


def _sub_hints(hints: dict[str, Any], relative: str) -> dict[str, Any]:
    if relative in ("", ".") or not hints.get("path_in_repo"):
        return hints
    return {**hints, "path_in_repo": posixpath.join(hints["path_in_repo"], relative)}


def find_saes(root: str | Path, hints: dict[str, Any] | None = None) -> list[DetectedSAE]:
    """Every SAE folder under `root` (itself included), sorted by path; hidden folders are skipped."""
    root = Path(root)
    hints = hints or {}
    found: list[DetectedSAE] = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        folder = Path(dirpath)
        relative = folder.relative_to(root).as_posix()
        detected = _detect_here(folder, _sub_hints(hints, relative))
        if detected is not None:
            found.append(detected)
            dirnames[:] = []
    return found


def _unknown(root: Path) -> UnknownFormatError:
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    shown = files[:_MAX_LISTED] + (
        [f"... and {len(files) - _MAX_LISTED} more"] if len(files) > _MAX_LISTED else []
    )
    return UnknownFormatError(
        f"no SAE format recognised in {root}. Files found: {', '.join(shown) or '(none)'}. "
        f"Formats tried: {', '.join(FORMAT_NAMES)} (see docs/formats.md for the files each one needs)",
        details={"files": files, "formats_tried": list(FORMAT_NAMES)},
    )


def detect_format(path: str | Path, hints: dict[str, Any] | None = None) -> DetectedSAE:
    """Identify the SAE at `path` (a folder or a file in it) from file names and headers; loads no weights.

    A folder holding exactly one SAE somewhere below is accepted; several raise `AmbiguousSAEError` listing them.
    `hints` may carry `repo_id` and `path_in_repo` (Gemma Scope takes its model and hook from the repo name).
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{path} does not exist")
    folder = path.parent if path.is_file() else path
    hints = hints or {}
    here = _detect_here(folder, hints)
    if here is not None:
        return here
    found = find_saes(folder, hints)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise AmbiguousSAEError(folder, found)
    raise _unknown(folder)


def inspect_sae(path: str | Path, hints: dict[str, Any] | None = None) -> DetectedSAE:
    """Shape, architecture and provenance of the SAE at `path` without loading its weights (= `detect_format`)."""
    return detect_format(path, hints)


def read_detected(
    detected: DetectedSAE, device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None
) -> SAE:
    """Load the weights of an SAE found by `detect_format` / `find_saes`."""
    own = dataclasses.replace(detected, config=copy.deepcopy(detected.config))  # the SAE may change its cfg
    sae = _BY_NAME[detected.format].read(own)
    return sae.to(device=device, dtype=dtype_from_str(dtype) if dtype is not None else None)


def read_sae(
    path: str | Path,
    hints: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
) -> SAE:
    """Detect and load the SAE at `path` onto `device` (in `dtype`, default: the format's own)."""
    return read_detected(detect_format(path, hints), device=device, dtype=dtype)


def write_saelens(
    sae: SAE, out_dir: str | Path, sparsity: torch.Tensor | None = None, *, overwrite: bool = False
) -> Path:
    """Write `sae` as a SAELens 6 folder (`cfg.json`, `sae_weights.safetensors`, optional `sparsity.safetensors`)."""
    return saelens.write(sae, Path(out_dir), sparsity, overwrite=overwrite)


def write_native(
    sae: SAE, out_dir: str | Path, training_metadata: dict[str, Any] | None = None, *, overwrite: bool = False
) -> Path:
    """Write `sae` in miStudio's layout (`config.json`, `model.safetensors`, optional `training_metadata.json`)."""
    return native.write(sae, Path(out_dir), training_metadata, overwrite=overwrite)


def classify_paths(paths: list[str]) -> list[tuple[str, str]]:
    """Candidate SAE folders in a list of relative file paths (e.g. a hub listing), by file names alone.

    Returns `(folder, format)` pairs sorted by folder; the repository root is `""`.  A `mistudio` match is only a
    candidate: an HF model folder also has `config.json` + `model.safetensors`.
    """
    folders: dict[str, set[str]] = defaultdict(set)
    for raw in paths:
        folder, name = posixpath.split(raw.strip("/"))
        folders[folder].add(name)
    out: list[tuple[str, str]] = []
    for folder in sorted(folders):
        reader = next((r for r in _READERS if r.matches(folders[folder])), None)
        if reader is not None:
            out.append((folder, reader.NAME))
    return out

"""Every on-disk SAE format: detection from file names and headers, reading into `SAE`, writing SAELens/native.

Public API: `detect_format`, `inspect_sae`, `find_saes`, `read_sae`, `read_detected`, `write_saelens`,
`write_native`, `classify_paths`, `read_sparsity`, `FORMAT_NAMES`, `DetectedSAE`, `AmbiguousSAEError`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import posixpath
import re
import struct
from pathlib import Path
from typing import Any

import torch

from mistudio.errors import AmbiguousSAEError, CorruptFileError, NotFoundError, UnknownFormatError
from mistudio.saes.formats import (
    circuit_tracer,
    dictionary_learning,
    gemma_scope,
    gemma_scope_2,
    llama_scope,
    native,
    qwen_scope,
    saelens,
    sparsify,
    temporal,
    torch_files,
)
from mistudio.saes.formats.access import FileAccess, Inspection, Listing, LocalFiles, Reader
from mistudio.saes.formats.base import DetectedSAE
from mistudio.saes.model import SAE, dtype_from_str

# checked in this order: for one folder the first folder-level reader whose files match and whose config
# parses wins; file-level readers (several SAEs per folder) each list their own files
_READERS: tuple[Reader, ...] = (
    native,
    saelens,
    sparsify,
    dictionary_learning,
    gemma_scope,
    gemma_scope_2,
    llama_scope,
    llama_scope.R1Distill(),
    temporal,
    qwen_scope,
    circuit_tracer.MwhannaTranscoder(),
    circuit_tracer.MntssCLTLayer(),
    torch_files.Goodfire(),
    torch_files.DeepseekR1(),
    torch_files.ConnorHookZ(),
)
FORMAT_NAMES: tuple[str, ...] = tuple(r.NAME for r in _READERS)
_BY_NAME: dict[str, Reader] = {r.NAME: r for r in _READERS}
_MAX_LISTED = 40
# what a reader raises when a config or tensor file holds something of the wrong type or shape (a damaged or
# hand-edited file); detection and reading turn these into CorruptFileError
_DAMAGED_CONTENT = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError,
                    struct.error, EOFError)

read_sparsity = saelens.read_sparsity

__all__ = [
    "FORMAT_NAMES",
    "AmbiguousSAEError",
    "DetectedSAE",
    "FileAccess",
    "Inspection",
    "Listing",
    "classify_paths",
    "detect_format",
    "find_saes",
    "inspect_at",
    "inspect_sae",
    "read_detected",
    "read_sae",
    "read_sparsity",
    "reader",
    "sae_files",
    "sae_folder",
    "write_native",
    "write_saelens",
]


def reader(fmt: str) -> Reader:
    """The reader of format `fmt`.

    Raises:
        UnknownFormatError: `fmt` is not a known format.
    """
    if fmt not in _BY_NAME:
        raise UnknownFormatError(f"unknown SAE format {fmt!r}; known: {', '.join(FORMAT_NAMES)}")
    return _BY_NAME[fmt]


def _local_listing(folder: Path) -> Listing:
    """The files of `folder` and of its direct sub-folders (e.g. Llama Scope's `checkpoints/`)."""
    paths: list[str] = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file():
            paths.append(entry.name)
        elif entry.is_dir() and not entry.name.startswith("."):
            paths.extend(f"{entry.name}/{p.name}" for p in sorted(entry.iterdir()) if p.is_file())
    return Listing(paths)


def _locations(listing: Listing, folder: str) -> list[tuple[str, Reader]]:
    """Every (location, reader) a folder holds by file names: at most one folder-level SAE (the first reader
    that matches), plus every file-level one."""
    out: list[tuple[str, Reader]] = []
    folder_taken = False
    for candidate in _READERS:
        for location in candidate.locate(listing, folder):
            if location == folder:
                if folder_taken:
                    continue
                folder_taken = True
            out.append((location, candidate))
    return out


def _detect_here(folder: Path, hints: dict[str, Any]) -> list[DetectedSAE]:
    """Every SAE stored directly in `folder` (one folder-level SAE at most, plus any file-level ones)."""
    listing = _local_listing(folder)
    files = LocalFiles(folder)
    found: list[DetectedSAE] = []
    folder_done = False
    for candidate in _READERS:
        for location in candidate.locate(listing, ""):
            if location == "" and folder_done:
                continue
            own_hints = hints if location == "" else _sub_hints(hints, location, file_level=True)
            try:
                inspection = candidate.inspect(files, location, own_hints)
            except UnknownFormatError:
                continue
            except _DAMAGED_CONTENT as exc:  # a reader tripping over malformed content: the files are damaged
                raise CorruptFileError(
                    f"{folder / location if location else folder}: the {candidate.NAME} files could not be read "
                    f"({type(exc).__name__}: {exc}); check its config file, or download/export the SAE again"
                ) from exc
            folder_done = folder_done or location == ""
            found.append(DetectedSAE(candidate.NAME, folder, sorted(candidate.sae_files(listing, location)),
                                     inspection.config, inspection.preview, location, inspection.source_config))
    return found


def _sub_hints(hints: dict[str, Any], relative: str, *, file_level: bool = False) -> dict[str, Any]:
    """Hints for an SAE at `relative` below the folder the hints describe (the repo path is extended, unless
    the hints already name that very file)."""
    base = hints.get("path_in_repo")
    if relative in ("", ".") or not base:
        return hints
    if file_level and posixpath.basename(str(base)) == posixpath.basename(relative):
        return hints
    return {**hints, "path_in_repo": posixpath.join(base, relative)}


def find_saes(root: str | Path, hints: dict[str, Any] | None = None) -> list[DetectedSAE]:
    """Every SAE under `root` (itself included), sorted by path; hidden folders are skipped."""
    root = Path(root)
    hints = hints or {}
    found: list[DetectedSAE] = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        folder = Path(dirpath)
        relative = folder.relative_to(root).as_posix()
        detected = _detect_here(folder, _sub_hints(hints, relative))
        if detected:
            found.extend(sorted(detected, key=lambda d: (d.location != "", _natural(d.location))))
            dirnames[:] = []
    return found


def _natural(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


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


def _pick(found: list[DetectedSAE], path: Path, hints: dict[str, Any]) -> list[DetectedSAE]:
    """Narrow several SAEs of one folder to the one a file path or `hints["path_in_repo"]` names."""
    if len(found) < 2:
        return found
    names = []
    if path.is_file() or not path.exists():
        names.append(path.name)
    if hints.get("path_in_repo"):
        names.append(posixpath.basename(str(hints["path_in_repo"]).strip("/")))
    for name in names:
        chosen = [d for d in found if d.location and (d.location == name or name in d.files)]
        if len(chosen) == 1:
            return chosen
    return found


def detect_format(path: str | Path, hints: dict[str, Any] | None = None) -> DetectedSAE:
    """Identify the SAE at `path` (a folder, a file of it, or one SAE file of a folder holding several) from
    file names and headers; loads no weights.

    A folder holding exactly one SAE somewhere below is accepted; several raise `AmbiguousSAEError` listing them.
    `hints` may carry `repo_id` and `path_in_repo` (Gemma Scope and Qwen Scope take their model and hook from
    the repo name; the path picks one SAE of a folder holding several).

    Raises:
        NotFoundError: `path` does not exist.
        AmbiguousSAEError: the folder holds several SAEs and nothing says which one.
        UnknownFormatError: no reader recognises the files.
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{path} does not exist")
    folder = path.parent if path.is_file() else path
    hints = hints or {}
    here = _pick(_detect_here(folder, hints), path, hints)
    if len(here) == 1:
        return here[0]
    if len(here) > 1:
        raise AmbiguousSAEError(folder, here)
    found = _pick(find_saes(folder, hints), path, hints)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise AmbiguousSAEError(folder, found)
    raise _unknown(folder)


def inspect_sae(path: str | Path, hints: dict[str, Any] | None = None) -> DetectedSAE:
    """Shape, architecture and provenance of the SAE at `path` without loading its weights (= `detect_format`)."""
    return detect_format(path, hints)


def inspect_at(files: FileAccess, location: str, fmt: str, hints: dict[str, Any] | None = None) -> Inspection:
    """Inspect the SAE of format `fmt` at `location` through any file access (a Hub repo, a local folder)."""
    return reader(fmt).inspect(files, location, hints or {})


def read_detected(
    detected: DetectedSAE, device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None
) -> SAE:
    """Load the weights of an SAE found by `detect_format` / `find_saes`.

    An `expected_average_only_in` SAE whose dataset scaling factor is known (`config.extra["norm_scaling_factor"]`,
    from the SAELens registry or the SAE's own files) has it folded into its weights here, as SAELens does at load
    time; its config then says `normalize_activations: none`.
    """
    own = dataclasses.replace(detected, config=copy.deepcopy(detected.config))  # the SAE may change its cfg
    try:
        sae = _BY_NAME[detected.format].read(own.root, own.location, own.config)
    except _DAMAGED_CONTENT as exc:  # a reader tripping over malformed content: the files are damaged
        raise CorruptFileError(f"{detected.path}: the {detected.format} weights could not be read "
                               f"({type(exc).__name__}: {exc}); download or export the SAE again") from exc
    factor = sae.cfg.extra.get("norm_scaling_factor")
    if sae.cfg.normalize_activations == "expected_average_only_in" and factor is not None:
        sae.fold_activation_norm_scaling_factor(float(factor))
        sae.cfg.extra["folded_norm_scaling_factor"] = float(factor)
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
    """Candidate SAEs in a list of relative file paths (e.g. a hub listing), by file names alone.

    Returns `(sae_path, format)` pairs sorted by path.  `sae_path` is the SAE's folder (the repo root is `""`)
    or, where one folder holds several SAEs, the file or file stem that is this SAE (`layer3.sae.pt`,
    `layer_3.safetensors`, a cross-layer transcoder's `3`) — the `path` SAELens's registry gives.  A `mistudio`
    match is only a candidate: an HF model folder also has `config.json` + `model.safetensors`.
    """
    listing = Listing(paths)
    out = [(location, found.NAME) for folder in listing.folders for location, found in _locations(listing, folder)]
    return sorted(out, key=lambda item: _natural(item[0]))


def sae_files(sae_path: str, fmt: str, paths: list[str]) -> list[str]:
    """The files of `paths` that the SAE at `sae_path` (from `classify_paths`) needs, sorted."""
    return sorted(set(reader(fmt).sae_files(Listing(paths), sae_path.strip("/"))))


def sae_folder(sae_path: str, paths: list[str]) -> str:
    """The folder holding the SAE at `sae_path`: itself when it is a folder of `paths`, else its parent."""
    sae_path = sae_path.strip("/")
    return sae_path if sae_path in Listing(paths).folders else posixpath.dirname(sae_path)

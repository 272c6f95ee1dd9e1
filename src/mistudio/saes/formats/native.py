"""miStudio's own SAE layout (see docs/formats.md): `config.json` + `model.safetensors` (+ `training_metadata.json`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from mistudio.errors import UnknownFormatError
from mistudio.fsutil import atomic_dir
from mistudio.saes.formats.access import FileAccess, Inspection, Listing, join, tensor_preview
from mistudio.saes.formats.base import load_safetensors, read_json
from mistudio.saes.model import SAE, SAEConfig

NAME = "mistudio"
CFG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAINING_FILE = "training_metadata.json"
FORMAT_TAG = "mistudio-sae"
FORMAT_VERSION = 1


def locate(listing: Listing, folder: str) -> list[str]:
    """The folder when it could be a miStudio SAE (config.json is checked on inspection)."""
    names = listing.names(folder)
    return [folder] if CFG_FILE in names and WEIGHTS_FILE in names else []


def sae_files(listing: Listing, location: str) -> list[str]:
    """Every file directly in the SAE's folder."""
    return sorted(join(location, n) for n in listing.names(location))


def inspect(files: FileAccess, location: str, hints: dict[str, Any]) -> Inspection:
    """Read `config.json` and the weights header; refuse a `config.json` that is not ours (e.g. an HF model).

    Raises:
        UnknownFormatError: `config.json` is not a miStudio SAE config, or is of a newer format version.
    """
    where = f"{files.where}/{location}".rstrip("/")
    doc = files.read_json(join(location, CFG_FILE))
    if doc.get("format") != FORMAT_TAG:
        raise UnknownFormatError(f'{where}/{CFG_FILE} is not a miStudio SAE config (no "format": "{FORMAT_TAG}")')
    if int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise UnknownFormatError(
            f"{where} uses miStudio SAE format version {doc['format_version']}; upgrade miStudio to read it"
        )
    config = SAEConfig.from_dict(doc["config"])
    header = files.safetensors_header(join(location, WEIGHTS_FILE))
    preview: dict[str, Any] = {
        "format_version": doc.get("format_version"),
        "tensors": tensor_preview(header),
        "has_training_metadata": files.exists(join(location, TRAINING_FILE)),
    }
    return Inspection(config, preview, header, source_config=doc)


def read(root: Path, location: str, config: SAEConfig) -> SAE:
    """Load the weights of a detected miStudio SAE."""
    return SAE.from_state_dict(config, load_safetensors((root / location if location else root) / WEIGHTS_FILE))


def read_training_metadata(folder: Path) -> dict[str, Any] | None:
    """The `training_metadata.json` of a miStudio SAE folder, if present."""
    path = Path(folder) / TRAINING_FILE
    return read_json(path) if path.is_file() else None


def write(
    sae: SAE, out_dir: Path, training_metadata: dict[str, Any] | None = None, *, overwrite: bool = False
) -> Path:
    """Write `sae` in the miStudio layout (atomically) and return its path."""
    out_dir = Path(out_dir)
    doc = {"format": FORMAT_TAG, "format_version": FORMAT_VERSION, "config": sae.cfg.to_dict()}
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        tensors = {name: p.detach().to("cpu").contiguous() for name, p in sae.named_parameters()}
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT_TAG})
        (tmp / CFG_FILE).write_text(json.dumps(doc, indent=2), encoding="utf-8")
        if training_metadata is not None:
            (tmp / TRAINING_FILE).write_text(json.dumps(training_metadata, indent=2), encoding="utf-8")
    return out_dir

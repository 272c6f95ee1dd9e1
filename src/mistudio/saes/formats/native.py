"""miStudio's own SAE layout (see docs/formats.md): `config.json` + `model.safetensors` (+ `training_metadata.json`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from mistudio.errors import UnknownFormatError
from mistudio.fsutil import atomic_dir
from mistudio.saes.formats.base import DetectedSAE, load_safetensors, read_json, safetensors_header
from mistudio.saes.formats.saelens import state_dict
from mistudio.saes.model import SAE, SAEConfig

NAME = "mistudio"
CFG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAINING_FILE = "training_metadata.json"
FORMAT_TAG = "mistudio-sae"
FORMAT_VERSION = 1


def matches(names: set[str]) -> bool:
    """True when a folder's file names could be a miStudio SAE (config.json is checked on inspection)."""
    return CFG_FILE in names and WEIGHTS_FILE in names


def inspect(folder: Path, files: list[str], hints: dict[str, Any] | None = None) -> DetectedSAE:
    """Read `config.json` and the weights header; refuse a `config.json` that is not ours (e.g. an HF model)."""
    doc = read_json(folder / CFG_FILE)
    if doc.get("format") != FORMAT_TAG:
        raise UnknownFormatError(
            f'{folder / CFG_FILE} is not a miStudio SAE config (no "format": "{FORMAT_TAG}")'
        )
    if int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise UnknownFormatError(
            f"{folder} uses miStudio SAE format version {doc['format_version']}; upgrade miStudio to read it"
        )
    config = SAEConfig.from_dict(doc["config"])
    header = safetensors_header(folder / WEIGHTS_FILE)
    preview: dict[str, Any] = {
        "format_version": doc.get("format_version"),
        "tensors": {name: list(info.shape) for name, info in header.items()},
        "has_training_metadata": TRAINING_FILE in files,
    }
    return DetectedSAE(NAME, folder, files, config, preview)


def read(detected: DetectedSAE) -> SAE:
    """Load the weights of a detected miStudio SAE."""
    return SAE.from_state_dict(detected.config, load_safetensors(detected.root / WEIGHTS_FILE))


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
        save_file(state_dict(sae), str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT_TAG})
        (tmp / CFG_FILE).write_text(json.dumps(doc, indent=2), encoding="utf-8")
        if training_metadata is not None:
            (tmp / TRAINING_FILE).write_text(json.dumps(training_metadata, indent=2), encoding="utf-8")
    return out_dir

"""Which repo files make up one SAE (the SAE paths and formats come from `saes.formats.classify_paths`)."""

from __future__ import annotations

from mistudio.saes.formats import sae_files as _sae_files
from mistudio.saes.formats import sae_folder
from mistudio.saes.formats.sparsify import RUN_CONFIG_FILE as SPARSIFY_REPO_CONFIG

__all__ = ["SPARSIFY_REPO_CONFIG", "sae_files", "sae_folder"]


def sae_files(sae_path: str, fmt: str, paths: list[str]) -> list[str]:
    """The repo files one SAE needs: its folder's files (or, for an SAE that is one file of a folder holding
    several, that file and the folder's shared configs), plus e.g. a sparsify run's parent `config.json`."""
    return _sae_files(sae_path, fmt, paths)

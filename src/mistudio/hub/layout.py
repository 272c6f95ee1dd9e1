"""Which repo files make up one SAE (the folders and formats come from `saes.formats.classify_paths`)."""

from __future__ import annotations

import posixpath

SPARSIFY_REPO_CONFIG = "config.json"


def sae_files(folder: str, fmt: str, paths: list[str]) -> list[str]:
    """The repo files one SAE needs: the files directly in its folder, plus a sparsify run's parent config.json."""
    folder = folder.strip("/")
    files = [p for p in paths if posixpath.dirname(p) == folder]
    if fmt == "sparsify":
        parent_cfg = posixpath.join(posixpath.dirname(folder), SPARSIFY_REPO_CONFIG)
        if parent_cfg in paths and parent_cfg not in files:
            files.append(parent_cfg)
    return sorted(files)

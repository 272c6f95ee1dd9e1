"""Which folders of a repo hold an SAE, in which format, and which files make up each one."""

from __future__ import annotations

import posixpath
from collections import defaultdict

SPARSIFY_REPO_CONFIG = "config.json"


def _folder_files(paths: list[str]) -> dict[str, set[str]]:
    folders: dict[str, set[str]] = defaultdict(set)
    for path in paths:
        folder, name = posixpath.split(path.strip("/"))
        folders[folder].add(name)
    return folders


def _fallback_classify(paths: list[str]) -> list[tuple[str, str]]:
    """Name-based classification, used only when `mistudio.saes.formats.classify_paths` is unavailable."""
    found = []
    for folder, names in sorted(_folder_files(paths).items()):
        if "params.npz" in names:
            found.append((folder, "gemma_scope"))
        elif "cfg.json" in names and "sae_weights.safetensors" in names:
            found.append((folder, "saelens"))
        elif "cfg.json" in names and "sae.safetensors" in names:
            found.append((folder, "sparsify"))
        elif "ae.pt" in names and "config.json" in names:
            found.append((folder, "dictionary_learning"))
        elif "config.json" in names and "model.safetensors" in names:
            found.append((folder, "mistudio"))
    return found


def classify(paths: list[str]) -> list[tuple[str, str]]:
    """(folder, format) for every folder of `paths` that looks like an SAE, sorted by folder."""
    try:
        from mistudio.saes.formats import classify_paths
    except ImportError:
        return _fallback_classify(paths)
    return sorted(classify_paths(paths))


def sae_files(folder: str, fmt: str, paths: list[str]) -> list[str]:
    """The repo files one SAE needs: the files directly in its folder, plus a sparsify run's parent config.json."""
    folder = folder.strip("/")
    files = [p for p in paths if posixpath.dirname(p) == folder]
    if fmt == "sparsify":
        parent_cfg = posixpath.join(posixpath.dirname(folder), SPARSIFY_REPO_CONFIG)
        if parent_cfg in paths and parent_cfg not in files:
            files.append(parent_cfg)
    return sorted(files)

"""Gemma Scope: `layer_{L}/width_{W}/average_l0_{K}/params.npz` JumpReLU SAEs (SAELens conversion `gemma_2`).

The model and hook come from the repository name (`google/gemma-scope-2b-pt-res`, SAELens release names such as
`gemma-scope-9b-it-res-canonical`), given in `hints["repo_id"]` or found in the local path (HF cache folders
keep the repo name); layer, width and L0 come from the folder path (or `hints["path_in_repo"]`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mistudio.saes.formats.base import DetectedSAE, load_npz, npz_header, require
from mistudio.saes.gemma_scope_paths import FolderParts, hook_for, parse_folder, parse_repo
from mistudio.saes.model import SAE, SAEConfig

NAME = "gemma_scope"
WEIGHTS_FILE = "params.npz"

def matches(names: set[str]) -> bool:
    """True when a folder holds a Gemma Scope `params.npz`."""
    return WEIGHTS_FILE in names


def inspect(folder: Path, files: list[str], hints: dict[str, Any] | None = None) -> DetectedSAE:
    """Shapes from the npz headers; model/hook/layer from the repo name and folder path."""
    hints = hints or {}
    header = npz_header(folder / WEIGHTS_FILE)
    header = {("W_" + k[2:] if k.startswith("w_") else k): v for k, v in header.items()}
    require(header, ["W_enc", "W_dec", "b_enc", "threshold"], folder / WEIGHTS_FILE)
    d_in, d_sae = header["W_enc"].shape
    where = parse_folder(str(hints.get("path_in_repo") or folder.as_posix()))
    repo = parse_repo(hints.get("repo_id")) or parse_repo(folder.as_posix())
    layer = where.get("layer")
    config = SAEConfig(
        d_in=int(d_in),
        d_sae=int(d_sae),
        architecture="jumprelu",
        model_name=repo["model_name"] if repo else None,
        hook_name=hook_for(repo["site"], layer, where["embedding"]) if repo else None,
        hook_layer=layer,
        context_size=1024,
        prepend_bos=True,
        normalize_activations="none",
        apply_b_dec_to_input=False,
        dataset_path="monology/pile-uncopyrighted",
        dtype="float32",
        extra=_folder_extra(where),
    )
    preview = {
        "repo": repo,
        "path": where,
        "tensors": {name: list(info.shape) for name, info in header.items()},
        "hook_known": config.hook_name is not None,
    }
    return DetectedSAE(NAME, folder, files, config, preview)


def _folder_extra(where: FolderParts) -> dict[str, Any]:
    """The `SAEConfig.extra` entries a folder path gives: average L0 and width when known, the embedding flag."""
    extra: dict[str, Any] = {}
    if "average_l0" in where:
        extra["average_l0"] = where["average_l0"]
    if "width" in where:
        extra["width"] = where["width"]
    extra["embedding"] = where["embedding"]
    return extra


def read(detected: DetectedSAE) -> SAE:
    """Load `params.npz` as float32; the `embedding` SAE gets SAELens's √d_in rescaling."""
    path = detected.root / WEIGHTS_FILE
    tensors = {("W_" + k[2:] if k.startswith("w_") else k): v for k, v in load_npz(path).items()}
    require(tensors, ["W_enc", "W_dec", "b_enc", "threshold"], path)
    tensors.setdefault("b_dec", tensors["W_dec"].new_zeros(detected.d_in))
    if detected.config.extra.get("embedding"):
        root = math.sqrt(detected.d_in)
        tensors["W_enc"] = tensors["W_enc"] / root
        tensors["W_dec"] = tensors["W_dec"] * root
    return SAE.from_state_dict(detected.config, tensors)

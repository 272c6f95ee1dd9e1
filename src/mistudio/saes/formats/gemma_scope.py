"""Gemma Scope: `layer_{L}/width_{W}/average_l0_{K}/params.npz` JumpReLU SAEs (SAELens conversion `gemma_2`) and
JumpReLU MLP transcoders (`google/gemma-scope-2b-pt-transcoders`, SAELens conversion `gemma_2_transcoder`).

The model and hook come from the repository name (`google/gemma-scope-2b-pt-res`, SAELens release names such as
`gemma-scope-9b-it-res-canonical`), given in `hints["repo_id"]` or found in the local path (HF cache folders
keep the repo name); layer, width and L0 come from the folder path (or `hints["path_in_repo"]`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mistudio.saes.formats.access import FileAccess, Inspection, Listing, join, tensor_preview
from mistudio.saes.formats.base import load_npz, require
from mistudio.saes.gemma_scope_paths import FolderParts, hook_for, parse_folder, parse_repo, transcoder_hooks
from mistudio.saes.model import SAE, SAEConfig

NAME = "gemma_scope"
WEIGHTS_FILE = "params.npz"

def locate(listing: Listing, folder: str) -> list[str]:
    """The folder when it holds a Gemma Scope `params.npz`."""
    return [folder] if WEIGHTS_FILE in listing.names(folder) else []


def sae_files(listing: Listing, location: str) -> list[str]:
    """Every file directly in the SAE's folder."""
    return sorted(join(location, n) for n in listing.names(location))


def inspect(files: FileAccess, location: str, hints: dict[str, Any]) -> Inspection:
    """Shapes from the npz headers; model/hook/layer from the repo name and folder path."""
    header = files.npz_header(join(location, WEIGHTS_FILE))
    header = {("W_" + k[2:] if k.startswith("w_") else k): v for k, v in header.items()}
    require(header, ["W_enc", "W_dec", "b_enc", "threshold"], Path(files.where) / location / WEIGHTS_FILE)
    d_in, d_sae = header["W_enc"].shape
    local_path = f"{files.where}/{location}".rstrip("/")
    where = parse_folder(str(hints.get("path_in_repo") or location or local_path))
    repo = parse_repo(hints.get("repo_id")) or parse_repo(local_path)
    layer = where.get("layer")
    transcoder: dict[str, Any] = {}
    if repo and repo["site"] == "transcoders" and layer is not None:  # SAELens `gemma_2_transcoder`
        hooks = transcoder_hooks(layer, f"blocks.{layer}.ln2.hook_normalized")
        transcoder = {"hook_name_out": hooks["hook_name_out"], "hf_hook_name": hooks["hf_hook_name"],
                      "hf_hook_name_out": hooks["hf_hook_name_out"], "d_out": int(header["W_dec"].shape[1])}
    config = SAEConfig(
        d_in=int(d_in),
        d_sae=int(d_sae),
        architecture="jumprelu",
        model_name=repo["model_name"] if repo else None,
        hook_name=hook_for(repo["site"], layer, where["embedding"]) if repo else None,
        hook_layer=None if where["embedding"] else layer,  # hook_embed belongs to no layer
        context_size=1024,
        prepend_bos=True,
        normalize_activations="none",
        apply_b_dec_to_input=False,
        dataset_path="monology/pile-uncopyrighted",
        dtype="float32",
        extra=_folder_extra(where),
        **transcoder,
    )
    preview = {
        "repo": repo,
        "path": where,
        "tensors": tensor_preview(header),
        "hook_known": config.hook_name is not None,
    }
    return Inspection(config, preview, header)


def _folder_extra(where: FolderParts) -> dict[str, Any]:
    """The `SAEConfig.extra` entries a folder path gives: average L0 and width when known, the embedding flag."""
    extra: dict[str, Any] = {}
    if "average_l0" in where:
        extra["average_l0"] = where["average_l0"]
    if "width" in where:
        extra["width"] = where["width"]
    extra["embedding"] = where["embedding"]
    return extra


def read(root: Path, location: str, config: SAEConfig) -> SAE:
    """Load `params.npz` as float32; the `embedding` SAE gets SAELens's √d_in rescaling."""
    path = (root / location if location else root) / WEIGHTS_FILE
    tensors = {("W_" + k[2:] if k.startswith("w_") else k): v for k, v in load_npz(path).items()}
    require(tensors, ["W_enc", "W_dec", "b_enc", "threshold"], path)
    tensors.setdefault("b_dec", tensors["W_dec"].new_zeros(config.output_width))
    if config.extra.get("embedding"):
        scale = math.sqrt(config.d_in)
        tensors["W_enc"] = tensors["W_enc"] / scale
        tensors["W_dec"] = tensors["W_dec"] * scale
    return SAE.from_state_dict(config, tensors)

"""Gemma Scope: `layer_{L}/width_{W}/average_l0_{K}/params.npz` JumpReLU SAEs (SAELens conversion `gemma_2`).

The model and hook come from the repository name (`google/gemma-scope-2b-pt-res`, SAELens release names such as
`gemma-scope-9b-it-res-canonical`), given in `hints["repo_id"]` or found in the local path (HF cache folders
keep the repo name); layer, width and L0 come from the folder path (or `hints["path_in_repo"]`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from mistudio.saes.formats.base import DetectedSAE, load_npz, npz_header, require
from mistudio.saes.model import SAE, SAEConfig

NAME = "gemma_scope"
WEIGHTS_FILE = "params.npz"

_REPO_RE = re.compile(r"gemma-scope-(2b|9b|27b)-(pt|it)-(res|mlp|att)")
_LAYER_RE = re.compile(r"layer_(\d+)")
_WIDTH_RE = re.compile(r"width_(\d+)([km])")
_L0_RE = re.compile(r"average_l0_(\d+)")


def matches(names: set[str]) -> bool:
    """True when a folder holds a Gemma Scope `params.npz`."""
    return WEIGHTS_FILE in names


def parse_repo(text: str | None) -> dict[str, Any] | None:
    """`{size, variant, site, model_name}` from a Gemma Scope repo or release name found in `text`, else None."""
    match = _REPO_RE.search(text or "")
    if not match:
        return None
    size, variant, site = match.groups()
    model = f"gemma-2-{size}" + ("-it" if variant == "it" else "")
    return {"size": size, "variant": variant, "site": site, "model_name": model}


def parse_folder(text: str) -> dict[str, Any]:
    """Layer, width (features) and average L0 from a `layer_{L}/width_{W}/average_l0_{K}` path."""
    out: dict[str, Any] = {"embedding": "embedding" in text}
    if m := _LAYER_RE.search(text):
        out["layer"] = int(m.group(1))
    elif out["embedding"]:
        out["layer"] = 0
    if m := _WIDTH_RE.search(text):
        out["width"] = int(m.group(1)) * (1024 if m.group(2) == "k" else 1024 * 1024)
    if m := _L0_RE.search(text):
        out["average_l0"] = int(m.group(1))
    return out


def hook_for(site: str, layer: int | None, embedding: bool) -> str | None:
    """TransformerLens hook for a Gemma Scope site (`res`, `mlp`, `att`)."""
    if embedding and site == "res":
        return "hook_embed"
    if layer is None:
        return None
    return {
        "res": f"blocks.{layer}.hook_resid_post",
        "mlp": f"blocks.{layer}.hook_mlp_out",
        "att": f"blocks.{layer}.attn.hook_z",
    }[site]


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
        extra={k: where[k] for k in ("average_l0", "width") if k in where}
        | {"embedding": where["embedding"]},
    )
    preview = {
        "repo": repo,
        "path": where,
        "tensors": {name: list(info.shape) for name, info in header.items()},
        "hook_known": config.hook_name is not None,
    }
    return DetectedSAE(NAME, folder, files, config, preview)


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

"""Qwen Scope (SAELens conversion `qwen_scope`): one `layer{N}.sae.pt` per layer at the repo root of
`Qwen/SAE-Res-{model}-W{N}K-L0_{K}`, each a pickled dict with `W_enc [d_sae, d_in]`, `W_dec [d_in, d_sae]` (both
transposed relative to SAELens), `b_enc`, `b_dec`.

As SAELens reads them: TopK with k = K and d_sae = N·1024 from the repo id, the model and d_in from SAELens's table
of Qwen Scope base models, hook `blocks.{N}.hook_resid_post` (HF `model.layers.{N}.output`), float32,
context 1024, `apply_b_dec_to_input` false.  The repo id comes from `hints["repo_id"]` or the local path (HF cache
folders keep it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mistudio.errors import InvalidInputError, UnknownFormatError
from mistudio.saes.formats.access import (
    FileAccess,
    Inspection,
    Listing,
    join,
    load_torch_state,
    tensor_preview,
)
from mistudio.saes.formats.base import require
from mistudio.saes.model import SAE, SAEConfig

NAME = "qwen_scope"
_FILE_RE = re.compile(r"^layer(\d+)\.sae\.pt$")
_REPO_RE = re.compile(r"SAE-Res-(.+?)-W(\d+)K-L0_(\d+)")
# the base model named in a repo id → (HF model id, hidden size), as SAELens lists them
MODEL_INFO: dict[str, tuple[str, int]] = {
    "Qwen3-1.7B-Base": ("Qwen/Qwen3-1.7B-Base", 2048),
    "Qwen3-8B-Base": ("Qwen/Qwen3-8B-Base", 4096),
    "Qwen3-30B-A3B-Base": ("Qwen/Qwen3-30B-A3B-Base", 2048),
    "Qwen3.5-2B-Base": ("Qwen/Qwen3.5-2B-Base", 2048),
    "Qwen3.5-9B-Base": ("Qwen/Qwen3.5-9B-Base", 4096),
    "Qwen3.5-27B": ("Qwen/Qwen3.5-27B", 5120),
    "Qwen3.5-35B-A3B-Base": ("Qwen/Qwen3.5-35B-A3B-Base", 2048),
}


def locate(listing: Listing, folder: str) -> list[str]:
    """Every `layer{N}.sae.pt` file of the folder (each is one SAE)."""
    return sorted((join(folder, n) for n in listing.names(folder) if _FILE_RE.match(n)), key=_layer_of)


def _layer_of(location: str) -> int:
    match = _FILE_RE.match(location.rsplit("/", 1)[-1])
    return int(match.group(1)) if match else -1


def sae_files(listing: Listing, location: str) -> list[str]:
    """Just the `.sae.pt` file."""
    return [location]


def parse_repo(text: str | None) -> tuple[str, int, int] | None:
    """(base model key, d_sae, k) from a Qwen Scope repo id found in `text`, else None."""
    match = _REPO_RE.search((text or "").replace("--", "/"))
    if match is None:
        return None
    return match.group(1), int(match.group(2)) * 1024, int(match.group(3))


def inspect(files: FileAccess, location: str, hints: dict[str, Any]) -> Inspection:
    """k from the repo id, the layer from the file name; the shapes from the file locally, else from the repo id
    (width) and SAELens's table of base models (d_in).

    Raises:
        UnknownFormatError: the file name is not `layer{N}.sae.pt`.
        InvalidInputError: no Qwen Scope repo id is known (k comes from it), or, remotely, its model is unknown.
    """
    layer = _layer_of(location)
    if layer < 0:
        raise UnknownFormatError(f"{location} is not a Qwen Scope layer file (layer{{N}}.sae.pt)")
    parsed = parse_repo(hints.get("repo_id")) or parse_repo(files.where)
    if parsed is None:
        raise InvalidInputError(
            f"{files.where}/{location} looks like a Qwen Scope SAE, whose k and width are only in its repo id "
            "(Qwen/SAE-Res-{model}-W{N}K-L0_{K}); pass the repo id as a hint (repo_id)"
        )
    model_key, d_sae, k = parsed
    tensors = files.pickle_header(location)
    if tensors is not None:  # local: the file's own shapes (W_enc is stored [d_sae, d_in])
        require(tensors, ["W_enc", "W_dec", "b_enc", "b_dec"], Path(files.where) / location)
        d_sae, d_in = (int(d) for d in tensors["W_enc"].shape)
    elif model_key in MODEL_INFO:
        d_in = MODEL_INFO[model_key][1]
    else:
        raise InvalidInputError(f"unknown Qwen Scope base model {model_key!r}; known: {', '.join(sorted(MODEL_INFO))}")
    model_name = MODEL_INFO[model_key][0] if model_key in MODEL_INFO else f"Qwen/{model_key}"
    config = SAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        architecture="topk",
        k=k,
        model_name=model_name,
        hook_name=f"blocks.{layer}.hook_resid_post",
        hook_layer=layer,
        context_size=1024,
        prepend_bos=True,
        normalize_activations="none",
        apply_b_dec_to_input=False,
        dtype="float32",
        hf_hook_name=f"model.layers.{layer}.output",
    )
    preview = {"repo": {"model": model_key, "width": d_sae, "k": k}, "tensors": tensor_preview(tensors)}
    return Inspection(config, preview, tensors)


def read(root: Path, location: str, config: SAEConfig) -> SAE:
    """Load the pickle (tensors only) and transpose W_enc / W_dec to SAELens's layout."""
    path = root / location
    state = load_torch_state(path)
    require(state, ["W_enc", "W_dec", "b_enc", "b_dec"], path)
    tensors = {"W_enc": state["W_enc"].T, "W_dec": state["W_dec"].T, "b_enc": state["b_enc"], "b_dec": state["b_dec"]}
    return SAE.from_state_dict(config, tensors)

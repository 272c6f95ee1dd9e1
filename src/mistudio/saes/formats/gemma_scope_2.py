"""Gemma Scope 2 (SAELens conversion `gemma_3`): `{site}/layer_{L}_width_{W}_l0_{small|medium|big}[_affine]/`
holding `params.safetensors` (lower-case `w_enc [d_in, d_sae]`, `w_dec [d_sae, d_out]`, `b_enc`, `b_dec`,
`threshold`; affine transcoders add `affine_skip_connection [d_in, d_out]`) and usually a `config.json`
(`architecture: jump_relu`, `model_name`, `hf_hook_point_in`, `hf_hook_point_out`, `affine_connection`).

As SAELens reads them: JumpReLU, float32, context 1024, `apply_b_dec_to_input` false; the hook comes from the site
(resid_post → `blocks.L.hook_resid_post`, attn_out → `blocks.L.attn.hook_z`, mlp_out → `blocks.L.hook_mlp_out`,
transcoder → reads `blocks.L.hook_mlp_in`, writes `blocks.L.hook_mlp_out`), the HF hook points from `config.json`
(or, without one, from the site), the model from `config.json` (or the repo name: `gemma-scope-2` → `gemma-3`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mistudio.errors import UnknownFormatError
from mistudio.saes.formats.access import FileAccess, Inspection, Listing, join, tensor_preview
from mistudio.saes.formats.base import load_safetensors, require
from mistudio.saes.gemma_scope_paths import gemma_scope_2_hooks, parse_leaf_2, parse_repo_2
from mistudio.saes.model import SAE, SAEConfig

NAME = "gemma_scope_2"
WEIGHTS_FILE = "params.safetensors"
CFG_FILE = "config.json"
_RENAMES = {"w_enc": "W_enc", "w_dec": "W_dec", "b_enc": "b_enc", "b_dec": "b_dec", "threshold": "threshold"}


def locate(listing: Listing, folder: str) -> list[str]:
    """The folder itself when it holds `params.safetensors`."""
    return [folder] if WEIGHTS_FILE in listing.names(folder) else []


def sae_files(listing: Listing, location: str) -> list[str]:
    """`params.safetensors` and `config.json` when present."""
    return [join(location, n) for n in (CFG_FILE, WEIGHTS_FILE) if listing.has(join(location, n))]


def _model_name(raw: dict[str, Any]) -> str | None:
    """`model_name` as SAELens normalises it (`google/` prefix, `-v3` → `-3`, no `-pt` for the 270m model)."""
    name = raw.get("model_name")
    if not isinstance(name, str):
        return None
    if "google" not in name:
        name = "google/" + name
    name = name.replace("-v3", "-3")
    return name.replace("-pt", "") if "270m" in name else name


def inspect(files: FileAccess, location: str, hints: dict[str, Any]) -> Inspection:
    """Shapes from the safetensors header; hooks and model from `config.json`, the folder and the repo name.

    Raises:
        UnknownFormatError: the folder name is not a Gemma Scope 2 leaf or the config is not a JumpReLU one.
    """
    where = str(hints.get("path_in_repo") or location or files.where)
    key = parse_leaf_2(where) or parse_leaf_2(f"{files.where}/{location}".rstrip("/"))
    if key is None:
        raise UnknownFormatError(
            f"{files.where}/{location} holds params.safetensors but is not a Gemma Scope 2 folder "
            "({site}/layer_{L}_width_{W}_l0_{small|medium|big}[_affine]); pass path_in_repo to say where it came from"
        )
    raw = files.read_json(join(location, CFG_FILE)) if files.exists(join(location, CFG_FILE)) else {}
    if raw and raw.get("architecture") != "jump_relu":
        raise UnknownFormatError(
            f"{files.where}/{join(location, CFG_FILE)} names architecture {raw.get('architecture')!r}; "
            "Gemma Scope 2 SAEs are jump_relu"
        )
    header = files.safetensors_header(join(location, WEIGHTS_FILE))
    require(header, ["w_enc", "w_dec", "b_enc", "b_dec", "threshold"], Path(files.where) / location / WEIGHTS_FILE)
    d_in, d_sae = header["w_enc"].shape
    hooks = gemma_scope_2_hooks(key)
    transcoder = key.kind == "transcoder"
    affine = bool(raw.get("affine_connection", key.affine)) if transcoder else False
    model = _model_name(raw) or parse_repo_2(hints.get("repo_id")) or parse_repo_2(files.where)
    config = SAEConfig(
        d_in=int(d_in),
        d_sae=int(d_sae),
        architecture="jumprelu",
        model_name=model,
        hook_name=hooks["hook_name"],
        hook_layer=key.layer,
        context_size=1024,
        prepend_bos=True,
        normalize_activations="none",
        apply_b_dec_to_input=False,
        dataset_path="monology/pile-uncopyrighted",
        dtype="float32",
        d_out=int(header["w_dec"].shape[-1]) if transcoder else None,
        hook_name_out=hooks["hook_name_out"],
        hf_hook_name=raw.get("hf_hook_point_in") or hooks["hf_hook_name"],
        hf_hook_name_out=(raw.get("hf_hook_point_out") or hooks["hf_hook_name_out"]) if transcoder else None,
        skip_connection=affine,
        extra={"site": key.site, "width": key.width, "l0_label": key.l0_label},
    )
    preview = {"config": raw or None, "path": {"site": key.site, "layer": key.layer, "width": key.width,
                                               "l0": key.l0_label}, "tensors": tensor_preview(header)}
    return Inspection(config, preview, header, source_config=raw or None)


def read(root: Path, location: str, config: SAEConfig) -> SAE:
    """Load `params.safetensors` under SAELens names (the affine skip connection becomes `W_skip`)."""
    path = root / location / WEIGHTS_FILE if location else root / WEIGHTS_FILE
    raw = load_safetensors(path)
    require(raw, list(_RENAMES), path)
    tensors = {new: raw[old] for old, new in _RENAMES.items()}
    if config.skip_connection:
        require(raw, ["affine_skip_connection"], path)
        tensors["W_skip"] = raw["affine_skip_connection"]
    return SAE.from_state_dict(config, tensors)

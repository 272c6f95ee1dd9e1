"""EleutherAI sparsify (`layers.{L}/cfg.json` + `sae.safetensors`) TopK SAEs.

Semantics follow sparsify's own `SparseCoder`: f = topk(relu((x - b_dec) @ encoder.weight.T + encoder.bias)),
x̂ = f @ W_dec + b_dec with `W_dec [num_latents, d_in]`.  SAELens's loader transposes W_dec and sets
`apply_b_dec_to_input = not normalize_decoder`; sparsify itself always subtracts b_dec before encoding (except
for transcoders, which are not SAEs), so that is what we do.  A `W_dec` stored as `[d_in, num_latents]` is
accepted and transposed.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from mistudio.errors import InvalidInputError
from mistudio.saes.formats.access import FileAccess, Inspection, Listing, join, tensor_preview
from mistudio.saes.formats.base import load_safetensors, require
from mistudio.saes.model import SAE, SAEConfig, layer_from_hook_name

NAME = "sparsify"
CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae.safetensors"
RUN_CONFIG_FILE = "config.json"


def locate(listing: Listing, folder: str) -> list[str]:
    """The folder when its file names look like a sparsify SAE."""
    names = listing.names(folder)
    return [folder] if CFG_FILE in names and WEIGHTS_FILE in names else []


def sae_files(listing: Listing, location: str) -> list[str]:
    """The files directly in the SAE's folder, plus the run's `config.json` one level up."""
    files = [join(location, n) for n in listing.names(location)]
    parent_cfg = join(posixpath.dirname(location), RUN_CONFIG_FILE)
    if location and listing.has(parent_cfg):
        files.append(parent_cfg)
    return sorted(files)


def _hook(folder_name: str) -> tuple[str | None, int | None]:
    if folder_name == "embed_tokens":
        return "hook_embed", 0
    layer = layer_from_hook_name(folder_name)
    if layer is None:
        return None, None
    return f"blocks.{layer}.hook_resid_post", layer


def inspect(files: FileAccess, location: str, hints: dict[str, Any]) -> Inspection:
    """Read `cfg.json`, the optional run `config.json` one level up, and the weights header.

    Raises:
        InvalidInputError: a transcoder / skip-connection or signed sparsify coder (not supported).
    """
    where = f"{files.where}/{location}".rstrip("/")
    cfg = files.read_json(join(location, CFG_FILE))
    if cfg.get("transcode") or cfg.get("skip_connection"):
        raise InvalidInputError(f"{where} holds a sparsify transcoder / skip-connection coder, which is not an SAE")
    if cfg.get("signed"):
        raise InvalidInputError(f"{where} holds a signed sparsify SAE, which miStudio does not support")
    parent = posixpath.dirname(location) if location else ""
    run_cfg_path = join(parent, RUN_CONFIG_FILE) if location else f"../{RUN_CONFIG_FILE}"
    run_cfg = files.read_json(run_cfg_path) if files.exists(run_cfg_path) else {}
    header = files.safetensors_header(join(location, WEIGHTS_FILE))
    require(header, ["encoder.weight", "W_dec", "b_dec"], Path(where) / WEIGHTS_FILE)
    d_sae, d_in = header["encoder.weight"].shape
    hook_name, layer = _hook(posixpath.basename(location) if location else Path(files.where).name)
    config = SAEConfig(
        d_in=int(d_in),
        d_sae=int(d_sae),
        architecture="topk",
        k=int(cfg["k"]),
        model_name=run_cfg.get("model") or hints.get("model_name"),
        hook_name=hook_name,
        hook_layer=layer,
        context_size=run_cfg.get("ctx_len"),
        prepend_bos=True,
        normalize_activations="none",
        apply_b_dec_to_input=True,
        dataset_path=run_cfg.get("dataset"),
        dtype=header["encoder.weight"].dtype,
        extra={
            k: cfg[k]
            for k in ("expansion_factor", "num_latents", "normalize_decoder", "multi_topk")
            if k in cfg
        },
    )
    preview = {"cfg": cfg, "tensors": tensor_preview(header)}
    return Inspection(config, preview, header, source_config=cfg)


def read(root: Path, location: str, config: SAEConfig) -> SAE:
    """Load `sae.safetensors`, mapping sparsify names to SAELens names."""
    path = (root / location if location else root) / WEIGHTS_FILE
    raw = load_safetensors(path)
    require(raw, ["encoder.weight", "W_dec", "b_dec"], path)
    d_in, d_sae = config.d_in, config.d_sae
    W_dec = raw["W_dec"]
    if tuple(W_dec.shape) == (d_in, d_sae) and d_in != d_sae:
        W_dec = W_dec.T
    tensors = {
        "W_enc": raw["encoder.weight"].T,
        "b_enc": raw.get("encoder.bias", raw["encoder.weight"].new_zeros(d_sae)),
        "W_dec": W_dec,
        "b_dec": raw["b_dec"],
    }
    return SAE.from_state_dict(config, tensors)

"""EleutherAI sparsify (`layers.{L}/cfg.json` + `sae.safetensors`) TopK SAEs.

Semantics follow sparsify's own `SparseCoder`: f = topk(relu((x - b_dec) @ encoder.weight.T + encoder.bias)),
x̂ = f @ W_dec + b_dec with `W_dec [num_latents, d_in]`.  SAELens's loader transposes W_dec and sets
`apply_b_dec_to_input = not normalize_decoder`; sparsify itself always subtracts b_dec before encoding (except
for transcoders, which are not SAEs), so that is what we do.  A `W_dec` stored as `[d_in, num_latents]` is
accepted and transposed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mistudio.errors import InvalidInputError
from mistudio.saes.formats.base import DetectedSAE, load_safetensors, read_json, require, safetensors_header
from mistudio.saes.model import SAE, SAEConfig, layer_from_hook_name

NAME = "sparsify"
CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae.safetensors"


def matches(names: set[str]) -> bool:
    """True when a folder's file names look like a sparsify SAE."""
    return CFG_FILE in names and WEIGHTS_FILE in names


def _hook(folder_name: str) -> tuple[str | None, int | None]:
    if folder_name == "embed_tokens":
        return "hook_embed", 0
    layer = layer_from_hook_name(folder_name)
    if layer is None:
        return None, None
    return f"blocks.{layer}.hook_resid_post", layer


def inspect(folder: Path, files: list[str], hints: dict[str, Any] | None = None) -> DetectedSAE:
    """Read `cfg.json`, the optional run `config.json` one level up, and the weights header."""
    cfg = read_json(folder / CFG_FILE)
    if cfg.get("transcode") or cfg.get("skip_connection"):
        raise InvalidInputError(
            f"{folder} holds a sparsify transcoder / skip-connection coder, which is not an SAE"
        )
    if cfg.get("signed"):
        raise InvalidInputError(f"{folder} holds a signed sparsify SAE, which miStudio does not support")
    run_cfg_path = folder.parent / "config.json"
    run_cfg = read_json(run_cfg_path) if run_cfg_path.is_file() else {}
    header = safetensors_header(folder / WEIGHTS_FILE)
    require(header, ["encoder.weight", "W_dec", "b_dec"], folder / WEIGHTS_FILE)
    d_sae, d_in = header["encoder.weight"].shape
    hook_name, layer = _hook(folder.name)
    config = SAEConfig(
        d_in=int(d_in),
        d_sae=int(d_sae),
        architecture="topk",
        k=int(cfg["k"]),
        model_name=run_cfg.get("model") or (hints or {}).get("model_name"),
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
    preview = {"cfg": cfg, "tensors": {name: list(info.shape) for name, info in header.items()}}
    return DetectedSAE(NAME, folder, files, config, preview)


def read(detected: DetectedSAE) -> SAE:
    """Load `sae.safetensors`, mapping sparsify names to SAELens names."""
    path = detected.root / WEIGHTS_FILE
    raw = load_safetensors(path)
    require(raw, ["encoder.weight", "W_dec", "b_dec"], path)
    d_in, d_sae = detected.d_in, detected.d_sae
    W_dec = raw["W_dec"]
    if tuple(W_dec.shape) == (d_in, d_sae) and d_in != d_sae:
        W_dec = W_dec.T
    tensors = {
        "W_enc": raw["encoder.weight"].T,
        "b_enc": raw.get("encoder.bias", raw["encoder.weight"].new_zeros(d_sae)),
        "W_dec": W_dec,
        "b_dec": raw["b_dec"],
    }
    return SAE.from_state_dict(detected.config, tensors)

"""Temporal SAEs (SAELens conversion `temporal`, `canrager/temporalSAEs`): `{model}/layer_{L}/temporal/` holding
`conf.yaml` (`llm.dimin`, `sae.exp_factor`, `sae.n_heads`, `sae.n_attn_layers`, `sae.bottleneck_factor`,
`sae.sae_diff_type`, `sae.kval_topk`, `sae.tied_weights`, `sae.scaling_factor`, `data.dtype`) and
`latest_ckpt.safetensors` (`D [d_sae, d_in]` decoder, `b [d_in]`, `E` encoder unless tied, `attn_layers.*`).

As SAELens reads it: hook `blocks.L.hook_resid_post`, `normalize_activations: constant_scalar_rescale` by
`sae.scaling_factor`, `apply_b_dec_to_input` true; the model is not in the files (SAELens's registry gives it in
the release's config overrides).  See `mistudio.saes.temporal` for what encoding needs (whole sequences).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mistudio.errors import UnknownFormatError
from mistudio.saes.formats.access import FileAccess, Inspection, Listing, join, tensor_preview
from mistudio.saes.formats.base import load_safetensors, require
from mistudio.saes.model import SAE, SAEConfig

NAME = "temporal"
CFG_FILE = "conf.yaml"
WEIGHTS_FILE = "latest_ckpt.safetensors"
_LAYER_RE = re.compile(r"layer_(\d+)")


def locate(listing: Listing, folder: str) -> list[str]:
    """The folder when it holds `conf.yaml` and `latest_ckpt.safetensors`."""
    names = listing.names(folder)
    return [folder] if CFG_FILE in names and WEIGHTS_FILE in names else []


def sae_files(listing: Listing, location: str) -> list[str]:
    """`conf.yaml` and `latest_ckpt.safetensors`."""
    return [join(location, CFG_FILE), join(location, WEIGHTS_FILE)]


def _section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    return value if isinstance(value, dict) else {}


def inspect(files: FileAccess, location: str, hints: dict[str, Any]) -> Inspection:
    """`conf.yaml` and the checkpoint's safetensors header.

    Raises:
        UnknownFormatError: the config lacks the temporal SAE keys or no `layer_{L}` is in the path.
    """
    raw = files.read_yaml(join(location, CFG_FILE))
    llm, sae, data = (_section(raw, k) for k in ("llm", "sae", "data"))
    keys = ("exp_factor", "n_heads", "n_attn_layers", "bottleneck_factor", "sae_diff_type", "kval_topk",
            "tied_weights", "scaling_factor")
    missing = [k for k in keys if k not in sae] + ([] if "dimin" in llm else ["llm.dimin"])
    if missing:
        raise UnknownFormatError(f"{files.where}/{join(location, CFG_FILE)} lacks {', '.join(missing)}; "
                                 "it is not a temporal SAE config")
    layer_match = _LAYER_RE.search(str(hints.get("path_in_repo") or "") or f"{files.where}/{location}")
    if layer_match is None:
        raise UnknownFormatError(f"no layer_{{L}} in the path of {files.where}/{location}; pass path_in_repo")
    layer = int(layer_match.group(1))
    header = files.safetensors_header(join(location, WEIGHTS_FILE))
    require(header, ["D", "b"], Path(files.where) / location / WEIGHTS_FILE)
    d_in = int(llm["dimin"])
    config = SAEConfig(
        d_in=d_in,
        d_sae=int(d_in * sae["exp_factor"]),
        architecture="temporal",
        model_name=hints.get("model_name"),
        hook_name=f"blocks.{layer}.hook_resid_post",
        hook_layer=layer,
        normalize_activations="constant_scalar_rescale",
        apply_b_dec_to_input=True,
        dtype="float32",
        extra={"temporal": {
            "n_heads": int(sae["n_heads"]), "n_attn_layers": int(sae["n_attn_layers"]),
            "bottleneck_factor": int(sae["bottleneck_factor"]), "sae_diff_type": sae["sae_diff_type"],
            "kval_topk": sae["kval_topk"], "tied_weights": bool(sae["tied_weights"]),
            "activation_normalization_factor": float(sae["scaling_factor"]),
        }, "stored_dtype": data.get("dtype")},
    )
    return Inspection(config, {"config": raw, "tensors": tensor_preview(header)}, header, source_config=raw)


def read(root: Path, location: str, config: SAEConfig) -> SAE:
    """Load the checkpoint under SAELens names (`D` → W_dec, `b` → b_dec, `E` → W_enc, attention as stored)."""
    path = (root / location if location else root) / WEIGHTS_FILE
    raw = load_safetensors(path)
    require(raw, ["D", "b"], path)
    tensors = {k: v for k, v in raw.items() if k.startswith("attn_layers.")}
    tensors["W_dec"], tensors["b_dec"] = raw["D"], raw["b"]
    if "E" in raw:
        tensors["W_enc"] = raw["E"]
    return SAE.from_state_dict(config, tensors)

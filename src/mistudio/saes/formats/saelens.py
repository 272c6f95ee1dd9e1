"""SAELens on-disk format: `cfg.json` + `sae_weights.safetensors` (+ `sparsity.safetensors`), v5 flat and v6 configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from mistudio.errors import InvalidInputError
from mistudio.fsutil import atomic_dir
from mistudio.saes.formats.access import FileAccess, Inspection, Listing, join, tensor_preview
from mistudio.saes.formats.base import load_safetensors, require
from mistudio.saes.model import SAE, SAEConfig

NAME = "saelens"
CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
SPARSITY_FILE = "sparsity.safetensors"
# the SAELens release whose on-disk layout `write_saelens` reproduces
SAELENS_LAYOUT_VERSION = "6.54.12"

_V5_RENAMES = {
    "hook_point": "hook_name",
    "hook_point_layer": "hook_layer",
    "hook_point_head_index": "hook_head_index",
    "activation_fn_str": "activation_fn",
}
# keys consumed by `_to_config`; everything else lands in `SAEConfig.extra`
_CONSUMED = {
    "d_in",
    "d_sae",
    "dtype",
    "device",
    "architecture",
    "k",
    "apply_b_dec_to_input",
    "normalize_activations",
    "rescale_acts_by_decoder_norm",
    "reshape_activations",
    "model_name",
    "hook_name",
    "hook_layer",
    "hook_head_index",
    "context_size",
    "prepend_bos",
    "dataset_path",
    "model_from_pretrained_kwargs",
    "neuronpedia_id",
    "activation_fn",
    "activation_fn_kwargs",
    "sae_lens_version",
    "sae_lens_training_version",
    "mistudio_architecture",
    "mistudio_extra",
    "finetuning_scaling_factor",
    "metadata",
    "d_out",
    "hook_name_out",
    "hf_hook_name",
    "hf_hook_name_out",
}
# SAELens transcoder architectures → (our activation architecture, skip connection)
TRANSCODER_ARCHITECTURES: dict[str, tuple[str, bool]] = {
    "transcoder": ("standard", False),
    "skip_transcoder": ("standard", True),
    "jumprelu_transcoder": ("jumprelu", False),
    "jumprelu_skip_transcoder": ("jumprelu", True),
}


def locate(listing: Listing, folder: str) -> list[str]:
    """The folder when its file names look like a SAELens SAE."""
    names = listing.names(folder)
    return [folder] if CFG_FILE in names and WEIGHTS_FILE in names else []


def sae_files(listing: Listing, location: str) -> list[str]:
    """Every file directly in the SAE's folder."""
    return sorted(join(location, n) for n in listing.names(location))


def _flatten(cfg: dict[str, Any]) -> dict[str, Any]:
    """v5 and v6 configs → one flat dict with v6 key names (metadata merged in)."""
    flat = {_V5_RENAMES.get(k, k): v for k, v in cfg.items() if k != "metadata"}
    for key, value in (cfg.get("metadata") or {}).items():
        flat.setdefault(_V5_RENAMES.get(key, key), value)
    return flat


def _normalization(value: Any) -> str:
    if value is None or value is False:
        return "none"
    if value is True:
        return "expected_average_only_in"
    return str(value)


def transcoder_architecture(arch: str, skip: bool) -> str:
    """The SAELens architecture name of a transcoder with activation `arch` (`standard` / `jumprelu`)."""
    return ("jumprelu_" if arch == "jumprelu" else "") + ("skip_" if skip else "") + "transcoder"


def _architecture(flat: dict[str, Any]) -> tuple[str, Any]:
    """(architecture, k) following SAELens's own v5→v6 migration rules."""
    arch = flat.get("architecture") or "standard"
    if arch in TRANSCODER_ARCHITECTURES:
        arch = TRANSCODER_ARCHITECTURES[arch][0]
    k = flat.get("k")
    kwargs = flat.get("activation_fn_kwargs") or {}
    if flat.get("activation_fn") == "topk" and kwargs.get("k") is not None:
        arch, k = "topk", kwargs["k"]
    if flat.get("mistudio_architecture") == "batchtopk" and arch == "jumprelu":
        arch = "batchtopk"
    return arch, k


def parse_config(cfg: dict[str, Any]) -> SAEConfig:
    """A SAELens `cfg.json` dict (v5 flat or v6 with `metadata`) → `SAEConfig`.

    Raises:
        InvalidInputError: not a SAELens config, or one whose values have the wrong types.
    """
    try:
        return _parse_config(cfg)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
        raise InvalidInputError(f"SAELens cfg.json is malformed ({type(exc).__name__}: {exc}); correct it or "
                                "export the SAE again") from None


def _parse_config(cfg: dict[str, Any]) -> SAEConfig:
    flat = _flatten(cfg)
    if "d_in" not in flat or "d_sae" not in flat:
        raise InvalidInputError("SAELens cfg.json lacks d_in/d_sae; it is not a SAELens SAE config")
    arch, k = _architecture(flat)
    transcoder = TRANSCODER_ARCHITECTURES.get(str(flat.get("architecture")))
    extra = {key: value for key, value in flat.items() if key not in _CONSUMED}
    extra.update(flat.get("mistudio_extra") or {})
    return SAEConfig(
        d_in=int(flat["d_in"]),
        d_sae=int(flat["d_sae"]),
        architecture=arch,
        k=k,
        model_name=flat.get("model_name"),
        hook_name=flat.get("hook_name"),
        hook_layer=flat.get("hook_layer"),
        hook_head_index=flat.get("hook_head_index"),
        context_size=flat.get("context_size"),
        prepend_bos=bool(flat.get("prepend_bos", True)),
        normalize_activations=_normalization(flat.get("normalize_activations")),
        apply_b_dec_to_input=bool(flat.get("apply_b_dec_to_input", True)),
        rescale_acts_by_decoder_norm=bool(flat.get("rescale_acts_by_decoder_norm", False)),
        dataset_path=flat.get("dataset_path"),
        dtype=flat.get("dtype") or "float32",
        model_from_pretrained_kwargs=flat.get("model_from_pretrained_kwargs") or {},
        neuronpedia_id=flat.get("neuronpedia_id"),
        d_out=int(flat["d_out"]) if transcoder is not None and flat.get("d_out") is not None else None,
        hook_name_out=flat.get("hook_name_out"),
        hf_hook_name=flat.get("hf_hook_name"),
        hf_hook_name_out=flat.get("hf_hook_name_out"),
        skip_connection=transcoder is not None and transcoder[1],
        extra=extra,
    )


def inspect(files: FileAccess, location: str, hints: dict[str, Any]) -> Inspection:
    """Read `cfg.json` and the weights header only.

    Raises:
        InvalidInputError: `cfg.json` lacks d_in / d_sae.
    """
    cfg = files.read_json(join(location, CFG_FILE))
    config = parse_config(cfg)
    header = files.safetensors_header(join(location, WEIGHTS_FILE))
    require(header, ["W_enc", "W_dec"], Path(files.where) / location / WEIGHTS_FILE)
    preview = {
        "sae_lens_version": (cfg.get("metadata") or {}).get("sae_lens_version")
        or cfg.get("sae_lens_version"),
        "config_version": 6 if "metadata" in cfg else 5,
        "k": config.k,
        "normalize_activations": config.normalize_activations,
        "apply_b_dec_to_input": config.apply_b_dec_to_input,
        "weights_dtype": header["W_enc"].dtype,
        "tensors": tensor_preview(header),
        "has_sparsity": files.exists(join(location, SPARSITY_FILE)),
    }
    return Inspection(config, preview, header, source_config=cfg)


def read(root: Path, location: str, config: SAEConfig) -> SAE:
    """Load the weights (float32 → the config's dtype); a non-trivial `scaling_factor` is folded into W_dec."""
    path = (root / location if location else root) / WEIGHTS_FILE
    tensors = load_safetensors(path)
    require(tensors, ["W_enc", "W_dec", "b_dec"], path)
    scale = tensors.pop("scaling_factor", None)
    if scale is not None and not torch.allclose(scale, torch.ones_like(scale)):
        tensors["W_dec"] = tensors["W_dec"] * scale.to(tensors["W_dec"].dtype)[:, None]
    if "W_skip" in tensors:  # SAELens stores W_skip [d_out, d_in]
        tensors["W_skip"] = tensors["W_skip"].T
    return SAE.from_state_dict(config, tensors)


def read_sparsity(folder: Path) -> torch.Tensor | None:
    """The log10 feature densities from `sparsity.safetensors`, or None when the folder has none."""
    path = Path(folder) / SPARSITY_FILE
    if not path.is_file():
        return None
    tensors = load_safetensors(path)
    require(tensors, ["sparsity"], path)
    return tensors["sparsity"]


def config_dict(cfg: SAEConfig) -> dict[str, Any]:
    """The v6 `cfg.json` SAELens 6.54 writes for this SAE (batchtopk is saved as jumprelu, as SAELens does)."""
    metadata: dict[str, Any] = {
        "sae_lens_version": SAELENS_LAYOUT_VERSION,
        "sae_lens_training_version": SAELENS_LAYOUT_VERSION,
        "model_name": cfg.model_name,
        "hook_name": cfg.hook_name,
        "hook_head_index": cfg.hook_head_index,
        "model_from_pretrained_kwargs": cfg.model_from_pretrained_kwargs,
        "prepend_bos": cfg.prepend_bos,
        "context_size": cfg.context_size,
        "dataset_path": cfg.dataset_path,
        "neuronpedia_id": cfg.neuronpedia_id,
        "hook_layer": cfg.hook_layer,
    }
    for key in ("hook_name_out", "hf_hook_name", "hf_hook_name_out"):
        if getattr(cfg, key) is not None:
            metadata[key] = getattr(cfg, key)
    if cfg.architecture == "batchtopk":
        metadata["mistudio_architecture"] = "batchtopk"
        metadata["k"] = cfg.k
    if cfg.extra:
        metadata["mistudio_extra"] = cfg.extra
    out: dict[str, Any] = {
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": cfg.dtype,
        "device": "cpu",
        "apply_b_dec_to_input": cfg.apply_b_dec_to_input,
        "normalize_activations": cfg.normalize_activations,
        "reshape_activations": "hook_z" if (cfg.hook_name or "").endswith("hook_z") else "none",
        "metadata": metadata,
        "architecture": "jumprelu" if cfg.architecture == "batchtopk" else cfg.architecture,
    }
    if cfg.architecture == "topk":
        out["k"] = int(cfg.k)  # type: ignore[arg-type]
        out["rescale_acts_by_decoder_norm"] = cfg.rescale_acts_by_decoder_norm
    if cfg.is_transcoder:
        out["architecture"] = transcoder_architecture(cfg.architecture, cfg.skip_connection)
        out["d_out"] = cfg.output_width
    return out


def state_dict(sae: SAE) -> dict[str, torch.Tensor]:
    """The SAE's tensors, detached, contiguous and on the CPU, under their SAELens names and shapes."""
    out = {name: p.detach().to("cpu").contiguous() for name, p in sae.named_parameters()}
    if "W_skip" in out:
        out["W_skip"] = out["W_skip"].T.contiguous()
    return out


def write(sae: SAE, out_dir: Path, sparsity: torch.Tensor | None = None, *, overwrite: bool = False) -> Path:
    """Write `sae` as a SAELens 6 folder (atomically) and return its path.

    Raises:
        InvalidInputError: a temporal SAE, or a sparsity vector of the wrong length.
    """
    out_dir = Path(out_dir)
    if sae.cfg.architecture == "temporal":
        raise InvalidInputError("miStudio does not write temporal SAEs in the SAELens layout; keep the source files "
                                "or write the miStudio layout (write_native)")
    if sparsity is not None and tuple(sparsity.shape) != (sae.cfg.d_sae,):
        raise InvalidInputError(f"sparsity must have shape ({sae.cfg.d_sae},), got {tuple(sparsity.shape)}")
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        save_file(state_dict(sae), str(tmp / WEIGHTS_FILE))
        (tmp / CFG_FILE).write_text(json.dumps(config_dict(sae.cfg), indent=2), encoding="utf-8")
        if sparsity is not None:
            save_file(
                {"sparsity": sparsity.detach().to("cpu", torch.float32).contiguous()},
                str(tmp / SPARSITY_FILE),
            )
    return out_dir

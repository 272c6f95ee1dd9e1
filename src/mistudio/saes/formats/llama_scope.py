"""Llama Scope (SAELens conversions `llama_scope` and `llama_scope_r1_distill`).

`llama_scope` (`fnlp/Llama3_1-8B-Base-LX{R|A|M}-{8|32}x`): `{folder}/hyperparams.json` (`d_model`, `d_sae`,
`hook_point_in`, `jump_relu_threshold`, `dataset_average_activation_norm.in`) and
`{folder}/checkpoints/final.safetensors` (`encoder.weight [d_sae, d_in]`, `encoder.bias`, `decoder.weight
[d_in, d_sae]`, `decoder.bias`).  As SAELens reads it: JumpReLU with one threshold for every feature,
`jump_relu_threshold × norm_scaling_factor` where `norm_scaling_factor = √d_in / dataset_average_activation_norm.in`
(the threshold is pre-scaled because the factor is folded into W_enc at load), `normalize_activations:
expected_average_only_in`, model `meta-llama/Llama-3.1-8B`, context 1024, `apply_b_dec_to_input` false.  The factor
is recorded in `extra["norm_scaling_factor"]` (unless the registry gave one) so `read_detected` folds it.

`llama_scope_r1_distill` (`fnlp/Llama-Scope-R1-Distill`, `{run}/L{N}R`): `config.json` (`d_model`,
`expansion_factor`, `hook_point_in`) and `sae_weights.safetensors` with the same tensor names plus
`log_jumprelu_threshold` (the threshold is its exp).  As SAELens reads it: JumpReLU, d_sae = d_in ×
expansion_factor, `expected_average_only_in` (the factor comes from the registry), model
`meta-llama/Llama-3.1-8B` (what SAELens's loader sets), context 1024, `apply_b_dec_to_input` false.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mistudio.errors import UnknownFormatError
from mistudio.saes.formats.access import FileAccess, Inspection, Listing, join, tensor_preview
from mistudio.saes.formats.base import TensorInfo, load_safetensors, require
from mistudio.saes.model import SAE, SAEConfig

NAME = "llama_scope"
HYPERPARAMS_FILE = "hyperparams.json"
LM_CONFIG_FILE = "lm_config.json"
WEIGHTS_FILES = ("checkpoints/final.safetensors", "final.safetensors")
MODEL_NAME = "meta-llama/Llama-3.1-8B"
_TENSORS = ["encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias"]


def _weights(listing_has: Any, location: str) -> str | None:
    return next((join(location, w) for w in WEIGHTS_FILES if listing_has(join(location, w))), None)


def locate(listing: Listing, folder: str) -> list[str]:
    """The folder when it holds `hyperparams.json` and `checkpoints/final.safetensors`."""
    ok = HYPERPARAMS_FILE in listing.names(folder) and _weights(listing.has, folder) is not None
    return [folder] if ok else []


def sae_files(listing: Listing, location: str) -> list[str]:
    """`hyperparams.json`, `lm_config.json` when present and the final checkpoint only."""
    files = [join(location, n) for n in (HYPERPARAMS_FILE, LM_CONFIG_FILE) if listing.has(join(location, n))]
    weights = _weights(listing.has, location)
    return files + ([weights] if weights else [])


def _encoder_shapes(header: dict[str, TensorInfo], label: Path) -> tuple[int, int]:
    require(header, _TENSORS, label)
    d_sae, d_in = header["encoder.weight"].shape
    return int(d_in), int(d_sae)


def _config(d_in: int, d_sae: int, hook_name: str, extra: dict[str, Any] | None = None) -> SAEConfig:
    """The settings every Llama Scope SAE shares (as SAELens's loaders set them), for one width and hook."""
    return SAEConfig(d_in=d_in, d_sae=d_sae, architecture="jumprelu", model_name=MODEL_NAME, hook_name=hook_name,
                     context_size=1024, prepend_bos=True, normalize_activations="expected_average_only_in",
                     apply_b_dec_to_input=False, dataset_path="cerebras/SlimPajama-627B", dtype="float32",
                     extra=extra or {})


def inspect(files: FileAccess, location: str, hints: dict[str, Any]) -> Inspection:
    """`hyperparams.json` and the checkpoint's safetensors header.

    Raises:
        UnknownFormatError: `hyperparams.json` lacks the Llama Scope keys.
    """
    raw = files.read_json(join(location, HYPERPARAMS_FILE))
    needed = ("d_model", "d_sae", "hook_point_in", "jump_relu_threshold", "dataset_average_activation_norm")
    missing = [k for k in needed if k not in raw]
    if missing:
        raise UnknownFormatError(f"{files.where}/{location}/{HYPERPARAMS_FILE} lacks {', '.join(missing)}; "
                                 "it is not a Llama Scope config")
    weights = _weights(files.exists, location)
    if weights is None:
        raise UnknownFormatError(f"{files.where}/{location} has no checkpoints/final.safetensors")
    header = files.safetensors_header(weights)
    _encoder_shapes(header, Path(files.where) / weights)
    d_in = int(raw["d_model"])
    factor = d_in**0.5 / float(raw["dataset_average_activation_norm"]["in"])
    config = _config(d_in, int(raw["d_sae"]), raw["hook_point_in"],
                     extra={"jump_relu_threshold": float(raw["jump_relu_threshold"]) * factor,
                            "norm_scaling_factor": factor})
    return Inspection(config, {"hyperparams": raw, "tensors": tensor_preview(header)}, header, source_config=raw)


def _state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"W_enc": tensors["encoder.weight"].T, "W_dec": tensors["decoder.weight"].T,
            "b_enc": tensors["encoder.bias"], "b_dec": tensors["decoder.bias"]}


def read(root: Path, location: str, config: SAEConfig) -> SAE:
    """Load the final checkpoint; the threshold is the (pre-scaled) scalar for every feature."""
    folder = root / location if location else root
    path = next((folder / w for w in WEIGHTS_FILES if (folder / w).is_file()), folder / WEIGHTS_FILES[0])
    raw = load_safetensors(path)
    require(raw, _TENSORS, path)
    tensors = _state(raw)
    tensors["threshold"] = torch.full((config.d_sae,), float(config.extra["jump_relu_threshold"]))
    return SAE.from_state_dict(config, tensors)


class R1Distill:
    """The `llama_scope_r1_distill` layout (see the module docstring)."""

    NAME = "llama_scope_r1_distill"
    CFG_FILE = "config.json"
    WEIGHTS_FILE = "sae_weights.safetensors"

    @staticmethod
    def locate(listing: Listing, folder: str) -> list[str]:
        """The folder when it holds `config.json` and `sae_weights.safetensors` (the config is checked later)."""
        names = listing.names(folder)
        return [folder] if R1Distill.CFG_FILE in names and R1Distill.WEIGHTS_FILE in names else []

    @staticmethod
    def sae_files(listing: Listing, location: str) -> list[str]:
        """`config.json` and `sae_weights.safetensors`."""
        return [join(location, R1Distill.CFG_FILE), join(location, R1Distill.WEIGHTS_FILE)]

    @staticmethod
    def inspect(files: FileAccess, location: str, hints: dict[str, Any]) -> Inspection:
        """`config.json` and the weights' safetensors header.

        Raises:
            UnknownFormatError: `config.json` is not a Llama Scope R1 config (or the weights lack its tensors).
        """
        raw = files.read_json(join(location, R1Distill.CFG_FILE))
        if not all(k in raw for k in ("d_model", "expansion_factor", "hook_point_in")):
            raise UnknownFormatError(f"{files.where}/{location}/config.json is not a Llama Scope R1 config")
        path = join(location, R1Distill.WEIGHTS_FILE)
        header = files.safetensors_header(path)
        if "log_jumprelu_threshold" not in header:
            raise UnknownFormatError(f"{files.where}/{path} has no log_jumprelu_threshold")
        _encoder_shapes(header, Path(files.where) / path)
        d_in = int(raw["d_model"])
        config = _config(d_in, d_in * int(raw["expansion_factor"]), raw["hook_point_in"])
        return Inspection(config, {"config": raw, "tensors": tensor_preview(header)}, header, source_config=raw)

    @staticmethod
    def read(root: Path, location: str, config: SAEConfig) -> SAE:
        """Load `sae_weights.safetensors`; threshold = exp(log_jumprelu_threshold)."""
        path = (root / location if location else root) / R1Distill.WEIGHTS_FILE
        raw = load_safetensors(path)
        require(raw, [*_TENSORS, "log_jumprelu_threshold"], path)
        tensors = _state(raw)
        tensors["threshold"] = raw["log_jumprelu_threshold"].exp()
        return SAE.from_state_dict(config, tensors)


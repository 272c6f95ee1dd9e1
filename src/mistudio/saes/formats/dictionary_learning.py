"""saprmarks/dictionary_learning: `ae.pt` (a plain state dict) + `config.json` (SAELens `dictionary_learning_1`).

`ae.pt` is opened with `torch.load(weights_only=True)`: a file that needs arbitrary unpickling is refused.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from mistudio.errors import CorruptFileError, InvalidInputError
from mistudio.saes.formats.base import DetectedSAE, read_json, require
from mistudio.saes.model import SAE, SAEConfig

NAME = "dictionary_learning"
CFG_FILE = "config.json"
WEIGHTS_FILE = "ae.pt"

# dict_class → (architecture, apply_b_dec_to_input)
DICT_CLASSES: dict[str, tuple[str, bool]] = {
    "AutoEncoder": ("standard", True),
    "AutoEncoderTopK": ("topk", True),
    "GatedAutoEncoder": ("gated", True),
    "JumpReluAutoEncoder": ("jumprelu", False),
    "BatchTopKSAE": ("batchtopk", True),
    "MatryoshkaBatchTopKSAE": ("batchtopk", True),
}


def matches(names: set[str]) -> bool:
    """True when a folder's file names look like a dictionary_learning SAE."""
    return WEIGHTS_FILE in names and CFG_FILE in names


def inspect(folder: Path, files: list[str], hints: dict[str, Any] | None = None) -> DetectedSAE:
    """Everything comes from `config.json`; `ae.pt` is not opened."""
    doc = read_json(folder / CFG_FILE)
    trainer = doc.get("trainer")
    if not isinstance(trainer, dict) or "dict_class" not in trainer:
        raise InvalidInputError(
            f"{folder / CFG_FILE} has no trainer.dict_class; it is not a dictionary_learning config"
        )
    dict_class = trainer["dict_class"]
    if dict_class not in DICT_CLASSES:
        raise InvalidInputError(
            f"dictionary_learning class {dict_class!r} is not supported (supported: {', '.join(DICT_CLASSES)})"
        )
    arch, apply_b_dec = DICT_CLASSES[dict_class]
    layer = trainer.get("layer")
    lm_name = trainer.get("lm_name")
    config = SAEConfig(
        d_in=int(trainer["activation_dim"]),
        d_sae=int(trainer["dict_size"]),
        architecture=arch,
        k=trainer.get("k") if arch in ("topk", "batchtopk") else None,
        model_name=lm_name.split("/")[-1] if lm_name else None,
        hook_name=f"blocks.{layer}.hook_resid_post" if layer is not None else None,
        hook_layer=layer,
        context_size=(doc.get("buffer") or {}).get("ctx_len"),
        prepend_bos=True,
        normalize_activations="none",
        apply_b_dec_to_input=apply_b_dec,
        dtype="float32",
        extra={"dict_class": dict_class, "lm_name": lm_name, "submodule_name": trainer.get("submodule_name")},
    )
    preview = {"trainer": trainer, "buffer": doc.get("buffer")}
    return DetectedSAE(NAME, folder, files, config, preview)


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """`torch.load(weights_only=True)`; refuses pickles that would run code, reports truncated files."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InvalidInputError(
            f"refusing to load {path}: it needs arbitrary (unsafe) unpickling, not just tensors. "
            "Re-save it as a plain state dict (torch.save(model.state_dict(), ...)) or as safetensors."
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise CorruptFileError(f"{path} is truncated or unreadable ({exc}); re-download it") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InvalidInputError(f"{path} is not a state dict of tensors")
    return state


def _first(state: dict[str, torch.Tensor], *names: str) -> torch.Tensor | None:
    return next((state[n] for n in names if n in state), None)


def read(detected: DetectedSAE) -> SAE:
    """Map the dictionary_learning state dict to SAELens names, as SAELens's `dictionary_learning_1` loader does."""
    path = detected.root / WEIGHTS_FILE
    state = load_state(path)
    W_enc = (
        state["W_enc"]
        if "W_enc" in state
        else state["encoder.weight"].T
        if "encoder.weight" in state
        else None
    )
    W_dec = (
        state["W_dec"]
        if "W_dec" in state
        else state["decoder.weight"].T
        if "decoder.weight" in state
        else None
    )
    tensors: dict[str, Any] = {
        "W_enc": W_enc,
        "W_dec": W_dec,
        "b_dec": _first(state, "b_dec", "bias", "decoder_bias"),
        "b_enc": _first(state, "b_enc", "encoder.bias"),
        "b_mag": state.get("mag_bias"),
        "b_gate": state.get("gate_bias"),
        "r_mag": state.get("r_mag"),
        "threshold": state.get("threshold"),
    }
    tensors = {k: v for k, v in tensors.items() if v is not None}
    require(tensors, ["W_enc", "W_dec", "b_dec"], path)
    cfg = detected.config
    if cfg.architecture in ("jumprelu", "batchtopk"):
        require(tensors, ["threshold"], path)
        if tensors["threshold"].ndim == 0:
            tensors["threshold"] = torch.full((cfg.d_sae,), float(tensors["threshold"]))
    return SAE.from_state_dict(cfg, tensors)

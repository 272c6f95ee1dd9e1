"""saprmarks/dictionary_learning: `ae.pt` (a plain state dict) + `config.json` (SAELens `dictionary_learning_1`).

`ae.pt` is opened with `torch.load(weights_only=True)`: a file that needs arbitrary unpickling is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mistudio.errors import InvalidInputError
from mistudio.saes.formats.access import FileAccess, Inspection, Listing, join, load_torch_state
from mistudio.saes.formats.base import require
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


def locate(listing: Listing, folder: str) -> list[str]:
    """The folder when its file names look like a dictionary_learning SAE."""
    names = listing.names(folder)
    return [folder] if WEIGHTS_FILE in names and CFG_FILE in names else []


def sae_files(listing: Listing, location: str) -> list[str]:
    """Every file directly in the SAE's folder."""
    return sorted(join(location, n) for n in listing.names(location))


def inspect(files: FileAccess, location: str, hints: dict[str, Any]) -> Inspection:
    """Everything comes from `config.json`; `ae.pt` is not opened.

    Raises:
        InvalidInputError: the config has no `trainer.dict_class`, or names an unsupported class.
    """
    where = f"{files.where}/{join(location, CFG_FILE)}"
    doc = files.read_json(join(location, CFG_FILE))
    trainer = doc.get("trainer")
    if not isinstance(trainer, dict) or "dict_class" not in trainer:
        raise InvalidInputError(f"{where} has no trainer.dict_class; it is not a dictionary_learning config")
    dict_class = trainer["dict_class"]
    if dict_class not in DICT_CLASSES:
        raise InvalidInputError(
            f"dictionary_learning class {dict_class!r} is not supported (supported: {', '.join(DICT_CLASSES)})"
        )
    arch, apply_b_dec = DICT_CLASSES[dict_class]
    layer = trainer.get("layer")
    lm_name = trainer.get("lm_name")
    buffer: dict[str, Any] = doc["buffer"] if isinstance(doc.get("buffer"), dict) else {}
    config = SAEConfig(
        d_in=int(trainer["activation_dim"]),
        d_sae=int(trainer["dict_size"]),
        architecture=arch,
        k=trainer.get("k") if arch in ("topk", "batchtopk") else None,
        model_name=lm_name.split("/")[-1] if lm_name else None,
        hook_name=f"blocks.{layer}.hook_resid_post" if layer is not None else None,
        hook_layer=layer,
        context_size=buffer.get("ctx_len"),
        prepend_bos=True,
        normalize_activations="none",
        apply_b_dec_to_input=apply_b_dec,
        dataset_path="monology/pile-uncopyrighted",
        dtype="float32",
        extra={"dict_class": dict_class, "lm_name": lm_name, "submodule_name": trainer.get("submodule_name")},
    )
    preview = {"trainer": trainer, "buffer": doc.get("buffer")}
    return Inspection(config, preview, None, source_config=doc)  # ae.pt is not opened: the config has the shapes


load_state = load_torch_state


def _first(state: dict[str, torch.Tensor], *names: str) -> torch.Tensor | None:
    return next((state[n] for n in names if n in state), None)


def read(root: Path, location: str, config: SAEConfig) -> SAE:
    """Map the dictionary_learning state dict to SAELens names, as SAELens's `dictionary_learning_1` loader does."""
    path = (root / location if location else root) / WEIGHTS_FILE
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
    cfg = config
    if cfg.architecture in ("jumprelu", "batchtopk"):
        require(tensors, ["threshold"], path)
        if tensors["threshold"].ndim == 0:
            tensors["threshold"] = torch.full((cfg.d_sae,), float(tensors["threshold"]))
    return SAE.from_state_dict(cfg, tensors)

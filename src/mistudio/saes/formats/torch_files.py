"""SAEs stored as one pickled state dict per file (SAELens conversions `goodfire`, `deepseek_r1`,
`connor_rob_hook_z`).  A file's location is its own path; only that file (and connor's `_cfg.json`) is needed.

* goodfire (`Goodfire/Llama-3.1-8B-Instruct-SAE-l19` → `Llama-3.1-8B-Instruct-SAE-l19.pth`,
  `Goodfire/Llama-3.3-70B-Instruct-SAE-l50` → `Llama-3.3-70B-Instruct-SAE-l50.pt`): `encoder_linear.weight
  [d_sae, d_in]`, `encoder_linear.bias`, `decoder_linear.weight [d_in, d_sae]`, `decoder_linear.bias`.  SAELens knows
  exactly these two files (model, hook `blocks.{L}.hook_resid_post`, shapes — read from the file once local):
  standard ReLU,
  `apply_b_dec_to_input` false, dataset `lmsys/lmsys-chat-1m`.
* deepseek_r1 (`qresearch/DeepSeek-R1-Distill-Llama-8B-SAE-l19` → `DeepSeek-R1-Distill-Llama-8B-SAE-l19.pt`):
  `encoder.weight`, `encoder.bias`, `decoder.weight`, `decoder.bias`; standard ReLU, d_in 4096, d_sae 65,536,
  model `deepseek-ai/DeepSeek-R1-Distill-Llama-8B`, hook `blocks.{L}.hook_resid_post` (L from `l{L}` in the name),
  context 1024, `apply_b_dec_to_input` false.
* connor_rob_hook_z (`ckkissane/attn-saes-gpt2-small-all-layers`): `{run}.pt` (`W_enc [d_in, d_sae]`, `W_dec`,
  `b_enc`, `b_dec`) and `{run}_cfg.json` (`act_size`, `dict_size`, `act_name`); standard ReLU on `hook_z`
  flattened over heads, model `gpt2-small`, context 128, `apply_b_dec_to_input` true.

Pickles cannot be header-read over the Hub: a remote listing takes the shapes from the config (or what SAELens
knows of the file); once the file is local its own shapes are read (memory-mapped, tensors only).
"""

from __future__ import annotations

import posixpath
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
from mistudio.saes.formats.base import TensorInfo, require
from mistudio.saes.model import SAE, SAEConfig


def _linear_dims(tensors: dict[str, TensorInfo] | None, encoder: str, names: list[str], label: str,
                 known: tuple[int, int]) -> tuple[int, int]:
    """(d_in, d_sae) from an `nn.Linear` encoder weight `[d_sae, d_in]` when the pickle was read (locally), else
    the dims SAELens knows for the file."""
    if tensors is None:
        return known
    require(tensors, names, Path(label))
    shape = tuple(tensors[encoder].shape)
    if len(shape) != 2:
        raise InvalidInputError(f"{label}: {encoder} should be 2-D [d_sae, d_in], got {shape}")
    return int(shape[1]), int(shape[0])


def _read_linear_pickle(path: Path, renames: dict[str, str], config: SAEConfig) -> SAE:
    """An SAE from a pickle of `nn.Linear` encoder/decoder tensors (`renames`: pickle name → SAE name), the
    `[out, in]` weights transposed to the SAE's `W_enc [d_in, d_sae]` / `W_dec [d_sae, d_in]`."""
    state = load_torch_state(path)
    require(state, list(renames), path)
    tensors = {new: state[old] for old, new in renames.items()}
    tensors["W_enc"], tensors["W_dec"] = tensors["W_enc"].T, tensors["W_dec"].T
    return SAE.from_state_dict(config, tensors)


class Goodfire:
    """The `goodfire` files (see the module docstring)."""

    NAME = "goodfire"
    # file name → (d_in, d_sae, model, layer)
    KNOWN: dict[str, tuple[int, int, str, int]] = {
        "Llama-3.3-70B-Instruct-SAE-l50.pt": (8192, 65536, "meta-llama/Llama-3.3-70B-Instruct", 50),
        "Llama-3.1-8B-Instruct-SAE-l19.pth": (4096, 65536, "meta-llama/Llama-3.1-8B-Instruct", 19),
    }
    _RENAMES = {"encoder_linear.weight": "W_enc", "decoder_linear.weight": "W_dec",
                "encoder_linear.bias": "b_enc", "decoder_linear.bias": "b_dec"}

    @staticmethod
    def locate(listing: Listing, folder: str) -> list[str]:
        """The Goodfire files SAELens knows, by name."""
        return sorted(join(folder, n) for n in listing.names(folder) if n in Goodfire.KNOWN)

    @staticmethod
    def sae_files(listing: Listing, location: str) -> list[str]:
        """Just the file."""
        return [location]

    @staticmethod
    def inspect(files: FileAccess, location: str, hints: dict[str, Any]) -> Inspection:
        """The known config of this file; locally the pickle's shapes are checked."""
        name = posixpath.basename(location)
        if name not in Goodfire.KNOWN:
            raise UnknownFormatError(f"{location} is not one of the Goodfire SAE files ({', '.join(Goodfire.KNOWN)})")
        d_in, d_sae, model, layer = Goodfire.KNOWN[name]
        tensors = files.pickle_header(location)
        d_in, d_sae = _linear_dims(tensors, "encoder_linear.weight", list(Goodfire._RENAMES),
                                   f"{files.where}/{location}", (d_in, d_sae))
        config = SAEConfig(d_in=d_in, d_sae=d_sae, architecture="standard", model_name=model,
                           hook_name=f"blocks.{layer}.hook_resid_post", hook_layer=layer,
                           apply_b_dec_to_input=False, dataset_path="lmsys/lmsys-chat-1m", dtype="float32")
        return Inspection(config, {"tensors": tensor_preview(tensors)}, tensors)

    @staticmethod
    def read(root: Path, location: str, config: SAEConfig) -> SAE:
        """Load the pickle (tensors only), transposing the linear layers' weights."""
        return _read_linear_pickle(root / location, Goodfire._RENAMES, config)


class DeepseekR1:
    """The `deepseek_r1` file (see the module docstring)."""

    NAME = "deepseek_r1"
    _FILE_RE = re.compile(r"^DeepSeek-R1-Distill-Llama-8B-SAE-l(\d+)\.pt$")
    D_IN, D_SAE = 4096, 4096 * 16
    _RENAMES = {"encoder.weight": "W_enc", "decoder.weight": "W_dec", "encoder.bias": "b_enc",
                "decoder.bias": "b_dec"}

    @staticmethod
    def locate(listing: Listing, folder: str) -> list[str]:
        """`DeepSeek-R1-Distill-Llama-8B-SAE-l{L}.pt` files."""
        return sorted(join(folder, n) for n in listing.names(folder) if DeepseekR1._FILE_RE.match(n))

    @staticmethod
    def sae_files(listing: Listing, location: str) -> list[str]:
        """Just the file."""
        return [location]

    @staticmethod
    def inspect(files: FileAccess, location: str, hints: dict[str, Any]) -> Inspection:
        """SAELens's fixed config, the layer from the file name; locally the pickle's shapes are checked."""
        match = DeepseekR1._FILE_RE.match(posixpath.basename(location))
        if match is None:
            raise UnknownFormatError(f"{location} is not a DeepSeek R1 SAE file")
        layer = int(match.group(1))
        tensors = files.pickle_header(location)
        d_in, d_sae = _linear_dims(tensors, "encoder.weight", list(DeepseekR1._RENAMES), f"{files.where}/{location}",
                                   (DeepseekR1.D_IN, DeepseekR1.D_SAE))
        config = SAEConfig(d_in=d_in, d_sae=d_sae, architecture="standard",
                           model_name="deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
                           hook_name=f"blocks.{layer}.hook_resid_post", hook_layer=layer, context_size=1024,
                           apply_b_dec_to_input=False, dataset_path="lmsys/lmsys-chat-1m", dtype="float32")
        return Inspection(config, {"tensors": tensor_preview(tensors)}, tensors)

    @staticmethod
    def read(root: Path, location: str, config: SAEConfig) -> SAE:
        """Load the pickle (tensors only), transposing the linear layers' weights."""
        return _read_linear_pickle(root / location, DeepseekR1._RENAMES, config)


class ConnorHookZ:
    """The `connor_rob_hook_z` files (see the module docstring)."""

    NAME = "connor_rob_hook_z"
    CFG_SUFFIX = "_cfg.json"

    @staticmethod
    def _cfg_path(location: str) -> str:
        return location.split(".pt")[0] + ConnorHookZ.CFG_SUFFIX

    @staticmethod
    def locate(listing: Listing, folder: str) -> list[str]:
        """Every `{run}.pt` with a `{run}_cfg.json` beside it."""
        names = listing.names(folder)
        return sorted(join(folder, n) for n in names
                      if n.endswith(".pt") and n[: -len(".pt")] + ConnorHookZ.CFG_SUFFIX in names)

    @staticmethod
    def sae_files(listing: Listing, location: str) -> list[str]:
        """The `.pt` and its `_cfg.json`."""
        return [location, ConnorHookZ._cfg_path(location)]

    @staticmethod
    def inspect(files: FileAccess, location: str, hints: dict[str, Any]) -> Inspection:
        """`{run}_cfg.json`; locally the pickle's shapes are checked.

        Raises:
            UnknownFormatError: the config lacks `act_size`, `dict_size` or `act_name`.
        """
        raw = files.read_json(ConnorHookZ._cfg_path(location))
        if not all(k in raw for k in ("act_size", "dict_size", "act_name")):
            raise UnknownFormatError(f"{files.where}/{ConnorHookZ._cfg_path(location)} is not a hook_z SAE config "
                                     "(act_size, dict_size, act_name)")
        d_in, d_sae = int(raw["act_size"]), int(raw["dict_size"])
        tensors = files.pickle_header(location)
        if tensors is not None:
            require(tensors, ["W_enc", "W_dec", "b_enc", "b_dec"], Path(files.where) / location)
        config = SAEConfig(d_in=d_in, d_sae=d_sae, architecture="standard", model_name="gpt2-small",
                           hook_name=raw["act_name"], context_size=128, apply_b_dec_to_input=True,
                           dataset_path="Skylion007/openwebtext", dtype="float32",
                           extra={"reshape_activations": "hook_z"})
        return Inspection(config, {"config": raw, "tensors": tensor_preview(tensors)}, tensors, source_config=raw)

    @staticmethod
    def read(root: Path, location: str, config: SAEConfig) -> SAE:
        """Load the pickle (tensors only, already under SAELens names)."""
        path = root / location
        state = load_torch_state(path)
        require(state, ["W_enc", "W_dec", "b_enc", "b_dec"], path)
        return SAE.from_state_dict(config, {k: state[k] for k in ("W_enc", "W_dec", "b_enc", "b_dec")})

"""circuit-tracer transcoders: per-layer (`mwhanna_transcoder`) and a cross-layer transcoder taken layer by layer
(`mntss_clt_layer_transcoder`), both at a repo's root.

mwhanna (`mwhanna/qwen3-{size}-transcoders[-lowl0]`): `layer_{L}.safetensors` (`W_enc [d_sae, d_in]`, `b_enc`,
`W_dec [d_sae, d_out]`, `b_dec`), `config.yaml` (`model_name`; the 14b repos have none: the model comes from the
repo id) and `wandb-config.yaml` (some repos spell it `wanb-config.yaml`: `d_model.value`, `d_feature.value`,
`batch_size.value`; without one the dims come from the safetensors header).  As SAELens reads it: a ReLU transcoder reading `blocks.L.mlp.hook_in` and writing
`blocks.L.hook_mlp_out`, float32, context size = the wandb `batch_size`, `fold_ln: false`.  A `W_skip` (SAELens's
`transcoder` cannot hold one) is read as circuit-tracer applies it (`x @ W_skip.T`).

mntss (`mntss/clt-gemma-2-2b-2.5M`): `W_enc_{L}.safetensors` (`W_enc_{L} [d_sae, d_in]`, `b_enc_{L}`, `b_dec_{L}`)
and `W_dec_{L}.safetensors` (`W_dec_{L} [d_sae, n_targets, d_out]`) per layer, and `config.yaml` (`model_name`,
`feature_input_hook`, `feature_output_hook`).  As SAELens takes it: layer L is a ReLU transcoder whose decoder is
the SUM of its decoders over all target layers (good for finding feature activations, not for reconstruction),
reading `blocks.L.{feature_input_hook}` and writing `blocks.L.{feature_output_hook}`.  Its location is the stem
`L` (`W_enc_L.safetensors` + `W_dec_L.safetensors`).
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

import torch

from mistudio.errors import InvalidInputError, UnknownFormatError
from mistudio.saes.formats.access import FileAccess, Inspection, Listing, join, tensor_preview
from mistudio.saes.formats.base import load_safetensors, require
from mistudio.saes.model import SAE, SAEConfig, hf_mlp_hook

CONFIG_FILE = "config.yaml"
WANDB_FILES = ("wandb-config.yaml", "wanb-config.yaml")
_LAYER_FILE_RE = re.compile(r"^layer_(\d+)\.safetensors$")
_CLT_ENC_RE = re.compile(r"^W_enc_(\d+)\.safetensors$")
_QWEN3_SIZE_RE = re.compile(r"qwen3-(\d+(?:\.\d+)?)b", re.IGNORECASE)


def _folder_of(location: str) -> str:
    return posixpath.dirname(location)


def _wandb_file(has: Any, folder: str) -> str | None:
    return next((join(folder, n) for n in WANDB_FILES if has(join(folder, n))), None)


def _wandb_value(run: dict[str, Any], key: str, default: int | None) -> int | None:
    """`run[key]["value"]` of a wandb config as an int, else `default` (no wandb config: from the headers)."""
    entry = run.get(key)
    value = entry.get("value") if isinstance(entry, dict) else None
    return int(value) if value is not None else default


class MwhannaTranscoder:
    """The `mwhanna_transcoder` layout (see the module docstring)."""

    NAME = "mwhanna_transcoder"

    @staticmethod
    def locate(listing: Listing, folder: str) -> list[str]:
        """Every `layer_{L}.safetensors` of a folder that also holds the run's `config.yaml` or wandb config."""
        names = listing.names(folder)
        if not any(n in names for n in (CONFIG_FILE, *WANDB_FILES)):
            return []
        found = [(int(m.group(1)), join(folder, n)) for n in names if (m := _LAYER_FILE_RE.match(n))]
        return [loc for _, loc in sorted(found)]

    @staticmethod
    def sae_files(listing: Listing, location: str) -> list[str]:
        """The layer's safetensors plus the shared `config.yaml` and wandb config."""
        folder = _folder_of(location)
        shared = [join(folder, n) for n in (CONFIG_FILE, *WANDB_FILES) if listing.has(join(folder, n))]
        return [location, *shared]

    @staticmethod
    def inspect(files: FileAccess, location: str, hints: dict[str, Any]) -> Inspection:
        """The wandb config, `config.yaml` (or the repo id) and the layer's safetensors header.

        Raises:
            UnknownFormatError: the file name is not `layer_{L}.safetensors` or no wandb config is beside it.
            InvalidInputError: no model name is known (no `config.yaml` and no `qwen3-{size}b` in the repo id).
        """
        match = _LAYER_FILE_RE.match(posixpath.basename(location))
        folder = _folder_of(location)
        wandb = _wandb_file(files.exists, folder)
        has_base = files.exists(join(folder, CONFIG_FILE))
        if match is None or (wandb is None and not has_base):
            raise UnknownFormatError(f"{files.where}/{location} is not a circuit-tracer transcoder layer "
                                     "(layer_{L}.safetensors beside wandb-config.yaml or config.yaml)")
        layer = int(match.group(1))
        run = files.read_yaml(wandb) if wandb is not None else {}
        base = files.read_yaml(join(folder, CONFIG_FILE)) if has_base else {}
        model = base.get("model_name")
        if model is None:
            size = _QWEN3_SIZE_RE.search(str(hints.get("repo_id") or files.where))
            if size is None:
                raise InvalidInputError(f"{files.where} has no config.yaml naming the model; pass the repo id "
                                        "(repo_id hint) so the model can be read from it")
            model = f"Qwen/Qwen3-{size.group(1)}B"
        header = files.safetensors_header(location)
        require(header, ["W_enc", "W_dec", "b_enc", "b_dec"], Path(files.where) / location)
        stored_sae, stored_in = (int(d) for d in header["W_enc"].shape)  # stored [d_sae, d_in]
        d_model = _wandb_value(run, "d_model", None) or stored_in
        d_sae = _wandb_value(run, "d_feature", None) or stored_sae
        hook_in, hook_out = f"blocks.{layer}.mlp.hook_in", f"blocks.{layer}.hook_mlp_out"
        config = SAEConfig(
            d_in=d_model,
            d_sae=d_sae,
            architecture="standard",
            model_name=model,
            hook_name=hook_in,
            hook_layer=layer,
            context_size=_wandb_value(run, "batch_size", None),
            normalize_activations="none",
            apply_b_dec_to_input=False,
            dataset_path="monology/pile-uncopyrighted",
            dtype="float32",
            model_from_pretrained_kwargs={"fold_ln": False},
            d_out=d_model,
            hook_name_out=hook_out,
            hf_hook_name=hf_mlp_hook(hook_in),
            skip_connection="W_skip" in header,
        )
        preview = {"config": base or None, "wandb_config": run, "tensors": tensor_preview(header)}
        return Inspection(config, preview, header, source_config=base or None)

    @staticmethod
    def read(root: Path, location: str, config: SAEConfig) -> SAE:
        """Load the layer file; W_enc is transposed to SAELens's `[d_in, d_sae]`."""
        path = root / location
        tensors = load_safetensors(path)
        require(tensors, ["W_enc", "W_dec", "b_enc", "b_dec"], path)
        tensors["W_enc"] = tensors["W_enc"].T
        if "W_skip" in tensors:
            tensors["W_skip"] = tensors["W_skip"].T
        return SAE.from_state_dict(config, tensors)


class MntssCLTLayer:
    """The `mntss_clt_layer_transcoder` layout (see the module docstring)."""

    NAME = "mntss_clt_layer"

    @staticmethod
    def locate(listing: Listing, folder: str) -> list[str]:
        """Every layer stem `L` with both `W_enc_L.safetensors` and `W_dec_L.safetensors`, beside `config.yaml`."""
        names = listing.names(folder)
        if CONFIG_FILE not in names:
            return []
        layers = sorted(int(m.group(1)) for n in names if (m := _CLT_ENC_RE.match(n)))
        return [join(folder, str(layer)) for layer in layers if f"W_dec_{layer}.safetensors" in names]

    @staticmethod
    def _paths(location: str) -> tuple[int, str, str]:
        folder, stem = posixpath.split(location)
        if not stem.isdigit():
            raise UnknownFormatError(f"{location} is not a cross-layer transcoder layer (a layer number)")
        return int(stem), join(folder, f"W_enc_{stem}.safetensors"), join(folder, f"W_dec_{stem}.safetensors")

    @staticmethod
    def sae_files(listing: Listing, location: str) -> list[str]:
        """The layer's encoder and decoder files plus the shared `config.yaml`."""
        _, enc, dec = MntssCLTLayer._paths(location)
        return [enc, dec, join(_folder_of(location), CONFIG_FILE)]

    @staticmethod
    def inspect(files: FileAccess, location: str, hints: dict[str, Any]) -> Inspection:
        """`config.yaml` and both files' safetensors headers.

        Raises:
            UnknownFormatError: the location is not a layer number with its two files.
        """
        layer, enc, dec = MntssCLTLayer._paths(location)
        if not (files.exists(enc) and files.exists(dec)):
            raise UnknownFormatError(f"{files.where} lacks W_enc_{layer}.safetensors or W_dec_{layer}.safetensors")
        base = files.read_yaml(join(_folder_of(location), CONFIG_FILE))
        enc_header, dec_header = files.safetensors_header(enc), files.safetensors_header(dec)
        require(enc_header, [f"W_enc_{layer}", f"b_enc_{layer}", f"b_dec_{layer}"], Path(files.where) / enc)
        require(dec_header, [f"W_dec_{layer}"], Path(files.where) / dec)
        for key in ("model_name", "feature_input_hook", "feature_output_hook"):
            if key not in base:
                raise UnknownFormatError(f"{files.where}/config.yaml lacks {key}; it is not a circuit-tracer config")
        hook_in = f"blocks.{layer}.{base['feature_input_hook']}"
        hook_out = f"blocks.{layer}.{base['feature_output_hook']}"
        d_in = int(enc_header[f"b_dec_{layer}"].shape[0])
        config = SAEConfig(
            d_in=d_in,
            d_sae=int(enc_header[f"b_enc_{layer}"].shape[0]),
            architecture="standard",
            model_name=base["model_name"],
            hook_name=hook_in,
            hook_layer=layer,
            normalize_activations="none",
            apply_b_dec_to_input=False,
            dtype="float32",
            model_from_pretrained_kwargs={"fold_ln": False},
            d_out=d_in,
            hook_name_out=hook_out,
            hf_hook_name=hf_mlp_hook(hook_in),
            hf_hook_name_out=hf_mlp_hook(hook_out),
            extra={"cross_layer_targets": int(dec_header[f"W_dec_{layer}"].shape[1]),
                   "decoder": "sum over target layers (feature activations are exact; reconstructions are not)"},
        )
        tensors = {**enc_header, **dec_header}
        return Inspection(config, {"config": base, "tensors": tensor_preview(tensors)}, tensors, source_config=base)

    @staticmethod
    def read(root: Path, location: str, config: SAEConfig) -> SAE:
        """Load both files; the decoder is summed over the target layers, as SAELens does."""
        layer, enc, dec = MntssCLTLayer._paths(location)
        enc_t, dec_t = load_safetensors(root / enc), load_safetensors(root / dec)
        require(enc_t, [f"W_enc_{layer}", f"b_enc_{layer}", f"b_dec_{layer}"], root / enc)
        require(dec_t, [f"W_dec_{layer}"], root / dec)
        W_dec = dec_t[f"W_dec_{layer}"]
        if W_dec.ndim != 3:
            raise InvalidInputError(f"{root / dec}: W_dec_{layer} should be [d_sae, n_targets, d_out], "
                                    f"got {tuple(W_dec.shape)}")
        with torch.no_grad():
            tensors = {"W_enc": enc_t[f"W_enc_{layer}"].T, "b_enc": enc_t[f"b_enc_{layer}"],
                       "b_dec": enc_t[f"b_dec_{layer}"], "W_dec": W_dec.sum(dim=1)}
        return SAE.from_state_dict(config, tensors)

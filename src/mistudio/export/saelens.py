"""`saelens/`: the SAE converted to SAELens 6 (`cfg.json`, `sae_weights.safetensors`, `sparsity.safetensors`)
plus the `pretrained_saes.yaml` entry a SAELens release needs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from mistudio.export.neuronpedia.ids import NeuronpediaIds
from mistudio.export.public_names import drop_local_paths, is_local_reference
from mistudio.saes.formats import write_saelens
from mistudio.saes.model import SAE

SPARSITY_EPS = 1e-10  # SAELens training's log10(feature_sparsity + 1e-10)


def log_sparsity(frequency: np.ndarray) -> torch.Tensor:
    """log10 feature frequency as SAELens stores it in `sparsity.safetensors`."""
    return torch.from_numpy(np.log10(np.asarray(frequency, dtype=np.float64) + SPARSITY_EPS).astype(np.float32))


def release_name(ids: NeuronpediaIds, configured: str | None) -> str:
    """The SAELens release name (default `{model_id}-{source_set}`)."""
    return configured or f"{ids.model_id}-{ids.source_set}"


def sae_folder_id(sae: SAE, ids: NeuronpediaIds) -> str:
    """The SAE's id/folder inside the release (its hook name, as in `gpt2-small-res-jb`)."""
    base = sae.cfg.hook_name or f"layer_{ids.layer}"
    return f"{base}__{ids.sae_id_suffix}" if ids.sae_id_suffix else base


def write_saelens_folder(sae: SAE, dest: Path, ids: NeuronpediaIds, frequency: np.ndarray | None, *,
                         model_name: str | None = None, dataset_path: str | None = None) -> Path:
    """Write the SAE (any source format) as a SAELens folder at `dest`, with its Neuronpedia id in the config, the
    model and dataset named by their public ids (`export.public_names`) and no local path left in `extra`."""
    out = SAE(copy.deepcopy(sae.cfg))
    out.load_state_dict(sae.state_dict())
    out.cfg.neuronpedia_id = ids.neuronpedia_id
    if model_name is not None:
        out.cfg.model_name = model_name
    out.cfg.dataset_path = dataset_path if dataset_path is not None else (
        None if is_local_reference(out.cfg.dataset_path) else out.cfg.dataset_path)
    out.cfg.extra = drop_local_paths(out.cfg.extra or {})
    sparsity = log_sparsity(frequency) if frequency is not None else None
    return write_saelens(out, dest, sparsity)


def pretrained_entry(sae: SAE, ids: NeuronpediaIds, *, release: str, hf_repo_id: str | None,
                     l0: float | None, variance_explained: float | None) -> dict[str, Any]:
    """The `pretrained_saes.yaml` release entry for this SAE."""
    sae_entry: dict[str, Any] = {"id": sae_folder_id(sae, ids), "path": sae_folder_id(sae, ids),
                                 "neuronpedia": ids.neuronpedia_id}
    if l0 is not None:
        sae_entry["l0"] = float(l0)
    if variance_explained is not None:
        sae_entry["variance_explained"] = float(variance_explained)
    return {release: {
        "conversion_func": None,
        "links": {"dashboards": f"https://www.neuronpedia.org/{ids.model_id}/{ids.source_id}"},
        "model": ids.model_id,
        "repo_id": hf_repo_id or "YOUR-HF-USER/YOUR-REPO",
        "saes": [sae_entry],
    }}


def pretrained_yaml(entry: dict[str, Any]) -> str:
    """The entry as YAML text (sorted keys, so it is deterministic)."""
    return yaml.safe_dump(entry, sort_keys=True, allow_unicode=True, default_flow_style=False)

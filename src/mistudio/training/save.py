"""Writing a trained SAE as a SAELens folder that `sae_lens.SAE.load_from_disk` loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mistudio.fsutil import atomic_write_text
from mistudio.saes.formats import write_saelens
from mistudio.saes.model import SAE

RUNNER_CFG_FILE = "runner_cfg.json"


def save_trained(sae: SAE, out_dir: str | Path, *, training_info: dict[str, Any] | None = None,
                 sparsity: torch.Tensor | None = None, overwrite: bool = False) -> Path:
    """Write `sae` (from `SAETrainer.inference_sae`) as `cfg.json` + `sae_weights.safetensors`, plus
    `sparsity.safetensors` (log10 feature densities, `SAETrainer.log_feature_density()`) when given and
    `runner_cfg.json` (the training run's settings, the file SAELens uploads next to an SAE and ignores when
    loading it) when `training_info` is given.  Returns the folder.

    Raises:
        InvalidInputError: a sparsity vector of the wrong length, or the folder exists and `overwrite` is
            false.
    """
    folder = write_saelens(sae, Path(out_dir), sparsity, overwrite=overwrite)
    if training_info is not None:
        atomic_write_text(folder / RUNNER_CFG_FILE, json.dumps(training_info, indent=2, sort_keys=True, default=str))
    return folder

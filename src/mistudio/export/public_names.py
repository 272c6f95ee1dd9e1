"""What an archive calls the model and the datasets: ids others can resolve (HuggingFace Hub ids, TransformerLens
names, `builtin:corpus`), never a path on this machine; and the model's real shape for Neuronpedia's model row."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mistudio.errors import InvalidInputError

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def is_local_reference(value: object) -> bool:
    """True when `value` names a file or folder on this machine rather than an id: an absolute, home or relative
    path, a `file:` URL, a Windows path, anything with more than one `/` (hub ids have one), or a name that
    exists on disk (as `lm.loading.load_model` and `datasets.load_texts` resolve it). `builtin:` names are ids."""
    if not isinstance(value, str) or not value or value.startswith("builtin:"):
        return False
    if value.startswith(("/", "~", ".", "file:")) or "\\" in value or _WINDOWS_DRIVE.match(value):
        return True
    return value.count("/") > 1 or Path(value).exists()


@dataclass(frozen=True)
class PublicNames:
    """The names an archive writes: model (hub id / TransformerLens name), the extraction's dataset, the SAE's
    training dataset, and the model's layer count and MLP width (0 when unknown)."""

    model: str | None
    dataset: str
    training_dataset: str | None
    n_layers: int = 0
    d_mlp: int = 0


def resolve_public_names(*, sae_model: str | None, extraction_model: str | None, dataset: str,
                         training_dataset: str | None, model_id: str | None, dataset_id: str | None,
                         model_shape: Mapping[str, Any] | None = None) -> PublicNames:
    """The archive's names: every local model path replaced by `model_id`, every local dataset path by
    `dataset_id`; the model's shape from the extraction's manifest (`model_shape`), else from the model's config
    where it can be read offline.

    Raises:
        InvalidInputError: a model or dataset is a local path and no id was given to replace it.
    """
    model = sae_model or extraction_model
    if is_local_reference(model):
        if not model_id:
            raise InvalidInputError(
                f"the model is a local folder ({model}); pass --model-id (REST/config `model_id`: the model's "
                "HuggingFace Hub id, e.g. google/gemma-2-2b, or its Neuronpedia id) so the archive names the model "
                "instead of a path on this machine")
        model = model_id
    public_dataset = dataset
    if is_local_reference(dataset):
        if not dataset_id:
            raise InvalidInputError(
                f"the extraction read its texts from a local path ({dataset}); pass --dataset-id (REST/config "
                "`dataset_id`: the HuggingFace dataset id the texts come from, e.g. Skylion007/openwebtext) so "
                "the archive names the dataset instead of a path on this machine")
        public_dataset = dataset_id
    public_training = training_dataset
    if is_local_reference(training_dataset):
        if not dataset_id:
            raise InvalidInputError(
                f"the SAE's training dataset is a local path ({training_dataset}); pass --dataset-id (REST/config "
                "`dataset_id`: its HuggingFace dataset id) so the archive names it instead of a path on this "
                "machine")
        public_training = dataset_id
    shape = dict(model_shape or {})
    if not shape.get("n_layers"):
        shape = _shape_from_config(extraction_model or sae_model)
    return PublicNames(model=model, dataset=public_dataset, training_dataset=public_training,
                       n_layers=int(shape.get("n_layers") or 0), d_mlp=int(shape.get("d_mlp") or 0))


def _shape_from_config(model_ref: str | None) -> dict[str, Any]:
    """The shape of a model the extraction did not record (older stores), read from its config offline."""
    if not model_ref:
        return {}
    from mistudio.lm.model_shape import read_model_shape

    shape = read_model_shape(model_ref)
    return shape.to_dict() if shape is not None else {}


def drop_local_paths(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` without the entries whose value is a local path (nested dicts cleaned too)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out[key] = drop_local_paths(value)
        elif not is_local_reference(value):
            out[key] = value
    return out

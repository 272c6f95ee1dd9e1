"""A model's layer count and MLP width (what Neuronpedia's model rows record as `layers` / `neuronsPerLayer`),
from an HF config, or from a model reference without downloading anything."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelShape:
    """`n_layers` transformer blocks, `d_mlp` neurons in each block's MLP (None when the config does not say)."""

    n_layers: int
    d_mlp: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (what the extraction manifest records under `model_shape`)."""
        return asdict(self)


def model_shape(config: Any) -> ModelShape:
    """The shape read from an HF `PretrainedConfig` (its text config for multimodal models): `num_hidden_layers` /
    `n_layer`, and the MLP width `intermediate_size` / `n_inner` / `ffn_dim` (GPT-2's `n_inner` None means
    4 × `n_embd`; a mixture of experts reports one expert's width)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    n_layers = getattr(text, "num_hidden_layers", None) or getattr(text, "n_layer", None) or 0
    d_mlp = next((int(v) for key in ("intermediate_size", "n_inner", "ffn_dim", "moe_intermediate_size")
                  if isinstance(v := getattr(text, key, None), int) and v > 0), None)
    if d_mlp is None and getattr(text, "model_type", None) == "gpt2":
        d_mlp = 4 * int(text.n_embd)
    return ModelShape(n_layers=int(n_layers), d_mlp=d_mlp)


def read_model_shape(model_ref: str) -> ModelShape | None:
    """The shape of a local model folder, or of a hub model already in the local HF cache; None when its config
    cannot be read without the network."""
    from transformers import AutoConfig

    from mistudio.lm.names import hf_id_for

    path = Path(model_ref).expanduser()
    source = str(path) if path.exists() else hf_id_for(model_ref)
    try:
        return model_shape(AutoConfig.from_pretrained(source, local_files_only=True))
    except (OSError, ValueError, KeyError):
        return None

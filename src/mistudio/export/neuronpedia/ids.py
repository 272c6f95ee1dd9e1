"""Neuronpedia identifiers for an export: model id, layer, source set, source id, hook name."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from typing import Any

from mistudio.errors import InvalidInputError
from mistudio.export.config import MODEL_ID_RE, SOURCE_SET_RE, ExportConfig
from mistudio.saes.gemma_scope_paths import width_label

_HOOK_KIND = re.compile(r"hook_(resid_pre|resid_mid|resid_post|mlp_in|mlp_out|attn_in|attn_out|z)$")
_KIND_SHORT = {"resid_pre": "res", "resid_mid": "res-mid", "resid_post": "res", "mlp_in": "mlp-in",
               "mlp_out": "mlp", "attn_in": "att-in", "attn_out": "att", "z": "att"}
_B36_TABLE = bytes(b"0123456789abcdefghijklmnopqrstuvwxyz"[i % 36] for i in range(256))  # digest byte → digit


@dataclass(frozen=True)
class NeuronpediaIds:
    """Where the features live on Neuronpedia: `{model_id}/{source_id}/{index}`."""

    model_id: str
    layer: int
    source_set: str
    sae_id_suffix: str | None
    hook_name: str | None

    @property
    def source_id(self) -> str:
        """`{layer}-{set}[__suffix]`, Neuronpedia's source id."""
        base = f"{self.layer}-{self.source_set}"
        return f"{base}__{self.sae_id_suffix}" if self.sae_id_suffix else base

    @property
    def neuronpedia_id(self) -> str:
        """`{model_id}/{source_id}` (SAELens yaml `neuronpedia:` key)."""
        return f"{self.model_id}/{self.source_id}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view including the derived ids."""
        return {**asdict(self), "source_id": self.source_id, "neuronpedia_id": self.neuronpedia_id}


def slug_model_id(name: str) -> str:
    """A Neuronpedia model id from a model name (`google/gemma-2-2b` → `gemma-2-2b`)."""
    slug = re.sub(r"[^a-z0-9.-]+", "-", name.split("/")[-1].lower()).strip("-.")
    slug = re.sub(r"^[^a-z]+", "", slug)[:32].rstrip("-.")
    if not MODEL_ID_RE.match(slug):
        raise InvalidInputError(f"cannot derive a Neuronpedia model id from {name!r}; set model_id in the config")
    return slug


def default_source_set(hook_name: str | None, d_sae: int) -> str:
    """`mistudio-{res|mlp|att}-{width}`, valid for Neuronpedia."""
    match = _HOOK_KIND.search(hook_name or "")
    kind = _KIND_SHORT[match.group(1)] if match else "res"
    name = f"mistudio-{kind}-{width_label(d_sae)}"
    if not SOURCE_SET_RE.match(name):  # pragma: no cover - built from safe parts
        raise InvalidInputError(f"derived source set {name!r} is not a valid Neuronpedia name")
    return name


def resolve_ids(cfg: ExportConfig, *, model_name: str | None, layer: int | None, hook_name: str | None,
                d_sae: int) -> NeuronpediaIds:
    """The export's Neuronpedia ids from the config, falling back to the SAE's model, layer and hook."""
    if cfg.model_id is None and not model_name:
        raise InvalidInputError("the SAE has no model name; set model_id in the export config (e.g. gpt2-small)")
    if layer is None:
        raise InvalidInputError("the SAE's layer is unknown; set its hook name (blocks.{L}.hook_...) before exporting")
    return NeuronpediaIds(
        model_id=slug_model_id(cfg.model_id or str(model_name)),
        layer=int(layer),
        source_set=cfg.source_set or default_source_set(hook_name, d_sae),
        sae_id_suffix=cfg.sae_id_suffix,
        hook_name=hook_name,
    )


def pseudo_cuid(*parts: object) -> str:
    """A 25-character cuid-like id ('c' + 24 base-36 digits) derived from `parts`, so re-exports keep ids."""
    return "c" + hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()[:24].translate(_B36_TABLE).decode()

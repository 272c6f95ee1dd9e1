"""The one grammar of Gemma Scope names: repositories (`google/gemma-scope-2b-pt-res`), leaf folders
(`layer_{L}/width_{W}/average_l0_{K}`) and width labels; and Gemma Scope 2's (`google/gemma-scope-2-1b-pt`,
`{site}/layer_{L}_width_{W}_l0_{small|medium|big}[_affine]`, sites `resid_post`, `attn_out`, `mlp_out`,
`transcoder`, each also as `{site}_all`).

Widths are labelled as Gemma Scope and Neuronpedia label them: 16k = 16,384, 65k = 65,536, 131k = 131,072,
262k = 262,144, 524k = 524,288, 1m = 1,048,576 features (the label is the count in thousands, or millions,
rounded down; the count is the power of two nearest the label).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TypedDict

from mistudio.errors import NotFoundError

_LEAF_RE = re.compile(r"(?:^|/)(layer_(\d+)|embedding)/width_([0-9]+[km]?)/average_l0_(\d+)$")
_REPO_RE = re.compile(r"gemma-scope-(2b|9b|27b)-(pt|it)-(res|mlp|att|transcoders)")
_REPO2_RE = re.compile(r"gemma-scope-2-(\d+(?:\.\d+)?[mb])-(pt|it)")
_LEAF2_RE = re.compile(
    r"(?:^|/)((?:resid_post|attn_out|mlp_out|transcoder)(?:_all)?)/"
    r"layer_(\d+)_width_(\d+[km])_l0_(small|medium|big)(_affine)?$"
)
GEMMA_SCOPE_2_SITES = ("resid_post", "attn_out", "mlp_out", "transcoder")
_LAYER_RE = re.compile(r"layer_(\d+)")
_WIDTH_RE = re.compile(r"width_(\d+[km])")
_L0_RE = re.compile(r"average_l0_(\d+)")
_UNITS = {"k": 1000, "m": 1000**2}


@dataclass(frozen=True)
class GemmaScopeKey:
    """Where a Gemma Scope leaf sits: layer (None for the embedding folder), width label, average L0."""

    layer: int | None
    width: str
    l0: int


def parse_leaf(folder: str) -> GemmaScopeKey | None:
    """The (layer, width, L0) of a Gemma Scope leaf folder, or None if the path does not look like one."""
    match = _LEAF_RE.search(folder.strip("/"))
    if match is None:
        return None
    layer = int(match.group(2)) if match.group(2) is not None else None
    return GemmaScopeKey(layer, match.group(3), int(match.group(4)))


def width_label(width: int | str) -> str:
    """Normalise a width (`16384`, `"16k"`, `"width_16k"`) to its label (`"16k"`; `131072` → `"131k"`,
    `1048576` → `"1m"`; fewer than 1,000 features → the plain count, `"300"`)."""
    if isinstance(width, int):
        if width < 1000:
            return str(width)
        return f"{width // 10**6}m" if width >= 10**6 else f"{width // 1000}k"
    return width.removeprefix("width_").lower()


def width_features(label: str) -> int:
    """The number of features of a width label: the nearest power of two (`"16k"` → 16384, `"1m"` → 2**20)."""
    approx = int(label.rstrip("km")) * _UNITS.get(label[-1:], 1)
    return 2 ** round(math.log2(approx))


class RepoNameParts(TypedDict):
    """What a Gemma Scope repo or release name says: model size, `pt`/`it` variant, site and model name."""

    size: str
    variant: str
    site: str
    model_name: str


class _FolderFlags(TypedDict):
    embedding: bool


class FolderParts(_FolderFlags, total=False):
    """What a Gemma Scope folder path says; keys not found in the path are absent."""

    layer: int
    width: int
    average_l0: int


def parse_repo(text: str | None) -> RepoNameParts | None:
    """`{size, variant, site, model_name}` from a Gemma Scope repo or release name found in `text`, else None."""
    match = _REPO_RE.search(text or "")
    if not match:
        return None
    size, variant, site = match.groups()
    model = f"gemma-2-{size}" + ("-it" if variant == "it" else "")
    return {"size": size, "variant": variant, "site": site, "model_name": model}


def parse_folder(text: str) -> FolderParts:
    """Layer, width (features) and average L0 found anywhere in a `layer_{L}/width_{W}/average_l0_{K}` path
    (`embedding` counts as layer 0)."""
    out: FolderParts = {"embedding": "embedding" in text}
    if m := _LAYER_RE.search(text):
        out["layer"] = int(m.group(1))
    elif out["embedding"]:
        out["layer"] = 0
    if m := _WIDTH_RE.search(text):
        out["width"] = width_features(m.group(1))
    if m := _L0_RE.search(text):
        out["average_l0"] = int(m.group(1))
    return out


def hook_for(site: str, layer: int | None, embedding: bool) -> str | None:
    """TransformerLens hook for a Gemma Scope site (`res`, `mlp`, `att`; a `transcoders` repo reads
    `blocks.L.ln2.hook_normalized`, see `transcoder_hooks`)."""
    if embedding and site == "res":
        return "hook_embed"
    if layer is None:
        return None
    return {
        "res": f"blocks.{layer}.hook_resid_post",
        "mlp": f"blocks.{layer}.hook_mlp_out",
        "att": f"blocks.{layer}.attn.hook_z",
        "transcoders": f"blocks.{layer}.ln2.hook_normalized",
    }[site]


class Hooks(TypedDict):
    """Where an SAE reads (and a transcoder writes): TransformerLens names and HF module paths."""

    hook_name: str
    hook_name_out: str | None
    hf_hook_name: str | None
    hf_hook_name_out: str | None


def transcoder_hooks(layer: int, input_hook: str) -> Hooks:
    """The hooks of a Gemma MLP transcoder at `layer`: it reads the MLP's normalised input (TransformerLens
    `input_hook`, HF `pre_feedforward_layernorm.output`) and writes the MLP's normalised output
    (`blocks.L.hook_mlp_out`, HF `post_feedforward_layernorm.output`)."""
    return {
        "hook_name": input_hook,
        "hook_name_out": f"blocks.{layer}.hook_mlp_out",
        "hf_hook_name": f"model.layers.{layer}.pre_feedforward_layernorm.output",
        "hf_hook_name_out": f"model.layers.{layer}.post_feedforward_layernorm.output",
    }


@dataclass(frozen=True)
class GemmaScope2Key:
    """Where a Gemma Scope 2 leaf sits: site folder (`resid_post`, `transcoder_all`, ...), layer, width label,
    L0 label (`small`, `medium`, `big`) and whether it is an affine (skip) transcoder."""

    site: str
    layer: int
    width: str
    l0: str
    affine: bool

    @property
    def kind(self) -> str:
        """The site without its `_all` suffix: `resid_post`, `attn_out`, `mlp_out` or `transcoder`."""
        return self.site.removesuffix("_all")

    @property
    def l0_label(self) -> str:
        """The L0 label as the picker shows it (`big`, or `big_affine` for an affine transcoder)."""
        return self.l0 + ("_affine" if self.affine else "")


_L0_LABELS = ("small", "medium", "big")


def l0_label_rank(label: str) -> tuple[int, int]:
    """Sort key of a Gemma Scope 2 L0 label: `small` < `medium` < `big`, each before its `_affine` variant."""
    base = label.removesuffix("_affine")
    return (_L0_LABELS.index(base) if base in _L0_LABELS else len(_L0_LABELS), int(label.endswith("_affine")))


def parse_leaf_2(folder: str) -> GemmaScope2Key | None:
    """The (site, layer, width, L0 label, affine) of a Gemma Scope 2 leaf folder, or None."""
    match = _LEAF2_RE.search(folder.strip("/"))
    if match is None:
        return None
    site, layer, width, l0, affine = match.groups()
    return GemmaScope2Key(site, int(layer), width, l0, affine is not None)


def gemma_scope_2_path(site: str, layer: int, width: int | str, l0: str, affine: bool = False) -> str:
    """The repo folder of one Gemma Scope 2 SAE, e.g. `resid_post/layer_12_width_16k_l0_small`."""
    return f"{site}/layer_{int(layer)}_width_{width_label(width)}_l0_{l0}" + ("_affine" if affine else "")


def parse_repo_2(text: str | None) -> str | None:
    """The Gemma 3 model a Gemma Scope 2 repo or path names (`google/gemma-scope-2-1b-pt` → `google/gemma-3-1b-pt`;
    the 270m model has no `-pt` suffix), else None."""
    match = _REPO2_RE.search(text or "")
    if not match:
        return None
    size, variant = match.groups()
    if size == "270m" and variant == "pt":
        return "google/gemma-3-270m"
    return f"google/gemma-3-{size}-{variant}"


def gemma_scope_2_hooks(key: GemmaScope2Key) -> Hooks:
    """The hooks SAELens gives a Gemma Scope 2 site (TransformerLens names and the HF module paths)."""
    layer = key.layer
    if key.kind == "transcoder":
        return transcoder_hooks(layer, f"blocks.{layer}.hook_mlp_in")
    hook, hf = {
        "resid_post": (f"blocks.{layer}.hook_resid_post", f"model.layers.{layer}.output"),
        "attn_out": (f"blocks.{layer}.attn.hook_z", f"model.layers.{layer}.self_attn.o_proj.input"),
        "mlp_out": (f"blocks.{layer}.hook_mlp_out", f"model.layers.{layer}.post_feedforward_layernorm.output"),
    }[key.kind]
    return {"hook_name": hook, "hook_name_out": None, "hf_hook_name": hf, "hf_hook_name_out": None}


def gemma_scope_path(layer: int | None, width: int | str, l0: int) -> str:
    """The repo folder of one Gemma Scope SAE, e.g. `layer_12/width_16k/average_l0_82` (layer None → embedding)."""
    head = "embedding" if layer is None else f"layer_{layer}"
    return f"{head}/width_{width_label(width)}/average_l0_{int(l0)}"


def resolve_choice(keys: list[GemmaScopeKey], layer: int | None, width: int | str, l0: int) -> str:
    """Validate (layer, width, L0) against the leaves a repo holds; NotFoundError lists the valid choices."""
    label = width_label(width)
    layers = sorted({k.layer for k in keys}, key=lambda v: -1 if v is None else v)
    if layer not in layers:
        shown = ", ".join("embedding" if v is None else str(v) for v in layers) or "none"
        raise NotFoundError(f"layer {layer} is not in this Gemma Scope repo; layers available: {shown}")
    at_layer = [k for k in keys if k.layer == layer]
    widths = sorted({k.width for k in at_layer}, key=width_features)
    if label not in widths:
        raise NotFoundError(f"width {label} is not available at layer {layer}; widths: {', '.join(widths)}")
    l0s = sorted(k.l0 for k in at_layer if k.width == label)
    if int(l0) not in l0s:
        raise NotFoundError(
            f"average L0 {l0} is not available at layer {layer}, width {label}; "
            f"L0 choices: {', '.join(map(str, l0s))}"
        )
    return gemma_scope_path(layer, label, l0)


def resolve_choice_2(keys: list[GemmaScope2Key], site: str, layer: int, width: int | str, l0: str) -> str:
    """Validate (site, layer, width, L0 label such as `small` or `big_affine`) against the Gemma Scope 2 leaves a
    repo holds and return the leaf's folder; NotFoundError lists the valid choices at the first step that fails."""
    label = width_label(width)
    sites = sorted({k.site for k in keys})
    if site not in sites:
        raise NotFoundError(f"site {site!r} is not in this Gemma Scope 2 repo; sites: {', '.join(sites) or 'none'}")
    at_site = [k for k in keys if k.site == site]
    layers = sorted({k.layer for k in at_site})
    if layer not in layers:
        raise NotFoundError(f"layer {layer} is not in {site}; layers available: {', '.join(map(str, layers))}")
    at_layer = [k for k in at_site if k.layer == layer]
    widths = sorted({k.width for k in at_layer}, key=width_features)
    if label not in widths:
        raise NotFoundError(f"width {label} is not available in {site} at layer {layer}; widths: {', '.join(widths)}")
    choices = [k for k in at_layer if k.width == label]
    match = next((k for k in choices if k.l0_label == l0), None)
    if match is None:
        shown = sorted({k.l0_label for k in choices}, key=l0_label_rank)
        raise NotFoundError(f"L0 {l0!r} is not available in {site} at layer {layer}, width {label}; "
                            f"L0 choices: {', '.join(shown)}")
    return gemma_scope_2_path(match.site, match.layer, match.width, match.l0, match.affine)

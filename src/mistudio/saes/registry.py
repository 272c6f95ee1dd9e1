"""SAELens's public registry of pretrained SAEs (`pretrained_saes.yaml`): releases, their repos and SAE paths.

The registry is read from the installed `sae-lens` package when there is one (located without importing it:
importing sae_lens pulls in transformer_lens) and otherwise from the copy shipped in `mistudio/data/`
(`pretrained_saes.yaml` + `pretrained_saes.source.json`, refreshed with `scripts/refresh_registry.py`).
The YAML is large (≈1.5 MB, ≈14k SAEs; parsing takes ≈0.5–1 s), so it is parsed once into a compact JSON form
cached under `MISTUDIO_HOME/cache/` (keyed by the file's SHA-256) and held in memory after the first use.

`apply_registry_data` writes what the registry knows about one SAE onto its `SAEConfig`: the release's
`config_overrides` onto the config fields, the Neuronpedia id, the model when the files do not name it, and
`extra["registry"]` / `extra["norm_scaling_factor"]` (folded into the weights when the SAE is read).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mistudio.errors import InvalidInputError, NotFoundError
from mistudio.fsutil import atomic_write_bytes
from mistudio.saes.model import NORMALIZATIONS, SAEConfig, layer_from_hook_name
from mistudio.settings import get_settings

REGISTRY_FILENAME = "pretrained_saes.yaml"
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "data"
SHIPPED_REGISTRY = SHIPPED_DIR / REGISTRY_FILENAME
SHIPPED_SOURCE = SHIPPED_DIR / "pretrained_saes.source.json"
REFRESH_COMMAND = "python scripts/refresh_registry.py"
_CACHE_FORMAT = 1
_SAE_KEYS = ("id", "path", "l0", "variance_explained", "neuronpedia", "norm_scaling_factor")
_MAX_LISTED = 8

__all__ = [
    "Registry",
    "RegistrySAE",
    "RegistrySource",
    "Release",
    "ReleaseSummary",
    "apply_registry_data",
    "get_registry",
    "installed_source",
    "load_registry",
    "shipped_source",
]


class RegistrySAE(BaseModel):
    """One SAE of a release: its id, where it lives in the release's repo, and what the registry says of it."""

    id: str = Field(description="The SAE id inside its release (SAELens's `sae_id`)")
    path: str = Field(description="Folder, file or file stem of the SAE inside the release's repo")
    l0: float | None = Field(None, description="Average number of active features per token, per the registry")
    variance_explained: float | None = None
    neuronpedia: str | None = Field(None, description="Neuronpedia id, e.g. gpt2-small/0-res-jb")
    norm_scaling_factor: float | None = Field(
        None, description="Dataset activation-norm scaling factor folded into the weights at load time")


class ReleaseSummary(BaseModel):
    """A release without its SAE list (what a search returns)."""

    name: str
    repo_id: str
    model: str
    conversion_func: str | None = Field(None, description="SAELens loader; None for the SAELens format")
    family: str = Field(description="The loader family: the conversion_func, or 'saelens'")
    n_saes: int


class Release(BaseModel):
    """A SAELens release: one repo, one model, a loader, optional config overrides, and its SAEs."""

    name: str
    repo_id: str
    model: str
    conversion_func: str | None = None
    config_overrides: dict[str, Any] = Field(default_factory=dict)
    links: dict[str, str] = Field(default_factory=dict)
    saes: list[RegistrySAE]

    @property
    def family(self) -> str:
        """The loader family: the conversion_func, or `saelens` for SAELens-format releases."""
        return self.conversion_func or "saelens"

    def summary(self) -> ReleaseSummary:
        """The release without its SAE list."""
        return ReleaseSummary(name=self.name, repo_id=self.repo_id, model=self.model,
                              conversion_func=self.conversion_func, family=self.family, n_saes=len(self.saes))

    def sae(self, sae_id: str) -> RegistrySAE:
        """The SAE with id `sae_id`.

        Raises:
            NotFoundError: the release has no such SAE (the message lists a few valid ids).
        """
        for entry in self.saes:
            if entry.id == sae_id:
                return entry
        near = [s.id for s in self.saes if sae_id.lower() in s.id.lower()] or [s.id for s in self.saes]
        raise NotFoundError(f"release {self.name!r} has no SAE {sae_id!r}; its SAE ids include: "
                            f"{', '.join(near[:_MAX_LISTED])} (`mistudio sae browse {self.name}` lists them all)")


@dataclass(frozen=True)
class RegistrySource:
    """Where a registry file came from: the installed sae-lens, or the copy shipped with miStudio."""

    path: Path
    sae_lens_version: str
    origin: str  # "installed" | "shipped"


def installed_source() -> RegistrySource | None:
    """The installed sae-lens's registry file, found without importing sae_lens; None when not installed."""
    try:
        spec = importlib.util.find_spec("sae_lens")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / REGISTRY_FILENAME
        if path.is_file():
            try:
                version = importlib.metadata.version("sae-lens")
            except importlib.metadata.PackageNotFoundError:
                version = "unknown"
            return RegistrySource(path=path, sae_lens_version=version, origin="installed")
    return None


def shipped_source() -> RegistrySource:
    """The registry copy shipped with miStudio and the sae-lens version it was taken from."""
    version = json.loads(SHIPPED_SOURCE.read_text())["sae_lens_version"] if SHIPPED_SOURCE.is_file() else "unknown"
    return RegistrySource(path=SHIPPED_REGISTRY, sae_lens_version=str(version), origin="shipped")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _compact(raw: dict[str, Any]) -> dict[str, Any]:
    """The parsed YAML reduced to what the registry serves; each SAE as a positional list (`_SAE_KEYS`)."""
    releases: dict[str, Any] = {}
    for name, value in raw.items():
        if not isinstance(value, dict) or "repo_id" not in value or not isinstance(value.get("saes"), list):
            continue
        saes = [[str(s["id"]), str(s["path"]), _number(s.get("l0")), _number(s.get("variance_explained")),
                 _text(s.get("neuronpedia")), _number(s.get("norm_scaling_factor"))]
                for s in value["saes"] if isinstance(s, dict) and "id" in s and "path" in s]
        releases[str(name)] = {
            "repo_id": str(value["repo_id"]), "model": str(value.get("model") or ""),
            "conversion_func": _text(value.get("conversion_func")),
            "config_overrides": value.get("config_overrides") or {},
            "links": {str(k): str(v) for k, v in (value.get("links") or {}).items()}, "saes": saes,
        }
    return releases


def _parse_yaml(data: bytes) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    raw = yaml.load(data, Loader=loader)  # noqa: S506 - a safe loader
    if not isinstance(raw, dict):
        raise InvalidInputError("the SAELens registry file is not a mapping of release names to releases")
    return _compact(raw)


def _cache_path(digest: str) -> Path:
    return get_settings().home / "cache" / f"sae-lens-registry-{_CACHE_FORMAT}-{digest[:24]}.json"


def _load_compact(path: Path) -> tuple[dict[str, Any], str]:
    """The compact form of the registry file at `path` (from the cache when there) and the file's SHA-256."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    cache = _cache_path(digest)
    try:
        return json.loads(cache.read_bytes()), digest
    except (OSError, ValueError):
        pass
    releases = _parse_yaml(data)
    with contextlib.suppress(OSError):  # a read-only home: parse again next time
        atomic_write_bytes(cache, json.dumps(releases, separators=(",", ":")).encode())
    return releases, digest


class Registry:
    """The releases of one registry file, with lookups by name, text, repo and (repo, path)."""

    def __init__(self, source: RegistrySource, releases: dict[str, Any], sha256: str) -> None:
        self.source = source
        self.sha256 = sha256
        self._raw = releases
        self._built: dict[str, Release] = {}

    @property
    def sae_lens_version(self) -> str:
        """The sae-lens version the registry file belongs to."""
        return self.source.sae_lens_version

    def names(self) -> list[str]:
        """Every release name, in the file's order."""
        return list(self._raw)

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __len__(self) -> int:
        return len(self._raw)

    def release(self, name: str) -> Release:
        """The release called `name`.

        Raises:
            NotFoundError: no release has that name (the message suggests close names).
        """
        built = self._built.get(name)
        if built is not None:
            return built
        raw = self._raw.get(name)
        if raw is None:
            near = [s.name for s in self.search(name, limit=_MAX_LISTED)]
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise NotFoundError(f"no SAELens release named {name!r}{hint} (`mistudio sae releases QUERY` "
                                "searches them)")
        built = Release.model_construct(
            name=name, repo_id=raw["repo_id"], model=raw["model"], conversion_func=raw["conversion_func"],
            config_overrides=raw["config_overrides"], links=raw["links"],
            saes=[RegistrySAE.model_construct(**dict(zip(_SAE_KEYS, row, strict=True))) for row in raw["saes"]],
        )
        self._built[name] = built
        return built

    def summaries(self) -> list[ReleaseSummary]:
        """Every release without its SAE list, in the file's order."""
        return [self._summary(name) for name in self._raw]

    def _summary(self, name: str) -> ReleaseSummary:
        raw = self._raw[name]
        return ReleaseSummary.model_construct(name=name, repo_id=raw["repo_id"], model=raw["model"],
                                              conversion_func=raw["conversion_func"],
                                              family=raw["conversion_func"] or "saelens", n_saes=len(raw["saes"]))

    def search(self, query: str | None = None, limit: int | None = None) -> list[ReleaseSummary]:
        """Releases whose name, repo id, model or family contain every word of `query` (case-insensitive).

        Exact names come first, then names starting with the query, then the rest by name; no query lists all."""
        words = (query or "").lower().split()
        if not words:
            found = self.summaries()
            return found[:limit] if limit is not None else found
        q = (query or "").strip().lower()
        hits = []
        for name, raw in self._raw.items():
            text = f"{name} {raw['repo_id']} {raw['model']} {raw['conversion_func'] or 'saelens'}".lower()
            if all(w in text for w in words):
                lname = name.lower()
                rank = 0 if lname == q else 1 if lname.startswith(q) else 2 if q in lname else 3
                hits.append((rank, name))
        hits.sort()
        names = [name for _, name in hits][:limit] if limit is not None else [name for _, name in hits]
        return [self._summary(name) for name in names]

    @cached_property
    def _by_repo(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for name, raw in self._raw.items():
            index.setdefault(raw["repo_id"].lower(), []).append(name)
        return index

    def releases_for_repo(self, repo_id: str) -> list[Release]:
        """The releases whose SAEs live in `repo_id` (case-insensitive, as the Hub treats repo ids)."""
        return [self.release(name) for name in self._by_repo.get(repo_id.lower(), [])]

    def lookup(self, repo_id: str, path: str) -> tuple[Release, RegistrySAE] | None:
        """The release and SAE that point at `path` of `repo_id`, or None.

        `path` may be the registry path itself, its folder or one of its files (`layer_3/ae.pt` finds
        `layer_3`, `W_enc_0.safetensors` does not find `0`: give the registry path for file stems). When several
        releases list the same path (a canonical release beside the full one) the entry with a Neuronpedia id
        wins, then the first in the file."""
        wanted = path.strip("/")
        matches: list[tuple[int, int, Release, RegistrySAE]] = []
        for order, release in enumerate(self.releases_for_repo(repo_id)):
            for entry in release.saes:
                registry_path = entry.path.strip("/")
                if wanted == registry_path or (registry_path and wanted.startswith(registry_path + "/")):
                    matches.append((0 if entry.neuronpedia else 1, order, release, entry))
        if not matches:
            return None
        matches.sort(key=lambda m: (m[0], m[1]))
        return matches[0][2], matches[0][3]

    def registry_data(self, release: Release, sae: RegistrySAE) -> dict[str, Any]:
        """What `cfg.extra["registry"]` records for `sae` of `release` (keys without a value left out)."""
        data: dict[str, Any] = {
            "release": release.name, "sae_id": sae.id, "repo_id": release.repo_id, "path": sae.path,
            "conversion_func": release.conversion_func, "model": release.model, "neuronpedia": sae.neuronpedia,
            "l0": sae.l0, "variance_explained": sae.variance_explained,
            "norm_scaling_factor": sae.norm_scaling_factor,
            "config_overrides": copy.deepcopy(release.config_overrides) or None,
            "sae_lens_version": self.sae_lens_version,
        }
        return {key: value for key, value in data.items() if value is not None}


def load_registry(source: RegistrySource) -> Registry:
    """Read the registry file of `source` (through the compact cache)."""
    releases, digest = _load_compact(source.path)
    return Registry(source, releases, digest)


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The process-wide registry: the installed sae-lens's when there is one, else the shipped copy.

    Raises:
        NotFoundError: neither sae-lens is installed nor the shipped copy is present (a broken install).
    """
    source = installed_source()
    if source is None:
        source = shipped_source()
        if not source.path.is_file():
            raise NotFoundError(f"the SAELens registry is missing: neither sae-lens is installed nor "
                                f"{SHIPPED_REGISTRY} is present; reinstall miStudio or `pip install sae-lens`")
    return load_registry(source)


_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(SAEConfig)) - {"extra", "d_in", "d_sae"}


def apply_registry_data(cfg: SAEConfig, data: dict[str, Any]) -> None:
    """Write the registry's knowledge of one SAE (`Registry.registry_data`) onto `cfg`, as SAELens does.

    The release's `config_overrides` replace the matching config fields (others go into `cfg.extra`); the
    Neuronpedia id goes to `cfg.neuronpedia_id`; the registry's model names the model when the files do not;
    the norm scaling factor is kept at `cfg.extra["norm_scaling_factor"]` and the whole record at
    `cfg.extra["registry"]`.

    Raises:
        InvalidInputError: an override sets `normalize_activations` to a mode miStudio does not run.
    """
    for key, value in (data.get("config_overrides") or {}).items():
        if key in _CONFIG_FIELDS:
            if key == "normalize_activations" and value not in NORMALIZATIONS:
                raise InvalidInputError(f"the registry sets normalize_activations to {value!r} for "
                                        f"{data.get('release')}/{data.get('sae_id')}; supported: "
                                        f"{', '.join(NORMALIZATIONS)}")
            setattr(cfg, key, copy.deepcopy(value))
            if key == "hook_name":
                cfg.hook_layer = layer_from_hook_name(value)
        else:
            cfg.extra[key] = copy.deepcopy(value)
    if not cfg.model_name and data.get("model"):
        cfg.model_name = data["model"]
    if data.get("neuronpedia"):
        cfg.neuronpedia_id = data["neuronpedia"]
    if data.get("norm_scaling_factor") is not None:
        cfg.extra["norm_scaling_factor"] = data["norm_scaling_factor"]
    cfg.extra["registry"] = copy.deepcopy(data)

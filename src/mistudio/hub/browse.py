"""List the SAEs a Hub repo holds, with shapes, sizes and memory estimates, before downloading any weights."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel, Field

from mistudio.errors import CorruptFileError, InvalidInputError, NotFoundError, UnknownFormatError
from mistudio.hub.client import connect, hub_errors, resolve_commit
from mistudio.hub.layout import sae_files
from mistudio.hub.remote_files import RemoteFiles
from mistudio.saes.formats import Inspection, classify_paths, inspect_at
from mistudio.saes.gemma_scope_paths import l0_label_rank, parse_leaf, parse_leaf_2, width_features

_HEADER_WORKERS = 8
_ITEMSIZES = {"float64": 8, "int64": 8, "float32": 4, "int32": 4, "float16": 2, "bfloat16": 2, "int16": 2}


class RepoFileInfo(BaseModel):
    """A file of the repo and its size in bytes."""

    path: str
    size: int


class MemoryEstimate(BaseModel):
    """Parameter count and the bytes the weights take at their own dtype, in fp16 and in fp32."""

    n_params: int
    bytes_at_dtype: int
    bytes_fp16: int
    bytes_fp32: int


class HubSAE(BaseModel):
    """One SAE found in a repo, described from its config and file headers only."""

    path: str = Field(description="Where the SAE is in the repo: its folder ('' for the repo root), or the file or "
                                  "file stem that is this SAE when one folder holds several (as SAELens's registry "
                                  "names it)")
    format: str = Field(description="The format's name (see `mistudio.saes.formats.FORMAT_NAMES`)")
    files: list[RepoFileInfo] = Field(description="The files a download of this SAE fetches")
    download_bytes: int = Field(description="Total size of `files`")
    d_in: int | None = None
    d_sae: int | None = None
    architecture: str | None = None
    dtype: str | None = None
    k: int | None = Field(None, description="Active features per token (TopK SAEs)")
    layer: int | None = None
    hook_name: str | None = None
    model_name: str | None = None
    width: str | None = Field(None, description="Gemma Scope width label, e.g. 16k")
    l0: int | None = Field(None, description="Gemma Scope average L0")
    l0_label: str | None = Field(None, description="Gemma Scope 2 L0 label: small, medium, big (big_affine: affine)")
    site: str | None = Field(None, description="Gemma Scope 2 site folder (resid_post, mlp_out_all, transcoder, ...)")
    d_out: int | None = Field(None, description="Transcoders: the output width")
    hook_name_out: str | None = Field(None, description="Transcoders: the hook they write")
    hf_hook_name: str | None = Field(None, description="The HF module path read, as SAELens records it")
    hf_hook_name_out: str | None = Field(None, description="Transcoders: the HF module path written")
    shapes_known: bool = Field(True, description="False when the weights are a pickle whose header cannot be read "
                                                 "remotely: the shapes come from the config and are checked after "
                                                 "download")
    config: dict[str, Any] | None = Field(None, description="The SAE's config file as the source wrote it")
    tensors: dict[str, list[int]] = Field(default_factory=dict, description="Tensor name → shape, from file headers")
    memory: MemoryEstimate | None = None
    error: str | None = Field(None, description="Why the SAE's files could not be read, when they could not")


class GemmaScopeL0(BaseModel):
    """One L0 choice: Gemma Scope's average L0, or Gemma Scope 2's label (`small`, `medium`, `big`, `big_affine`)."""

    l0: int | None = None
    label: str | None = None
    path: str


class GemmaScopeWidth(BaseModel):
    width: str
    d_sae: int | None
    l0s: list[GemmaScopeL0]


class GemmaScopeLayer(BaseModel):
    """One layer (`layer` None is the `embedding` folder) with its widths and L0 choices; Gemma Scope 2 layers
    also name their site folder (one repo holds several sites)."""

    site: str | None = None
    layer: int | None
    widths: list[GemmaScopeWidth]


class RepoListing(BaseModel):
    """Everything `browse_repo` learned about a repo at one commit."""

    repo_id: str
    endpoint: str = Field(description="The Hub endpoint the listing came from")
    revision: str | None = Field(description="The revision asked for (None: the default branch)")
    commit_sha: str = Field(description="The commit the listing describes")
    n_files: int
    total_bytes: int = Field(description="Size of all the repo's files")
    saes: list[HubSAE]
    gemma_scope: list[GemmaScopeLayer] = Field(
        default_factory=list,
        description="Gemma Scope leaves grouped layer → width → L0 (Gemma Scope 2: per site folder, L0 labels)")

    def sae(self, path: str) -> HubSAE:
        """The SAE at `path`; NotFoundError naming a few valid paths otherwise."""
        path = path.strip("/")
        for entry in self.saes:
            if entry.path == path:
                return entry
        sample = ", ".join(e.path or "." for e in self.saes[:10]) or "none"
        raise NotFoundError(f"no SAE at {path!r} in {self.repo_id}@{self.commit_sha[:10]}; SAEs there include: {sample}")


def browse_repo(repo_id: str, revision: str | None = None, token: str | None = None, *,
                endpoint: str | None = None, path_prefix: str | None = None) -> RepoListing:
    """List every SAE of `repo_id` at `revision` (default branch if None) with shapes read from file headers.

    `path_prefix` limits the listing to SAEs under one folder (useful for huge repos)."""
    conn = connect(endpoint, token)
    commit = resolve_commit(conn, repo_id, revision)
    sizes = commit.sizes
    paths = sorted(sizes)
    prefix = (path_prefix or "").strip("/")
    found = [(folder, fmt) for folder, fmt in classify_paths(paths)
             if not prefix or folder == prefix or folder.startswith(prefix + "/")]

    remote = RemoteFiles(conn, repo_id, commit.sha, sizes)

    def describe(item: tuple[str, str]) -> HubSAE | None:
        location, fmt = item
        files = [RepoFileInfo(path=p, size=sizes[p]) for p in sae_files(location, fmt, paths)]
        entry = HubSAE(path=location, format=fmt, files=files, download_bytes=sum(f.size for f in files))
        with hub_errors(conn, repo_id, revision):
            try:
                inspection = inspect_at(remote, location, fmt, {"repo_id": repo_id, "path_in_repo": location})
            except UnknownFormatError as exc:
                if fmt == "mistudio":
                    return None  # an ordinary model's config.json + model.safetensors, not an SAE
                entry.error = exc.message
                return entry
            except (CorruptFileError, InvalidInputError) as exc:
                entry.error = exc.message
                return entry
        _fill(entry, inspection)
        return entry

    with ThreadPoolExecutor(max_workers=_HEADER_WORKERS) as pool:
        saes = [e for e in pool.map(describe, found) if e is not None]
    return RepoListing(
        repo_id=repo_id, endpoint=conn.endpoint, revision=revision, commit_sha=commit.sha, n_files=len(paths),
        total_bytes=sum(sizes.values()), saes=saes, gemma_scope=_gemma_scope_tree(saes),
    )


def _fill(entry: HubSAE, inspection: Inspection) -> None:
    """Set an entry's fields from what the format's inspector found."""
    cfg = inspection.config
    entry.d_in, entry.d_sae, entry.architecture, entry.dtype = cfg.d_in, cfg.d_sae, cfg.architecture, cfg.dtype
    entry.k = int(cfg.k) if cfg.k is not None else None
    entry.layer, entry.hook_name, entry.model_name = cfg.hook_layer, cfg.hook_name, cfg.model_name
    entry.d_out, entry.hook_name_out = cfg.d_out, cfg.hook_name_out
    entry.hf_hook_name, entry.hf_hook_name_out = cfg.hf_hook_name, cfg.hf_hook_name_out
    entry.config = inspection.source_config
    entry.shapes_known = inspection.shapes_known
    if inspection.tensors:
        entry.tensors = {name: list(t.shape) for name, t in inspection.tensors.items()}
        entry.dtype = next(iter(inspection.tensors.values())).dtype
        numels = {name: _numel(t.shape) for name, t in inspection.tensors.items()}
        n = sum(numels.values())
        at_dtype = sum(numels[name] * _ITEMSIZES.get(t.dtype, 4) for name, t in inspection.tensors.items())
    else:
        n = inspection.n_params()
        at_dtype = n * _ITEMSIZES.get(cfg.dtype, 4)
    entry.memory = MemoryEstimate(n_params=n, bytes_at_dtype=at_dtype, bytes_fp16=2 * n, bytes_fp32=4 * n)
    if (key := parse_leaf(entry.path)) is not None and entry.format == "gemma_scope":
        entry.layer, entry.width, entry.l0 = key.layer, key.width, key.l0
    if (key2 := parse_leaf_2(entry.path)) is not None and entry.format == "gemma_scope_2":
        entry.site, entry.width, entry.l0_label = key2.site, key2.width, key2.l0_label


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for dim in shape:
        n *= dim
    return n


def _gemma_scope_tree(saes: list[HubSAE]) -> list[GemmaScopeLayer]:
    """Group Gemma Scope leaves as layer → width → L0 choices (sorted numerically); Gemma Scope 2 leaves are
    grouped the same way within each site folder, after Gemma Scope 1's, L0 labels ordered small → big."""
    tree: dict[tuple[str, int | None], dict[str, list[tuple[tuple[int, int], GemmaScopeL0, HubSAE]]]] = {}
    for entry in saes:
        if entry.width is None:
            continue
        if entry.format == "gemma_scope" and entry.l0 is not None:
            choice, order = GemmaScopeL0(l0=entry.l0, path=entry.path), (entry.l0, 0)
            site = ""
        elif entry.format == "gemma_scope_2" and entry.l0_label is not None and entry.site is not None:
            choice = GemmaScopeL0(label=entry.l0_label, path=entry.path)
            order, site = l0_label_rank(entry.l0_label), entry.site
        else:
            continue
        tree.setdefault((site, entry.layer), {}).setdefault(entry.width, []).append((order, choice, entry))
    return [
        GemmaScopeLayer(site=site or None, layer=layer, widths=[
            GemmaScopeWidth(width=width, d_sae=leaves[0][2].d_sae,
                            l0s=[choice for _, choice, _ in sorted(leaves, key=lambda item: item[0])])
            for width, leaves in sorted(tree[(site, layer)].items(), key=lambda kv: width_features(kv[0]))
        ])
        for site, layer in sorted(tree, key=lambda key: (key[0], -1 if key[1] is None else key[1]))
    ]

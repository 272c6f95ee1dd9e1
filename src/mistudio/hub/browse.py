"""List the SAEs a Hub repo holds, with shapes, sizes and memory estimates, before downloading any weights."""

from __future__ import annotations

import posixpath
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel, Field

from mistudio.errors import CorruptFileError, NotFoundError
from mistudio.hub import remote_files as rf
from mistudio.hub.client import HubConnection, connect, hub_errors, resolve_commit
from mistudio.hub.layout import SPARSIFY_REPO_CONFIG, sae_files
from mistudio.hub.remote_files import TensorHeader
from mistudio.saes.formats import classify_paths
from mistudio.saes.gemma_scope_paths import parse_leaf, width_features
from mistudio.saes.model import layer_from_hook_name

NATIVE_FORMAT_TAG = "mistudio-sae"
_HEADER_WORKERS = 8
_DICTIONARY_LEARNING_ARCH = {
    "AutoEncoder": "standard", "AutoEncoderTopK": "topk", "GatedAutoEncoder": "gated",
    "JumpReluAutoEncoder": "jumprelu", "BatchTopKSAE": "jumprelu", "MatryoshkaBatchTopKSAE": "jumprelu",
}


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

    path: str = Field(description="Folder of the SAE inside the repo ('' for the repo root)")
    format: str = Field(description="saelens, gemma_scope, sparsify, dictionary_learning or mistudio")
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
    config: dict[str, Any] | None = Field(None, description="The SAE's config file as the source wrote it")
    tensors: dict[str, list[int]] = Field(default_factory=dict, description="Tensor name → shape, from file headers")
    memory: MemoryEstimate | None = None
    error: str | None = Field(None, description="Why the SAE's files could not be read, when they could not")


class GemmaScopeL0(BaseModel):
    l0: int
    path: str


class GemmaScopeWidth(BaseModel):
    width: str
    d_sae: int | None
    l0s: list[GemmaScopeL0]


class GemmaScopeLayer(BaseModel):
    """One layer folder (`layer` None is the `embedding` folder) with its widths and L0 choices."""

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
    gemma_scope: list[GemmaScopeLayer] = Field(default_factory=list,
                                               description="Gemma Scope leaves grouped layer → width → L0")

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

    def describe(item: tuple[str, str]) -> HubSAE | None:
        folder, fmt = item
        files = [RepoFileInfo(path=p, size=sizes[p]) for p in sae_files(folder, fmt, paths)]
        entry = HubSAE(path=folder, format=fmt, files=files, download_bytes=sum(f.size for f in files))
        with hub_errors(conn, repo_id, revision):
            try:
                return _INSPECTORS[fmt](conn, repo_id, commit.sha, entry, sizes)
            except CorruptFileError as exc:
                entry.error = exc.message
                return entry

    with ThreadPoolExecutor(max_workers=_HEADER_WORKERS) as pool:
        saes = [e for e in pool.map(describe, found) if e is not None]
    return RepoListing(
        repo_id=repo_id, endpoint=conn.endpoint, revision=revision, commit_sha=commit.sha, n_files=len(paths),
        total_bytes=sum(sizes.values()), saes=saes, gemma_scope=_gemma_scope_tree(saes),
    )


def _fill_from_tensors(entry: HubSAE, tensors: dict[str, TensorHeader], enc: str, enc_is_transposed: bool) -> None:
    """Set d_in/d_sae from the encoder shape, the dtype from the tensors, and the memory estimate."""
    entry.tensors = {name: list(t.shape) for name, t in tensors.items()}
    if enc in tensors and len(tensors[enc].shape) == 2:
        rows, cols = tensors[enc].shape
        entry.d_in, entry.d_sae = (cols, rows) if enc_is_transposed else (rows, cols)
    if tensors:
        entry.dtype = entry.dtype or next(iter(tensors.values())).dtype
        n = sum(t.numel for t in tensors.values())
        entry.memory = MemoryEstimate(n_params=n, bytes_at_dtype=sum(t.nbytes for t in tensors.values()),
                                      bytes_fp16=2 * n, bytes_fp32=4 * n)


def _estimate_memory(entry: HubSAE, n_params: int, itemsize: int = 4) -> None:
    entry.memory = MemoryEstimate(n_params=n_params, bytes_at_dtype=itemsize * n_params,
                                  bytes_fp16=2 * n_params, bytes_fp32=4 * n_params)


def _sub_object(doc: dict[str, Any], key: str) -> dict[str, Any]:
    """`doc[key]` when it is a JSON object, else an empty one."""
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _join(folder: str, name: str) -> str:
    return posixpath.join(folder, name) if folder else name


def _inspect_saelens(conn: HubConnection, repo_id: str, sha: str, entry: HubSAE,
                     sizes: dict[str, int]) -> HubSAE:
    cfg = rf.fetch_json(conn, repo_id, _join(entry.path, "cfg.json"), sha)
    meta = _sub_object(cfg, "metadata")
    entry.config = cfg
    entry.hook_name = meta.get("hook_name") or cfg.get("hook_name") or cfg.get("hook_point")
    entry.model_name = meta.get("model_name") or cfg.get("model_name")
    entry.layer = cfg.get("hook_layer", cfg.get("hook_point_layer")) or layer_from_hook_name(entry.hook_name)
    kwargs = cfg.get("activation_fn_kwargs") or {}
    entry.k = cfg.get("k") or kwargs.get("k")
    entry.dtype = cfg.get("dtype")
    tensors = rf.safetensors_headers(conn, repo_id, _join(entry.path, "sae_weights.safetensors"), sha)
    _fill_from_tensors(entry, tensors, "W_enc", enc_is_transposed=False)
    arch = cfg.get("architecture")
    if arch is None:
        arch = "topk" if cfg.get("activation_fn_str", cfg.get("activation_fn")) == "topk" else (
            "jumprelu" if "threshold" in tensors else "standard")
    entry.architecture = arch
    return entry


def _inspect_gemma_scope(conn: HubConnection, repo_id: str, sha: str, entry: HubSAE,
                         sizes: dict[str, int]) -> HubSAE:
    npz = _join(entry.path, "params.npz")
    tensors = rf.npz_headers(conn, repo_id, npz, sha, sizes[npz])
    _fill_from_tensors(entry, tensors, "W_enc", enc_is_transposed=False)
    entry.architecture = "jumprelu"
    key = parse_leaf(entry.path)
    if key is not None:
        entry.layer, entry.width, entry.l0 = key.layer, key.width, key.l0
    return entry


def _inspect_sparsify(conn: HubConnection, repo_id: str, sha: str, entry: HubSAE,
                      sizes: dict[str, int]) -> HubSAE:
    cfg = rf.fetch_json(conn, repo_id, _join(entry.path, "cfg.json"), sha)
    entry.config = cfg
    entry.architecture, entry.k = "topk", cfg.get("k")
    match = re.search(r"(\d+)$", posixpath.basename(entry.path))
    entry.layer = int(match.group(1)) if match else None
    run_cfg = _join(posixpath.dirname(entry.path), SPARSIFY_REPO_CONFIG)
    if run_cfg in sizes:
        model = rf.fetch_json(conn, repo_id, run_cfg, sha).get("model")
        entry.model_name = model if isinstance(model, str) else None
    tensors = rf.safetensors_headers(conn, repo_id, _join(entry.path, "sae.safetensors"), sha)
    _fill_from_tensors(entry, tensors, "encoder.weight", enc_is_transposed=True)
    return entry


def _inspect_dictionary_learning(conn: HubConnection, repo_id: str, sha: str, entry: HubSAE,
                                 sizes: dict[str, int]) -> HubSAE:
    cfg = rf.fetch_json(conn, repo_id, _join(entry.path, "config.json"), sha)
    trainer = _sub_object(cfg, "trainer")
    entry.config = cfg
    entry.d_in, entry.d_sae = trainer.get("activation_dim"), trainer.get("dict_size")
    entry.architecture = _DICTIONARY_LEARNING_ARCH.get(trainer.get("dict_class", ""))
    entry.k, entry.layer, entry.model_name = trainer.get("k"), trainer.get("layer"), trainer.get("lm_name")
    if entry.d_in and entry.d_sae:  # ae.pt is a pickle: estimate from the config (fp32 weights, biases)
        entry.dtype = "float32"
        _estimate_memory(entry, 2 * entry.d_in * entry.d_sae + entry.d_in + entry.d_sae)
    return entry


def _inspect_native(conn: HubConnection, repo_id: str, sha: str, entry: HubSAE,
                    sizes: dict[str, int]) -> HubSAE | None:
    doc = rf.fetch_json(conn, repo_id, _join(entry.path, "config.json"), sha)
    if doc.get("format") != NATIVE_FORMAT_TAG:
        return None  # an ordinary model's config.json + model.safetensors, not an SAE
    cfg = _sub_object(doc, "config")
    entry.config = doc
    entry.architecture, entry.k, entry.dtype = cfg.get("architecture"), cfg.get("k"), cfg.get("dtype")
    entry.hook_name, entry.model_name, entry.layer = cfg.get("hook_name"), cfg.get("model_name"), cfg.get("hook_layer")
    tensors = rf.safetensors_headers(conn, repo_id, _join(entry.path, "model.safetensors"), sha)
    _fill_from_tensors(entry, tensors, "W_enc", enc_is_transposed=False)
    return entry


_INSPECTORS = {
    "saelens": _inspect_saelens,
    "gemma_scope": _inspect_gemma_scope,
    "sparsify": _inspect_sparsify,
    "dictionary_learning": _inspect_dictionary_learning,
    "mistudio": _inspect_native,
}


def _gemma_scope_tree(saes: list[HubSAE]) -> list[GemmaScopeLayer]:
    """Group Gemma Scope leaves as layer → width → L0 choices (sorted numerically)."""
    tree: dict[int | None, dict[str, list[tuple[int, HubSAE]]]] = {}
    for entry in saes:
        if entry.format == "gemma_scope" and entry.width is not None and entry.l0 is not None:
            tree.setdefault(entry.layer, {}).setdefault(entry.width, []).append((entry.l0, entry))
    return [
        GemmaScopeLayer(layer=layer, widths=[
            GemmaScopeWidth(width=width, d_sae=leaves[0][1].d_sae,
                            l0s=[GemmaScopeL0(l0=l0, path=e.path) for l0, e in sorted(leaves, key=lambda le: le[0])])
            for width, leaves in sorted(tree[layer].items(), key=lambda kv: width_features(kv[0]))
        ])
        for layer in sorted(tree, key=lambda v: -1 if v is None else v)
    ]

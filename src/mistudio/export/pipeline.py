"""The export pipeline: dashboards → staged folder (batch by batch, resumable) → checks → deterministic zip."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mistudio import __version__
from mistudio.errors import ExportValidationError, InvalidInputError
from mistudio.export import feature_json, layout, saelens
from mistudio.export.archive.checksums import write_sha256sums
from mistudio.export.archive.deterministic_zip import zip_folder
from mistudio.export.archive.jsonio import dumps, jsonl
from mistudio.export.archive.packs import PackedEntry
from mistudio.export.batches import BatchItem, BatchWriter, run_batches
from mistudio.export.config import EXPORT_VERSION, ExportConfig
from mistudio.export.incremental import BaseExport, prepared_from_document, unchanged_features
from mistudio.export.neuronpedia import activation_shards, bulk_rows, explanation_names, saedashboard_batches
from mistudio.export.neuronpedia.ids import NeuronpediaIds, resolve_ids
from mistudio.export.prepare import ExplanationDoc
from mistudio.export.public_names import PublicNames, resolve_public_names
from mistudio.export.readme import readme_text
from mistudio.export.selection import select_features
from mistudio.export.source import (
    DashboardSource,
    LogitLens,
    NeuronpediaSource,
    StoreNeuronpedia,
    dataset_name,
    manifest_value,
    missing_neuronpedia_message,
)
from mistudio.export.workers import default_workers, warm_up
from mistudio.extraction.neuronpedia_pass import feature_batch_bounds
from mistudio.fsutil import atomic_write_bytes
from mistudio.saes.model import SAE

STAGES = ["Validating SAE data", "Loading activation examples", "Computing logit lens data",
          "Computing histograms", "Aggregating tokens", "Writing JSON files", "Creating archive"]
# dashboard parts each preparation stage needs from the feature store
STAGE_PARTS = {"Loading activation examples": "top_examples", "Computing logit lens data": "logit_lens",
               "Computing histograms": "histograms", "Aggregating tokens": "vocab"}
_STATE = ".state"
# bump when the work folder's layout changes, so a resumed export never mixes an older version's batches
_WORK_FORMAT = 2


@dataclass
class SAEInfo:
    """Catalog facts about the SAE that go into metadata.json."""

    sae_id: str
    model_name: str | None
    hook_name: str | None
    layer: int | None
    d_in: int
    d_sae: int
    architecture: str
    training_dataset: str | None = None
    n_training_tokens: int | None = None
    l0: float | None = None
    explained_variance: float | None = None

    @classmethod
    def from_sae(cls, sae: SAE, sae_id: str) -> SAEInfo:
        """Facts read from an SAE's config (`extra` may hold l0 / variance explained / training info)."""
        cfg, extra = sae.cfg, sae.cfg.extra or {}
        return cls(sae_id=sae_id, model_name=cfg.model_name, hook_name=cfg.hook_name, layer=cfg.hook_layer,
                   d_in=cfg.d_in, d_sae=cfg.d_sae, architecture=cfg.architecture,
                   training_dataset=cfg.dataset_path, n_training_tokens=extra.get("n_training_tokens"),
                   l0=extra.get("l0", extra.get("average_l0")),
                   explained_variance=extra.get("explained_variance", extra.get("variance_explained")))


@dataclass
class ExportInputs:
    """Everything an export reads."""

    source: DashboardSource
    info: SAEInfo
    sae: SAE | None = None
    explanations: dict[int, list[ExplanationDoc]] = field(default_factory=dict)
    labels: dict[int, tuple[str | None, str | None]] = field(default_factory=dict)
    extraction_id: str | None = None
    compute_part: Callable[[str], None] | None = None  # fills a missing feature-store part
    neuronpedia: NeuronpediaSource | None = None  # SAEDashboard's numbers, for every Neuronpedia output


def public_names(inputs: ExportInputs, cfg: ExportConfig) -> PublicNames:
    """The model and dataset ids the archive writes (never local paths) and the model's shape.

    Raises:
        InvalidInputError: a local model or dataset without `model_id` / `dataset_id` to name it.
    """
    manifest = inputs.source.manifest
    return resolve_public_names(
        sae_model=inputs.info.model_name, extraction_model=manifest_value(manifest, "model"),
        dataset=dataset_name(manifest), training_dataset=inputs.info.training_dataset, model_id=cfg.model_id,
        dataset_id=cfg.dataset_id, model_shape=manifest.get("model_shape"))


def check_neuronpedia_data(inputs: ExportInputs, cfg: ExportConfig) -> None:
    """Refuse a Neuronpedia export of a feature store without the Neuronpedia data.

    Raises:
        ExportValidationError: the store was extracted before the Neuronpedia pass existed.
    """
    if cfg.wants_neuronpedia and (inputs.neuronpedia is None or not inputs.neuronpedia.has_neuronpedia_data()):
        raise ExportValidationError(missing_neuronpedia_message(inputs.info.sae_id))


@dataclass
class ExportCallbacks:
    """How the pipeline reports: stage starts, progress, cancellation checks (no-ops by default)."""

    stage: Callable[[str], None] = lambda name: None
    progress: Callable[[float, str | None], None] = lambda fraction, message: None
    check_cancelled: Callable[[], None] = lambda: None


def _batch_marker(state: Path, k: int) -> Path:
    """The work folder's record of finished batch `k` (its result), read back when a crashed export resumes."""
    return state / f"batch-{k}.json"


def _fingerprint(inputs: ExportInputs, cfg: ExportConfig) -> str:
    ident = [_WORK_FORMAT, inputs.info.sae_id, inputs.extraction_id, inputs.source.n_features, cfg.content_dict(),
             cfg.base_export, sorted((k, v) for k, v in inputs.explanations.items())]
    return hashlib.sha256(dumps(ident)).hexdigest()


def _created_at(inputs: ExportInputs, cfg: ExportConfig) -> str:
    return cfg.created_at or str(manifest_value(inputs.source.manifest, "created_at",
                                                default="1970-01-01T00:00:00+00:00"))


def build_export(inputs: ExportInputs, cfg: ExportConfig, out_zip: Path, work_dir: Path,
                 callbacks: ExportCallbacks | None = None) -> dict[str, Any]:
    """Run the whole export into `out_zip` (atomically). `work_dir` keeps finished batches, so calling again after
    a crash resumes from the last finished batch and produces the same bytes."""
    callbacks = callbacks or ExportCallbacks()
    started = time.monotonic()
    timings: dict[str, float] = {}
    t_stage = [started]

    def stage(name: str) -> None:
        now = time.monotonic()
        if timings or name != STAGES[0]:
            timings[_current[0]] = round(now - t_stage[0], 3)
        _current[0], t_stage[0] = name, now
        callbacks.stage(name)

    _current = [STAGES[0]]
    stage(STAGES[0])
    source, info = inputs.source, inputs.info
    if source.n_features != info.d_sae:
        raise InvalidInputError(f"the feature store has {source.n_features} features but the SAE has {info.d_sae}; "
                                "it belongs to another SAE — run a new extraction")
    if cfg.wants_saelens and inputs.sae is None:
        raise InvalidInputError("a SAELens export needs the SAE weights; they could not be loaded")
    names = public_names(inputs, cfg)
    check_neuronpedia_data(inputs, cfg)
    ids = resolve_ids(cfg, model_name=names.model, layer=info.layer, hook_name=info.hook_name, d_sae=info.d_sae)
    summary = source.summary_arrays()
    selected = select_features(cfg.selection, source.n_features, summary, inputs.labels)
    base = BaseExport(Path(cfg.base_export)) if cfg.base_export else None
    reuse = set() if base is None else unchanged_features(
        base, extraction_id=inputs.extraction_id, config=cfg.content_dict(), explanations=inputs.explanations)
    indices = sorted(set(selected) | (base.indices if base else set()))
    bounds = feature_batch_bounds(len(indices), cfg.batch_size)  # split as SAEDashboard's runner splits them
    batches = [indices[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]
    workers = default_workers(len(indices), cfg.workers)
    if workers > 1:
        warm_up()

    work_dir = Path(work_dir)
    stage_dir, state = work_dir / "stage", work_dir / _STATE
    fingerprint = _fingerprint(inputs, cfg)
    if (state / "fingerprint").exists() and (state / "fingerprint").read_text() != fingerprint:
        shutil.rmtree(work_dir)
    state.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(state / "fingerprint", fingerprint.encode())

    for name, part in STAGE_PARTS.items():
        callbacks.check_cancelled()
        stage(name)
        _ensure_part(inputs, part)

    stage("Writing JSON files")
    manifest = source.manifest
    n_prompts = int(manifest_value(manifest, "n_windows", "n_prompts", default=0))
    context_size = int(manifest_value(manifest, "context_size", default=0))
    created_at = _created_at(inputs, cfg)
    rows = bulk_rows.SharedRowValues(ids=ids, creator_id=cfg.creator_id, created_at=created_at,
                                     dataset=names.dataset)
    writer = BatchWriter(stage_dir, cfg, ids, rows, n_prompts, context_size, work_dir / "scratch",
                         n_shards=max(1, len(batches)))
    merge_share = 0.15 if cfg.wants_neuronpedia else 0.0  # of the stage's progress: ordering activation rows
    results: dict[int, dict[str, Any]] = {}
    todo: list[tuple[int, Callable[[], list[BatchItem]]]] = []
    store_path = _store_path(inputs.source) if base is None else None
    for k, batch in enumerate(batches):
        marker = _batch_marker(state, k)
        if marker.exists():
            results[k] = json.loads(marker.read_text())
        elif store_path is not None:
            todo.append((k, StoreBatch(store_path, batch, _dashboard_options(cfg), _explanations_of(inputs, cfg, batch),
                                       _np_lens(cfg))))
        else:
            todo.append((k, functools.partial(_batch_items, inputs, cfg, batch, reuse, base)))

    def done(k: int, result: dict[str, Any]) -> None:
        atomic_write_bytes(_batch_marker(state, k), dumps(result))
        results[k] = result
        n_done = sum(len(batches[j]) for j in results)
        callbacks.progress((1 - merge_share) * len(results) / len(batches), f"features: {n_done} / {len(indices)}")

    # workers read a feature store themselves; other sources (and a base export, a zip read through one shared
    # file offset) are read here and the items sent
    run_batches(writer, todo, workers, done, callbacks.check_cancelled, load_in_workers=store_path is not None)
    results_list = [results[k] for k in range(len(batches))]
    if cfg.wants_neuronpedia:
        _merge_activations(writer, results_list, workers, callbacks, merge_share)

    stage("Creating archive")
    callbacks.check_cancelled()
    skipped = sorted(i for r in results_list for i in r["skipped"])
    meta = _metadata(inputs, cfg, ids, names, created_at, n_prompts, context_size, len(indices))
    release, sae_folder = _finish_stage(stage_dir, inputs, cfg, ids, rows, meta, indices, skipped, summary, base,
                                        names)
    if base is not None:
        base.close()
    packed = [PackedEntry.from_list(item) for r in results_list for item in r["packed"]]
    write_sha256sums(stage_dir, packed)
    zip_folder(stage_dir, Path(out_zip), workers=workers, progress=lambda f: callbacks.progress(f, "creating archive"),
               packed=packed)
    timings[_current[0]] = round(time.monotonic() - t_stage[0], 3)
    size = Path(out_zip).stat().st_size
    shutil.rmtree(work_dir, ignore_errors=True)
    return {"output_path": str(out_zip), "file_size_bytes": size, "feature_count": len(indices),
            "n_skipped": len(skipped), "n_reused": len(reuse & set(indices)),
            "n_warnings": sum(r["n_warnings"] for r in results_list),
            "warnings": [w for r in results_list for w in r["warnings"]][:50], "workers": workers, "neuronpedia": ids.to_dict(),
            "saelens": {"release": release, "sae_id": sae_folder} if cfg.wants_saelens else None,
            "timings": timings, "seconds": round(time.monotonic() - started, 3)}


def _merge_activations(writer: BatchWriter, results: list[dict[str, Any]], workers: int,
                       callbacks: ExportCallbacks, share: float) -> None:
    """Write the bulk-import activation files, rows grouped by prompt window (activation_shards)."""
    spills = {k: (writer.spill_path(k), [tuple(s) for s in r["activation_segments"]]) for k, r in enumerate(results)}
    folder = writer.stage / writer.rows.folder / "activations"

    def on_shard(done: int, total: int) -> None:
        callbacks.progress(1 - share + share * done / total, f"ordering activation rows by prompt: {done} / {total} files")

    activation_shards.merge_all(folder, spills, workers=workers, on_shard=on_shard,
                                check_cancelled=callbacks.check_cancelled)


def _ensure_part(inputs: ExportInputs, part: str) -> None:
    """Compute a dashboard part the store lacks, or fail saying what is missing."""
    has = getattr(inputs.source, "has", None)
    if has is None or has(part):
        return
    if inputs.compute_part is None:
        raise InvalidInputError(f"the feature store lacks '{part}' and it cannot be computed here; re-run the "
                                "extraction")
    inputs.compute_part(part)


def _dashboard_options(cfg: ExportConfig) -> dict[str, Any]:
    return {"n_examples": cfg.n_examples, "logit_k": cfg.logit_k, "n_bins": cfg.n_bins,
            "include_intervals": cfg.interval_examples}


def _explanations_of(inputs: ExportInputs, cfg: ExportConfig, batch: list[int]) -> dict[int, list[ExplanationDoc]]:
    if not cfg.include_explanations:
        return {}
    return {i: inputs.explanations[i] for i in batch if i in inputs.explanations}


def _store_path(source: DashboardSource) -> Path | None:
    """The folder of the feature store behind `source`, when it is one (worker processes then open it)."""
    path = getattr(getattr(source, "store", None), "path", None)
    return Path(path) if path is not None else None


def _np_lens(cfg: ExportConfig) -> LogitLens | None:
    """The logit lens of the Neuronpedia data to read, or None when the export has no Neuronpedia outputs."""
    return cfg.np_logit_lens if cfg.wants_neuronpedia else None


def _worker_source(path: Path) -> tuple[DashboardSource, NeuronpediaSource]:
    """The feature store at `path` as a dashboard source and a Neuronpedia source, opened once per (worker)
    process and again after its manifest changed (an extraction run again added parts)."""
    from mistudio.store.feature_store import MANIFEST

    return _opened_source(path, (path / MANIFEST).stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _opened_source(path: Path, manifest_stamp: int) -> tuple[DashboardSource, NeuronpediaSource]:
    from mistudio.dashboards.reader import StoreDashboards
    from mistudio.store.feature_store import open_store

    store = open_store(path)
    return StoreDashboards(store), StoreNeuronpedia(store)


@dataclass(frozen=True)
class StoreBatch:
    """A batch's dashboards (with explanations) read from the feature store at `store_path`; picklable, so a worker
    process loads its own batches instead of receiving them."""

    store_path: Path
    batch: list[int]
    options: dict[str, Any]
    explanations: dict[int, list[ExplanationDoc]]
    np_logit_lens: LogitLens | None = None  # None: no Neuronpedia outputs

    def __call__(self) -> list[BatchItem]:
        source, neuronpedia = _worker_source(self.store_path)
        return [(d, self.explanations.get(d["feature_index"], []),
                 _neuronpedia_feature(neuronpedia, d["feature_index"], self.np_logit_lens))
                for d in source.iter_dashboards(self.batch, **self.options)]


def _neuronpedia_feature(source: NeuronpediaSource | None, index: int,
                         lens: LogitLens | None) -> Mapping[str, Any] | None:
    """Feature `index`'s Neuronpedia data with logit lens `lens` (None when `lens` is None)."""
    if lens is None:
        return None
    if source is None:
        raise ExportValidationError("the export has no Neuronpedia data source; re-run the extraction")
    return source.neuronpedia_feature(index, logit_lens=lens)


def _batch_items(inputs: ExportInputs, cfg: ExportConfig, batch: list[int], reuse: set[int],
                 base: BaseExport | None) -> list[BatchItem]:
    """A batch's raw dashboards (with explanations) and the features reused from the base export, in order."""
    fresh = [i for i in batch if i not in reuse]
    dashboards = {d["feature_index"]: d for d in inputs.source.iter_dashboards(fresh, **_dashboard_options(cfg))}
    explanations = inputs.explanations if cfg.include_explanations else {}
    lens = _np_lens(cfg)
    out: list[BatchItem] = []
    for i in batch:
        np_feature = _neuronpedia_feature(inputs.neuronpedia, i, lens)
        if i in dashboards:
            out.append((dashboards[i], explanations.get(i, []), np_feature))
        else:
            assert base is not None
            reused = prepared_from_document(base.document(i), explanations.get(i, []))
            reused.neuronpedia = np_feature  # from the same extraction: the store holds it
            out.append(reused)
    return out


def _metadata(inputs: ExportInputs, cfg: ExportConfig, ids: NeuronpediaIds, names: PublicNames, created_at: str,
              n_prompts: int, context_size: int, n_features: int) -> dict[str, Any]:
    info, manifest = inputs.info, inputs.source.manifest
    return {
        "model_id": ids.model_id, "model_name": names.model, "sae_id": info.sae_id,
        "neuronpedia_id": ids.neuronpedia_id, "hook_point": info.hook_name, "d_sae": info.d_sae,
        "d_model": info.d_in, "n_layers": names.n_layers, "d_mlp": names.d_mlp,
        "architecture": info.architecture, "training_dataset": names.training_dataset,
        "n_training_tokens": info.n_training_tokens, "l0": info.l0, "explained_variance": info.explained_variance,
        "created_at": created_at, "miStudio_version": __version__, "export_version": EXPORT_VERSION,
        "feature_count": n_features,
        "extraction": {"extraction_id": inputs.extraction_id, "dataset": names.dataset,
                       "n_prompts": n_prompts, "context_size": context_size,
                       "n_tokens": manifest_value(manifest, "n_tokens"),
                       "prepend_bos": manifest_value(manifest, "prepend_bos")},
        "neuronpedia": ids.to_dict(),
        "export": cfg.content_dict(),
    }


def _finish_stage(stage: Path, inputs: ExportInputs, cfg: ExportConfig, ids: NeuronpediaIds,
                  rows: bulk_rows.SharedRowValues, meta: dict[str, Any], indices: list[int],
                  skipped: list[int], summary: dict[str, np.ndarray], base: BaseExport | None,
                  names: PublicNames) -> tuple[str, str]:
    """Write the non-batch files: metadata, explanations, Neuronpedia metadata rows, SAELens folder, README;
    return the SAELens release and the SAE's folder in it (where `pretrained_saes.yaml` says it is)."""
    atomic_write_bytes(stage / layout.METADATA, dumps(meta, indent=True) + b"\n")
    explanations = inputs.explanations if cfg.include_explanations else {}
    if base is not None and cfg.include_explanations:
        explanations = {**base.explanations, **explanations}
    chosen = set(indices)
    doc = feature_json.explanations_document((i, explanations[i]) for i in sorted(explanations) if i in chosen)
    (stage / layout.EXPLANATIONS).parent.mkdir(exist_ok=True)
    atomic_write_bytes(stage / layout.EXPLANATIONS, dumps(doc, indent=True) + b"\n")
    release = saelens.release_name(ids, cfg.release_name)
    sae_folder = saelens.sae_folder_id(inputs.sae, ids) if inputs.sae is not None else ids.source_id
    if cfg.wants_neuronpedia:
        (stage / layout.SKIPPED_INDEXES).parent.mkdir(exist_ok=True)
        atomic_write_bytes(stage / layout.SKIPPED_INDEXES,
                           dumps(saedashboard_batches.skipped_document(ids, skipped), sort_keys=False))
        meta_rows = bulk_rows.metadata_rows(
            rows, release_name=release, release_title=cfg.release_title or f"miStudio SAEs for {ids.model_id}",
            release_url=cfg.release_url, creator_name=cfg.creator_name,
            description=f"{inputs.info.architecture} SAE, {inputs.info.d_sae} features, {inputs.info.hook_name}",
            n_prompts=meta["extraction"]["n_prompts"], n_tokens_in_prompt=meta["extraction"]["context_size"],
            hf_repo_id=cfg.hf_repo_id, hf_folder_id=sae_folder, saelens_release=release, saelens_sae_id=sae_folder,
            n_layers=names.n_layers, neurons_per_layer=names.d_mlp)
        folder = stage / rows.folder
        folder.mkdir(parents=True, exist_ok=True)
        for name, row in meta_rows.items():
            atomic_write_bytes(folder / name, jsonl([row]))
        config = explanation_names.config_rows((e for i in sorted(explanations) if i in chosen
                                                for e in explanations[i]),
                                               creator_id=rows.creator_id, creator_name=cfg.creator_name,
                                               created_at=rows.created_at)
        for name, config_rows in config.items():
            if config_rows:
                (stage / layout.NP_CONFIG_DIR).mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(stage / layout.NP_CONFIG_DIR / name, jsonl(config_rows))
    if cfg.wants_saelens and inputs.sae is not None:
        target = stage / layout.SAELENS_DIR
        if target.exists():
            shutil.rmtree(target)
        saelens.write_saelens_folder(inputs.sae, target / "sae", ids, summary["frequency"], model_name=names.model,
                                     dataset_path=names.training_dataset)
        for item in sorted((target / "sae").iterdir()):
            item.rename(target / item.name)
        (target / "sae").rmdir()
        entry = saelens.pretrained_entry(inputs.sae, ids, release=release, hf_repo_id=cfg.hf_repo_id,
                                         l0=inputs.info.l0, variance_explained=inputs.info.explained_variance)
        atomic_write_bytes(stage / layout.SAELENS_PRETRAINED, saelens.pretrained_yaml(entry).encode())
    readme = readme_text(meta, n_features=len(indices), n_skipped=len(skipped), has_neuronpedia=cfg.wants_neuronpedia,
                         has_saelens=cfg.wants_saelens, release=release, saelens_sae_id=sae_folder,
                         hf_repo_id=cfg.hf_repo_id, compression=cfg.compression)
    atomic_write_bytes(stage / layout.README, readme.encode())
    return release, sae_folder

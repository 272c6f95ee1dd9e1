"""Writing one batch of features into the staged export folder — `features/`, the Neuronpedia batch file and
the bulk-import rows — serially or in a pool of worker processes (results are keyed by batch number, so the
bytes do not depend on the order batches finish in)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mistudio.dashboards.schemas import FeatureDashboard
from mistudio.errors import ExportValidationError
from mistudio.export import feature_json, layout
from mistudio.export.archive.jsonio import GZIP_LEVEL, dumps, gzip_bytes, jsonl
from mistudio.export.archive.packs import PackWriter
from mistudio.export.config import ExportConfig
from mistudio.export.neuronpedia import bulk_rows, saedashboard_batches
from mistudio.export.neuronpedia.activation_shards import Segment, spill_rows
from mistudio.export.neuronpedia.ids import NeuronpediaIds
from mistudio.export.prepare import ExplanationDoc, PreparedFeature, prepare_feature
from mistudio.export.validate.values import MIN_EXAMPLES, top_example_count
from mistudio.export.workers import pool_context

# one item of a batch: a dashboard with its explanations and its Neuronpedia data (None when the export has no
# Neuronpedia outputs), or a feature reused from a base export (its Neuronpedia data attached)
BatchItem = tuple[FeatureDashboard, list[ExplanationDoc], Mapping[str, Any] | None] | PreparedFeature


@dataclass(frozen=True)
class BatchWriter:
    """Writes one batch of features into the staged folder (picklable, so it runs in worker processes)."""

    stage: Path
    cfg: ExportConfig
    ids: NeuronpediaIds
    rows: bulk_rows.SharedRowValues
    n_prompts: int
    context_size: int  # tokens per prompt window
    scratch_dir: Path  # packed feature files and spilled activation rows wait here for packaging
    n_shards: int = 1  # bulk-import activation files

    def prepare(self, items: list[BatchItem]) -> list[PreparedFeature]:
        """Raw dashboards → prepared features (reused features pass through)."""
        feats = [item if isinstance(item, PreparedFeature) else
                 prepare_feature(item[0], top_tokens=self.cfg.top_tokens, explanations=item[1], neuronpedia=item[2])
                 for item in items]
        for feat in feats:  # the archive names the dataset by its public id, never a path on this machine
            for ex in feat.examples:
                if "source" in ex:
                    ex["source"]["dataset"] = self.rows.dataset
        return feats

    def write(self, k: int, items: list[BatchItem]) -> dict[str, Any]:
        """Write batch `k`; returns `{skipped, warnings, n_warnings, packed, activation_segments}` (`packed`: the
        batch's `features/` members, see archive.packs). The data is produced by our own
        preparation step (rounded, finite, rendered tokens), so only its structural invariants are checked here;
        the full validator runs on finished exports (`mistudio export validate`)."""
        feats = self.prepare(items)
        _check_invariants(feats)
        gz = self.cfg.compression == "gzip"
        pack = PackWriter(self.scratch_dir / f"features-{k}.pack", GZIP_LEVEL)
        for feat in feats:
            data = dumps(feature_json.feature_document(feat, include_top_tokens=self.cfg.top_tokens > 0,
                                                       include_token_ids=self.cfg.token_ids))
            pack.add(layout.feature_member(feat.index, gz), gzip_bytes(data) if gz else data, deflate=not gz)
        packed = [entry.to_list() for entry in pack.close()]
        if self.cfg.wants_neuronpedia:
            live = [f for f in feats if f.neuronpedia_live]
            batch = [saedashboard_batches.batch_feature(_neuronpedia_of(f), dataset=self.rows.dataset) for f in live]
            if self.cfg.saedashboard_batches:
                batch_file = self.stage / layout.saedashboard_batch(k)
                batch_file.parent.mkdir(parents=True, exist_ok=True)
                batch_file.write_bytes(dumps(saedashboard_batches.batch_document(self.ids, batch), sort_keys=False))
            segments = self._write_rows(k, live, batch)
        else:
            segments = []
        warnings = [{"code": "too_few_examples", "location": f"{layout.feature_member(f.index, gz)}: activations",
                     "message": f"{top_example_count(f.examples)} top examples; Neuronpedia expects at least "
                                f"{MIN_EXAMPLES} for a live feature", "fix": "extract over more tokens, or accept a sparse dashboard",
                     "fixable": False, "severity": "warning"}
                    for f in feats if f.live and top_example_count(f.examples) < MIN_EXAMPLES]
        skipped = [f.index for f in feats if not (f.neuronpedia_live if self.cfg.wants_neuronpedia else f.live)]
        return {"skipped": skipped, "warnings": warnings[:50],
                "n_warnings": len(warnings), "packed": packed, "activation_segments": segments}

    def spill_path(self, k: int) -> Path:
        """Where batch `k`'s activation rows wait for the merge into window-ordered files."""
        return self.scratch_dir / f"activations-{k}.bin"

    def _write_rows(self, k: int, live: list[PreparedFeature], batch: list[dict[str, Any]]) -> list[Segment]:
        """Feature and explanation rows go straight to `batch-{k}.jsonl.gz`; activation rows are spilled for
        the merge by window (neuronpedia.activation_shards) and their segments returned."""
        folder = self.stage / self.rows.folder
        parts = {
            "features": [bulk_rows.feature_row(bf, _neuronpedia_of(f), self.rows)
                         for bf, f in zip(batch, live, strict=True)],
            "explanations": [r for f in live for r in bulk_rows.explanation_rows(f, self.rows)],
            "explanation_scores": [r for f in live for r in bulk_rows.explanation_score_rows(f, self.rows)],
        }
        for name, rows in parts.items():
            if rows:
                (folder / name).mkdir(parents=True, exist_ok=True)
                (folder / name / layout.bulk_batch_file(k)).write_bytes(gzip_bytes(jsonl(rows)))
        activations = [(n, r) for bf, f in zip(batch, live, strict=True)
                       for n, r in enumerate(bulk_rows.activation_rows(bf, _neuronpedia_of(f), self.rows))]
        if not activations:
            return []
        return spill_rows(self.spill_path(k), activations, batch=k, n_shards=self.n_shards, n_windows=self.n_prompts)


def _neuronpedia_of(feat: PreparedFeature) -> Mapping[str, Any]:
    """The feature's Neuronpedia data (present on every feature of a Neuronpedia export)."""
    if feat.neuronpedia is None:
        raise ExportValidationError(f"feature {feat.index} has no Neuronpedia data; re-run the extraction")
    return feat.neuronpedia


def _check_invariants(feats: list[PreparedFeature]) -> None:
    """Cheap structural checks of prepared features: one value per token, a live feature has examples."""
    problems = []
    for f in feats:
        if f.statistics.get("dead") is False and not f.examples:
            problems.append({"code": "empty_array", "location": f"feature {f.index}: activations",
                             "message": "a live feature has no examples", "fix": "re-run the extraction"})
        for n, ex in enumerate(f.examples):
            if len(ex["tokens"]) != len(ex["values"]) or not ex["values"]:
                problems.append({"code": "length_mismatch", "location": f"feature {f.index}: activations[{n}]",
                                 "message": f"{len(ex['tokens'])} tokens but {len(ex['values'])} values",
                                 "fix": "re-run the extraction; the feature store is inconsistent"})
        for n, act in enumerate((f.neuronpedia or {}).get("activations") or []):
            if len(act["tokens"]) != len(act["values"]) or not act["values"]:
                problems.append({"code": "length_mismatch",
                                 "location": f"feature {f.index}: neuronpedia activations[{n}]",
                                 "message": f"{len(act['tokens'])} tokens but {len(act['values'])} values",
                                 "fix": "re-run the extraction; the feature store is inconsistent"})
    if problems:
        first = problems[0]
        raise ExportValidationError(f"export failed validation: {len(problems)} problem(s), first: "
                                    f"{first['location']}: {first['message']}", details={"issues": problems[:100]})


def _write_loaded(writer: BatchWriter, k: int, load: Callable[[], list[BatchItem]]) -> dict[str, Any]:
    return writer.write(k, load())


def run_batches(writer: BatchWriter, batches: Sequence[tuple[int, Callable[[], list[BatchItem]]]], workers: int,
                on_done: Callable[[int, dict[str, Any]], None], check_cancelled: Callable[[], None], *,
                load_in_workers: bool = False) -> None:
    """Write every `(k, load_items)` batch, calling `on_done(k, result)` as each finishes. With `workers > 1`
    the batches are written by that many processes; with `load_in_workers` (the loaders are picklable and read
    their data themselves, e.g. from a feature store's files) the workers also load them, else this process loads
    them and sends the items. At most
    `workers + 1` batches are in flight, so memory stays bounded. A cancellation or error stops the pool first."""
    if workers <= 1:
        for k, load in batches:
            check_cancelled()
            on_done(k, writer.write(k, load()))
        return
    pool = ProcessPoolExecutor(workers, mp_context=pool_context())
    pending: dict[Future[dict[str, Any]], int] = {}

    def drain(limit: int) -> None:
        while len(pending) > limit:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=pending.__getitem__):
                on_done(pending.pop(fut), fut.result())

    try:
        for k, load in batches:
            check_cancelled()
            fut = pool.submit(_write_loaded, writer, k, load) if load_in_workers else pool.submit(writer.write, k, load())
            pending[fut] = k
            drain(workers)
        drain(0)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

"""The streaming dashboard engine: one pass over the windows computes every per-feature quantity.

For each batch of windows: the model runs up to the SAE's hook only (`lm.hooks.capture_activations`), the optional
activation transform is applied (TransformerLens weight-processing equivalence), then the SAE encodes the batch
`feature_chunk` features at a time (`SAE.encode_chunks`, which applies the SAE's own normalisation and
`apply_b_dec_to_input`), and each chunk is folded into the `Accumulator` on the same device. Peak memory is
O(batch × context × feature_chunk) plus the accumulator, whatever d_sae is. The accumulator also keeps, per
feature, a seeded uniform sample of the active windows (the candidates for the interval examples), so no second
pass is needed for them either.

A checkpoint (accumulator state + windows done) is written every `checkpoint_every` batches and when the run is
stopped (cancel/pause raised by the `check` callback), so a resumed run skips finished batches and ends with
the same arrays as an uninterrupted one. A CUDA out-of-memory error halves the batch and retries the same windows
from the feature chunk that failed (an accumulator update is all-or-nothing).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from mistudio.datasets.windows import Windows
from mistudio.errors import InvalidInputError
from mistudio.extraction.accumulator import Accumulator
from mistudio.extraction.finalize import write_accumulated, write_logit_lens, write_vocab
from mistudio.lm.tokens import special_token_ids
from mistudio.saes.model import SAE
from mistudio.store.feature_store import FeatureStore
from mistudio.store.fine_grid import FINE_BINS, LOG_MAX, LOG_MIN, QUANTILE_REL_ERROR

ProgressFn = Callable[[dict[str, Any]], None]


@dataclass
class ExtractionSettings:
    """Knobs of one extraction (part of the cache key, except the purely operational ones)."""

    top_k: int = 20
    batch_size: int = 32
    feature_chunk: int = 4096
    checkpoint_every: int = 50
    logit_k: int = 50
    logit_bins: int = 50
    compute_logit_lens: bool = True
    n_intervals: int = 5
    interval_examples: int = 5
    interval_reservoir: int = 0
    interval_seed: int = 0

    def reservoir_size(self) -> int:
        """Candidate windows kept per feature for interval examples: `interval_reservoir`, or by default
        4 × n_intervals × interval_examples (0 when interval examples are disabled)."""
        if self.interval_examples <= 0 or self.n_intervals <= 0:
            return 0
        return self.interval_reservoir or 4 * self.n_intervals * self.interval_examples

    def cache_fields(self) -> dict[str, Any]:
        """The fields that change the results."""
        return {"top_k": self.top_k, "logit_k": self.logit_k, "logit_bins": self.logit_bins,
                "n_intervals": self.n_intervals, "interval_examples": self.interval_examples,
                "interval_reservoir": self.reservoir_size(), "interval_seed": self.interval_seed}


def settings_key(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (the cache key of an extraction)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


class BatchEncoder:
    """Runs batches of windows through the model (up to the SAE's hook) and the SAE, feature chunk by feature
    chunk, and folds the activations into the accumulator; halves the batch on a CUDA out-of-memory error.

    Raises:
        InvalidInputError: the SAE's config names no hook.
    """

    def __init__(self, loaded: Any, sae: SAE, windows: Windows, settings: ExtractionSettings,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None, acc: Accumulator) -> None:
        self.loaded, self.sae, self.windows, self.settings = loaded, sae, windows, settings
        self.transform, self.acc = transform, acc
        self.batch_size = settings.batch_size
        self.device = acc.device
        self.special = torch.tensor(special_token_ids(loaded.tokenizer), dtype=torch.int64, device=self.device)
        if not sae.cfg.hook_name:
            raise InvalidInputError("the SAE does not say which hook it reads (no hook_name in its config)")
        self.hook: str = sae.cfg.hook_name
        self.head = sae.cfg.hook_head_index

    def _inputs(self, idx: torch.Tensor) -> torch.Tensor:
        from mistudio.lm.hooks import capture_activations

        tokens = self.windows.tokens[idx]
        acts = capture_activations(self.loaded, tokens, None, self.hook, head_index=self.head)
        if acts.ndim == 4:  # per-head hook (hook_z …) read by an SAE over all heads
            acts = acts.flatten(-2)
        if self.transform is not None:
            acts = self.transform(acts)
        return acts.to(self.sae.device)

    def process(self, idx: torch.Tensor, first_chunk: int = 0) -> None:
        """Fold windows `idx` into the accumulator, from feature chunk `first_chunk` on (OOM-safe)."""
        chunk = self.settings.feature_chunk
        done = first_chunk
        try:
            with torch.no_grad():
                x = self._inputs(idx)
                tokens = self.windows.tokens[idx].to(self.device)
                valid = ~torch.isin(tokens, self.special)
                for start, acts in self.sae.encode_chunks(x, chunk, start=done * chunk):
                    self.acc.update(acts.to(self.device), start, idx, valid)
                    if done == 0:
                        self.acc.count_tokens(valid)
                    done += 1
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not _is_oom(exc) or len(idx) == 1:
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            half = len(idx) // 2
            self.batch_size = max(1, half)
            self.process(idx[:half], done)
            self.process(idx[half:], done)


def run_extraction(loaded: Any, sae: SAE, windows: Windows, store_dir: str | Path, *,
                   settings: ExtractionSettings | None = None, manifest: dict[str, Any] | None = None,
                   transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   progress: ProgressFn | None = None, check: Callable[[], None] | None = None,
                   device: torch.device | str | None = None) -> FeatureStore:
    """Run (or resume, or reuse) the extraction into `store_dir` and return the completed FeatureStore."""
    settings = settings or ExtractionSettings()
    dev = torch.device(device) if device is not None else sae.device
    n, context_size = len(windows), windows.context_size
    key = settings_key(manifest or {}, settings.cache_fields(), n, context_size,
                       hashlib.sha256(windows.tokens.numpy().tobytes()).hexdigest())
    store = FeatureStore.create(store_dir, {
        **(manifest or {}), "settings": asdict(settings), "settings_key": key, "n_features": sae.cfg.d_sae,
        "n_windows": n, "context_size": context_size, "prepend_bos": windows.prepend_bos, "top_k": settings.top_k,
        "dataset": windows.dataset, "special_token_ids": special_token_ids(loaded.tokenizer),
        "histogram": {"log_min": LOG_MIN, "log_max": LOG_MAX, "fine_bins": FINE_BINS,
                      "quantile_rel_error": QUANTILE_REL_ERROR},
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    if store.manifest.get("status") == "completed":
        return store
    if not store.has("windows"):
        store.write_part("windows", {"tokens": windows.tokens.to(torch.int32), "document": windows.document,
                                     "offset": windows.offset})
    if n >= 2**31:
        raise InvalidInputError(f"{n} windows is too many for one extraction (at most 2**31 - 1)")
    acc = Accumulator(sae.cfg.d_sae, settings.top_k, context_size, dev, reservoir=settings.reservoir_size(),
                      seed=settings.interval_seed)
    start = 0
    checkpoint = store.load_checkpoint()
    if checkpoint is not None:
        acc.load_state_dict(checkpoint[0])
        start = checkpoint[1]
    encoder = BatchEncoder(loaded, sae, windows, settings, transform, acc)
    t0, tokens_done, batches = time.monotonic(), 0, 0
    pos = start
    while pos < n:
        if check is not None:
            try:
                check()
            except BaseException:
                store.save_checkpoint(acc.state_dict(), pos)
                raise
        idx = torch.arange(pos, min(pos + encoder.batch_size, n))
        encoder.process(idx)
        pos += len(idx)
        batches += 1
        tokens_done += len(idx) * context_size
        if batches % settings.checkpoint_every == 0 and pos < n:
            store.save_checkpoint(acc.state_dict(), pos)
        if progress is not None:
            elapsed = max(time.monotonic() - t0, 1e-9)
            rate = tokens_done / elapsed
            progress({"windows_done": pos, "n_windows": n, "fraction": pos / n, "tokens_per_s": rate,
                      "eta_s": (n - pos) * context_size / rate if rate else None, "batch_size": encoder.batch_size})
    elapsed = time.monotonic() - t0
    if progress is not None:
        progress({"windows_done": n, "n_windows": n, "fraction": 1.0, "stage": "finalising",
                  "tokens_per_s": tokens_done / max(elapsed, 1e-9), "eta_s": 0.0, "batch_size": encoder.batch_size})
    write_accumulated(store, acc, windows.tokens)
    write_vocab(store, loaded.tokenizer)
    if settings.compute_logit_lens:
        write_logit_lens(store, loaded, sae)
    store.clear_checkpoint()
    store.update_manifest(status="completed", n_tokens=int(acc.n_tokens),
                          finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          timings={"pass_s": round(elapsed, 3),
                                   "tokens_per_s": round(tokens_done / max(elapsed, 1e-9), 1)})
    return store

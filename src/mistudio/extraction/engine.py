"""The streaming dashboard engine: one pass over the windows computes every per-feature quantity.

For each batch of windows: the model runs up to the SAE's hook only (`lm.hooks.capture_many` stops the forward
pass there; a transcoder's input and output hooks are captured in the same pass), the optional activation
transform is applied (TransformerLens weight-processing equivalence, on the captured per-head shape; an SAE over
all heads then flattens them), then the SAE encodes the batch `feature_chunk` features at a time
(`SAE.encode_chunks`, which applies the SAE's own normalisation and `apply_b_dec_to_input`), and each chunk is
folded into the `Accumulator` on the same device and into the reconstruction error (`extraction.reconstruction`,
judged against a transcoder's output hook). Peak memory is O(batch × context × feature_chunk) plus the
accumulator, whatever d_sae is. The accumulator also keeps, per feature, a seeded uniform sample of the active
windows (the candidates for the interval examples), so no second pass is needed for them either.

A checkpoint (accumulator state + windows done, one atomic file) is written every `checkpoint_every` batches and
when the run is stopped (cancel/pause raised by the `check` callback), so a resumed run skips finished batches
and ends with the same arrays as an uninterrupted one. A CUDA out-of-memory error halves the batch and retries
the same windows from the feature chunk that failed (an accumulator update is all-or-nothing). The manifest
records the hooks captured, the window conventions, the input normalisation and the logit-lens basis.
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
from mistudio.extraction.neuronpedia_pass import (
    NEURONPEDIA_PART,
    neuronpedia_ignore_ids,
    run_neuronpedia_pass,
)
from mistudio.extraction.reconstruction import Reconstruction, measurable
from mistudio.extraction.related_weights import PART as WEIGHTS_PART
from mistudio.extraction.related_weights import write_neuronpedia_weights
from mistudio.extraction.sae_inputs import known_norm_factor, prepare_input, sae_hooks
from mistudio.extraction.window_loop import ProgressFn, halve_after_oom, run_window_loop
from mistudio.lm.tokens import special_token_ids
from mistudio.saes.model import SAE
from mistudio.store.feature_store import FeatureStore
from mistudio.store.fine_grid import FINE_BINS, LOG_MAX, LOG_MIN, QUANTILE_REL_ERROR

NEURONPEDIA_PARTS = (WEIGHTS_PART, NEURONPEDIA_PART)
Transform = Callable[[torch.Tensor], torch.Tensor]


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
    norm_sample_windows: int = 256
    reconstruction: bool = True
    neuronpedia: bool = True

    def reservoir_size(self) -> int:
        """Candidate windows kept per feature for interval examples: `interval_reservoir`, or by default
        4 × n_intervals × interval_examples (0 when interval examples are disabled)."""
        if self.interval_examples <= 0 or self.n_intervals <= 0:
            return 0
        return self.interval_reservoir or 4 * self.n_intervals * self.interval_examples

    def cache_fields(self) -> dict[str, Any]:
        """The fields that change the results (`reconstruction` adds a manifest entry only; `neuronpedia` adds a
        part, which a later run with it on computes for a completed store)."""
        fields = {"top_k": self.top_k, "logit_k": self.logit_k, "logit_bins": self.logit_bins,
                  "n_intervals": self.n_intervals, "interval_examples": self.interval_examples,
                  "interval_reservoir": self.reservoir_size(), "interval_seed": self.interval_seed}
        if self.norm_sample_windows != ExtractionSettings.norm_sample_windows:  # only when set: earlier keys hold
            fields["norm_sample_windows"] = self.norm_sample_windows
        return fields


def settings_key(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts (the cache key of an extraction)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


class BatchEncoder:
    """Runs batches of windows through the model (up to the SAE's hooks) and the SAE, feature chunk by feature
    chunk, and folds the activations into the accumulator (and the reconstruction error into `reconstruction`);
    halves the batch on a CUDA out-of-memory error.

    Raises:
        InvalidInputError: the SAE's config names no hook.
    """

    def __init__(self, loaded: Any, sae: SAE, windows: Windows, settings: ExtractionSettings,
                 transform: Transform | None, acc: Accumulator | None, *,
                 target_transform: Transform | None = None, reconstruction: Reconstruction | None = None,
                 device: torch.device | None = None) -> None:
        self.loaded, self.sae, self.windows, self.settings = loaded, sae, windows, settings
        self.transform, self.target_transform, self.acc = transform, target_transform, acc
        self.reconstruction = reconstruction
        self.batch_size = settings.batch_size
        self.device = acc.device if acc is not None else (device or sae.device)
        self.special = torch.tensor(special_token_ids(loaded.tokenizer), dtype=torch.int64, device=self.device)
        self.hook, self.hook_out = sae_hooks(sae)
        self.head = sae.cfg.hook_head_index

    def inputs(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The SAE's inputs for windows `idx` `[B, C, d_in]` and, for a transcoder, its target `[B, C, d_out]`
        (one forward pass, stopped after the last hook)."""
        from mistudio.lm.hooks import capture_many

        tokens = self.windows.tokens[idx]
        hooks = [self.hook] + ([self.hook_out] if self.hook_out else [])
        captured = capture_many(self.loaded, tokens, None, hooks)
        x = self._prepared(captured[self.hook], self.transform, self.head)
        target = None
        if self.hook_out is not None:
            target = self._prepared(captured[self.hook_out], self.target_transform, None)
        return x, target

    def _prepared(self, acts: torch.Tensor, transform: Transform | None, head: int | None) -> torch.Tensor:
        return prepare_input(acts, transform, head, self.hook, self.sae.device)

    def process(self, idx: torch.Tensor, first_chunk: int = 0, decoded: torch.Tensor | None = None) -> None:
        """Fold windows `idx` into the accumulator, from feature chunk `first_chunk` on (OOM-safe); `decoded`
        carries the reconstruction of the chunks already done."""
        acc = self.acc
        if acc is None:
            raise InvalidInputError("this encoder has no accumulator to fold activations into")
        chunk = self.settings.feature_chunk
        done = first_chunk
        rec = self.reconstruction
        try:
            with torch.no_grad():
                x, target = self.inputs(idx)
                tokens = self.windows.tokens[idx].to(self.device)
                valid = ~torch.isin(tokens, self.special)
                if rec is not None and decoded is None:
                    decoded = torch.zeros(*x.shape[:-1], self.sae.W_dec.shape[1], dtype=self.sae.dtype,
                                          device=self.sae.device)
                for start, acts in self.sae.encode_chunks(x, chunk, start=done * chunk):
                    part = rec.partial(self.sae, acts, start) if rec is not None else None
                    acc.update(acts.to(self.device), start, idx, valid)
                    if part is not None and decoded is not None:
                        decoded.add_(part)
                    done += 1
                acc.count_tokens(valid)  # once per call that got through every chunk (an OOM retry counts its halves)
                if rec is not None and decoded is not None:
                    rec.update(self.sae, decoded, x, target if target is not None else x, valid)
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            half = halve_after_oom(exc, idx)
            self.batch_size = max(1, half)
            self.process(idx[:half], done, decoded[:half] if decoded is not None else None)
            self.process(idx[half:], done, decoded[half:] if decoded is not None else None)


@torch.no_grad()
def estimate_norm_scaling_factor(encoder: BatchEncoder, n_windows: int) -> float:
    """SAELens's `expected_average_only_in` factor, `sqrt(d_in) / E‖x‖`, with the mean norm over every position
    (special tokens included, as SAELens's activation store does) of the SAE's inputs on the first `n_windows`
    windows.

    Raises:
        InvalidInputError: the inputs are all zero.
    """
    total, count = 0.0, 0
    n = min(n_windows, len(encoder.windows))
    for lo in range(0, n, encoder.batch_size):
        x, _ = encoder.inputs(torch.arange(lo, min(lo + encoder.batch_size, n)))
        norms = x.float().norm(dim=-1)
        total += float(norms.sum())
        count += norms.numel()
    mean_norm = total / max(count, 1)
    if not mean_norm > 0:
        raise InvalidInputError(f"the activations at {encoder.hook} are all zero; no norm scaling factor exists")
    return float(encoder.sae.cfg.d_in) ** 0.5 / mean_norm


def _normalization(store: FeatureStore, sae: SAE, encoder: BatchEncoder, settings: ExtractionSettings) -> None:
    """Fold an `expected_average_only_in` factor into the SAE (estimated once, kept in the manifest so a
    resumed run uses the same one) and record the input normalisation in the manifest."""
    recorded = store.manifest.get("normalization") or {}
    known = sae.cfg.extra.get("norm_scaling_factor")
    if sae.cfg.normalize_activations == "expected_average_only_in":
        # the release's factor (not folded at load), else the one recorded by an earlier run, else estimated
        entry = known_norm_factor(sae.cfg, recorded)
        if entry is None:
            entry = {"factor": estimate_norm_scaling_factor(encoder, settings.norm_sample_windows),
                     "source": "estimated", "sample_windows": min(settings.norm_sample_windows, len(encoder.windows))}
        sae.fold_activation_norm_scaling_factor(float(entry["factor"]))
        store.update_manifest(normalization={**entry, "mode": "expected_average_only_in"})
    elif not recorded:
        store.update_manifest(normalization={
            "mode": sae.cfg.normalize_activations, "factor": float(known) if known is not None else None,
            "source": "release, folded at load" if known is not None else None})


def _neuronpedia_parts(store: FeatureStore, loaded: Any, encoder: BatchEncoder, sae: SAE,
                       settings: ExtractionSettings, progress: ProgressFn | None, check: Callable[[], None] | None,
                       device: torch.device) -> None:
    """Write the Neuronpedia parts a completed first pass lacks: the weight-only fields, then the second pass."""
    if not store.has(WEIGHTS_PART):
        write_neuronpedia_weights(store, loaded, sae)
    if not store.has(NEURONPEDIA_PART):
        run_neuronpedia_pass(store, encoder, sae, settings, neuronpedia_ignore_ids(loaded.tokenizer),
                             progress=progress, check=check, device=device)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def run_extraction(loaded: Any, sae: SAE, windows: Windows, store_dir: str | Path, *,
                   settings: ExtractionSettings | None = None, manifest: dict[str, Any] | None = None,
                   transform: Transform | None = None, target_transform: Transform | None = None,
                   progress: ProgressFn | None = None, check: Callable[[], None] | None = None,
                   device: torch.device | str | None = None) -> FeatureStore:
    """Run (or resume, or reuse) the extraction into `store_dir` and return the completed FeatureStore.

    `transform` maps the captured input activations (as `lm.hooks.capture_activations` returns them) to the
    SAE's training distribution, `target_transform` a transcoder's output-hook activations. An SAE whose config
    says `normalize_activations: expected_average_only_in` gets its norm scaling factor estimated and folded in
    (in place, as SAELens does at load). A run stopped by `check` leaves a checkpoint and the manifest status
    `interrupted`; any other error leaves the status `failed` with the error in the manifest. With
    `settings.neuronpedia` the Neuronpedia pass (`extraction.neuronpedia_pass`) follows the completed first pass
    (its own checkpoint and `manifest["neuronpedia_pass"]` status); a completed store without its part gets
    only that pass.

    Raises:
        InvalidInputError: the SAE names no hook, or too many windows.
    """
    settings = settings or ExtractionSettings()
    dev = torch.device(device) if device is not None else sae.device
    n, context_size = len(windows), windows.context_size
    hook, hook_out = sae_hooks(sae)
    key = settings_key(manifest or {}, settings.cache_fields(), n, context_size,
                       hashlib.sha256(windows.tokens.numpy().tobytes()).hexdigest())
    store = FeatureStore.create(store_dir, {
        **(manifest or {}), "settings": asdict(settings), "settings_key": key, "n_features": sae.cfg.d_sae,
        "n_windows": n, "context_size": context_size, "prepend_bos": windows.prepend_bos, "top_k": settings.top_k,
        "dataset": windows.dataset, "special_token_ids": special_token_ids(loaded.tokenizer),
        "hooks": {"input": hook, "output": hook_out, "hook_name": sae.cfg.hook_name,
                  "hook_head_index": sae.cfg.hook_head_index, "transcoder": hook_out is not None},
        "windows": {"prepend_bos": windows.prepend_bos, "bos_token_id": windows.bos_token_id,
                    "separator_token_id": windows.separator_token_id,
                    "concat_sequences": windows.concat_sequences},
        "histogram": {"log_min": LOG_MIN, "log_max": LOG_MAX, "fine_bins": FINE_BINS,
                      "quantile_rel_error": QUANTILE_REL_ERROR},
        "created_at": _now()})
    if store.manifest.get("status") == "completed":
        if settings.neuronpedia and not all(store.has(part) for part in NEURONPEDIA_PARTS):  # made before they existed
            encoder = BatchEncoder(loaded, sae, windows, settings, transform, None,
                                   target_transform=target_transform, device=dev)
            _normalization(store, sae, encoder, settings)
            _neuronpedia_parts(store, loaded, encoder, sae, settings, progress, check, dev)
        return store
    store.update_manifest(status="running", error=None)
    interrupted = False
    try:
        if n >= 2**31:
            raise InvalidInputError(f"{n} windows is too many for one extraction (at most 2**31 - 1)")
        if not store.has("windows"):
            store.write_part("windows", {"tokens": windows.tokens.to(torch.int32), "document": windows.document,
                                         "offset": windows.offset})
        acc = Accumulator(sae.cfg.d_sae, settings.top_k, context_size, dev, reservoir=settings.reservoir_size(),
                          seed=settings.interval_seed)
        not_measured = measurable(sae) if settings.reconstruction else "disabled in the settings"
        rec = Reconstruction(int(sae.W_dec.shape[1]), dev) if not_measured is None else None
        encoder = BatchEncoder(loaded, sae, windows, settings, transform, acc, target_transform=target_transform,
                               reconstruction=rec)
        _normalization(store, sae, encoder, settings)

        def state() -> dict[str, torch.Tensor]:
            return {**acc.state_dict(), **(rec.state_dict() if rec is not None else {})}

        pos = 0
        checkpoint = store.load_checkpoint()
        if checkpoint is not None:
            acc.load_state_dict(checkpoint[0])
            if rec is not None:
                rec.load_state_dict(checkpoint[0])
            pos = checkpoint[1]

        def stopped(at: int) -> None:
            nonlocal interrupted
            interrupted = True
            store.update_manifest(status="interrupted", windows_done=at)

        loop = run_window_loop(n, context_size, pos, batch_size=lambda: encoder.batch_size, process=encoder.process,
                               save=lambda at: store.save_checkpoint(state(), at), stopped=stopped,
                               checkpoint_every=settings.checkpoint_every, check=check, progress=progress)
        elapsed, tokens_done = loop.elapsed_s, loop.tokens_done
        if progress is not None:
            progress({"windows_done": n, "n_windows": n, "fraction": 1.0, "stage": "finalising",
                      "tokens_per_s": loop.tokens_per_s, "eta_s": 0.0, "batch_size": encoder.batch_size})
        write_accumulated(store, acc, windows.tokens)
        write_vocab(store, loaded.tokenizer)
        if settings.compute_logit_lens:
            write_logit_lens(store, loaded, sae)
        reconstruction = {"target_hook": hook_out or hook, **(
            rec.result() if rec is not None else {"skipped": not_measured})}
        store.clear_checkpoint()
        store.update_manifest(status="completed", n_tokens=int(acc.n_tokens), finished_at=_now(),
                              reconstruction=reconstruction,
                              timings={"pass_s": round(elapsed, 3),
                                       "tokens_per_s": round(tokens_done / max(elapsed, 1e-9), 1)})
    except BaseException as exc:
        if not interrupted:
            store.update_manifest(status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    if settings.neuronpedia:
        _neuronpedia_parts(store, loaded, encoder, sae, settings, progress, check, dev)
    return store

"""The feature store: one folder per extraction (`features/{sae_id}/{extraction_id}/`).

Files (all written atomically, temp file then rename):
* `manifest.json` – settings, model, dataset, sizes, status, which parts are complete, timings;
* `windows.safetensors` – `tokens [n_windows, context_size]` int32, `document`, `offset` (provenance);
* `statistics.safetensors` – `count`, `sum`, `sumsq`, `max`, `min`, `n_tokens` (exact, over every selectable token);
* `histograms.safetensors` – fine-grid counts as CSR: `indptr [d_sae+1]`, `bins` int16, `counts` int32;
* `top_examples.safetensors` – `values [d_sae, K]`, `windows`, `positions`, `rows [d_sae, K, context_size]`;
* `interval_examples.safetensors` – per feature R sampled active windows, in unordered slots: `keys`,
  `windows` (-1 = empty slot), `positions`, `values` (window max) `[d_sae, R]`, `rows [d_sae, R, context_size]` float16;
* `logit_lens.safetensors` – `pos_ids/pos_vals/neg_ids/neg_vals [d_sae, k]`, `hist_counts`, `hist_min/max`;
* `summary.safetensors` – `top_token [d_sae]`; `vocab.json` – display string of every token id;
* `neuronpedia.safetensors` – the Neuronpedia pass (`extraction.neuronpedia_pass`), folded units, SAEDashboard's
  mask: `count`, `n_positions`, `fold`, `min` (non-zero), `max`, `hist_lo/hist_hi`, `hist [d_sae, 50]`, `band_edges [d_sae, 6]`,
  `band_counts [d_sae, 5]`, `band_keys/band_windows/band_positions [d_sae, 5, 5]`, `band_rows [d_sae, 5, 5, C]`,
  `top_values/top_windows/top_positions [d_sae, 20]`, `top_rows [d_sae, 20, C]`, `neuron_indices/neuron_pearson/
  neuron_cosine [d_sae, 3]`, `feature_indices/feature_pearson/feature_cosine [d_sae, 3]`;
* `checkpoint/state.safetensors` – accumulator state with the windows done in its metadata, one atomic file,
  while a run is in progress (removed when it completes); `checkpoint/neuronpedia.safetensors` the same for the
  Neuronpedia pass.
Per-feature reads slice the safetensors files (memory-mapped), so memory stays bounded whatever d_sae is.
"""

from __future__ import annotations

import json
import math
import shutil
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load, save

from mistudio.errors import InvalidInputError, NotFoundError
from mistudio.fsutil import atomic_write_bytes, atomic_write_text
from mistudio.store.fine_grid import FINE_BINS, QUANTILE_REL_ERROR, quantiles
from mistudio.store.schemas import Statistics

MANIFEST = "manifest.json"
CHECKPOINT = "checkpoint/state.safetensors"
PARTS = ("windows", "statistics", "histograms", "top_examples", "interval_examples", "logit_lens", "summary",
         "vocab", "neuronpedia_weights", "neuronpedia")


class FeatureStore:
    """Read/write access to one extraction's arrays (the dashboards are assembled from them by
    `mistudio.dashboards.reader`)."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self.manifest = manifest

    # ----- lifecycle --------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> FeatureStore:
        """Open an existing store; NotFoundError if there is none at `path`."""
        path = Path(path)
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise NotFoundError(f"no feature store at {path}") from exc
        return cls(path, manifest)

    @classmethod
    def create(cls, path: str | Path, manifest: dict[str, Any]) -> FeatureStore:
        """Create (or reuse, when the settings key matches) the store at `path`."""
        path = Path(path)
        if (path / MANIFEST).exists():
            existing = cls.open(path)
            if existing.manifest.get("settings_key") != manifest.get("settings_key"):
                raise InvalidInputError(f"{path} holds an extraction with other settings; use a new folder")
            return existing
        store = cls(path, {**manifest, "status": "running", "parts": {}})
        store.save_manifest()
        return store

    def save_manifest(self) -> None:
        """Write manifest.json atomically."""
        atomic_write_text(self.path / MANIFEST, json.dumps(self.manifest, indent=2, sort_keys=True, default=str))

    def update_manifest(self, **fields: Any) -> None:
        """Set manifest fields and save."""
        self.manifest.update(fields)
        self.save_manifest()

    # ----- arrays ------------------------------------------------------------------------------------------
    def has(self, part: str) -> bool:
        """Whether `part` (one of PARTS) is complete."""
        return bool(self.manifest.get("parts", {}).get(part))

    def write_part(self, part: str, tensors: dict[str, torch.Tensor]) -> None:
        """Write `{part}.safetensors` and mark the part complete."""
        atomic_write_bytes(self.path / f"{part}.safetensors",
                           save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))
        self.manifest.setdefault("parts", {})[part] = True
        self.save_manifest()
        self.__dict__.pop("_cache", None)

    def write_vocab(self, strings: list[str]) -> None:
        """Store the display string of every token id."""
        atomic_write_text(self.path / "vocab.json", json.dumps(strings, ensure_ascii=False))
        self.manifest.setdefault("parts", {})["vocab"] = True
        self.save_manifest()

    def read_part(self, part: str) -> dict[str, torch.Tensor]:
        """All arrays of `part` (loaded into memory).

        Raises:
            NotFoundError: the part is not complete yet.
        """
        self._require(part)
        return load((self.path / f"{part}.safetensors").read_bytes())

    def _require(self, part: str) -> None:
        if not self.has(part):
            raise NotFoundError(f"the feature store at {self.path} has no {part} yet (status "
                                f"{self.manifest.get('status')}); run or resume the extraction")

    def row(self, part: str, key: str, index: int) -> torch.Tensor:
        """Row `index` of array `key` in `part`, read through a memory map.

        Raises:
            NotFoundError: the part is not complete yet.
        """
        self._require(part)
        with safe_open(str(self.path / f"{part}.safetensors"), framework="pt") as fh:
            return fh.get_slice(key)[index]

    def rows(self, part: str, keys: tuple[str, ...], index: int) -> dict[str, torch.Tensor]:
        """Row `index` of each array in `keys` of `part`, read through one memory map.

        Raises:
            NotFoundError: the part is not complete yet.
        """
        self._require(part)
        with safe_open(str(self.path / f"{part}.safetensors"), framework="pt") as fh:
            return {key: fh.get_slice(key)[index] for key in keys}

    def array(self, part: str, key: str) -> torch.Tensor:
        """The whole array `key` of `part` (for small arrays and scalars), read through a memory map.

        Raises:
            NotFoundError: the part is not complete yet.
        """
        self._require(part)
        with safe_open(str(self.path / f"{part}.safetensors"), framework="pt") as fh:
            return fh.get_tensor(key)

    def windows(self) -> dict[str, torch.Tensor]:
        """The `windows` part (`tokens`, `document`, `offset`), loaded once and kept in memory.

        Raises:
            NotFoundError: the part is not complete yet.
        """
        if "windows" not in self._cache:
            self._cache["windows"] = self.read_part("windows")
        return self._cache["windows"]

    @cached_property
    def _cache(self) -> dict[str, Any]:
        return {}

    @property
    def vocab(self) -> list[str]:
        """Display strings of the token ids."""
        if "vocab" not in self._cache:
            self._require("vocab")
            self._cache["vocab"] = json.loads((self.path / "vocab.json").read_text(encoding="utf-8"))
        return self._cache["vocab"]

    @property
    def n_features(self) -> int:
        """Number of SAE features."""
        return int(self.manifest["n_features"])

    # ----- checkpoints -------------------------------------------------------------------------------------
    def _checkpoint_path(self, name: str) -> Path:
        return self.path / CHECKPOINT if name == "state" else self.path / "checkpoint" / f"{name}.safetensors"

    def save_checkpoint(self, state: dict[str, torch.Tensor], windows_done: int, name: str = "state") -> None:
        """Save accumulator state and the count of windows it covers as ONE file, written atomically (temp file
        then rename): a run stopped at any instant leaves either the previous checkpoint or this one, whole.
        `name` keeps one checkpoint per pass (`state`: the first pass)."""
        atomic_write_bytes(self._checkpoint_path(name),
                           save(state, metadata={"windows_done": str(int(windows_done))}))

    def load_checkpoint(self, name: str = "state") -> tuple[dict[str, torch.Tensor], int] | None:
        """The last checkpoint `name` (state, windows done), or None (also for a checkpoint of an older layout,
        whose state and progress were separate files and may disagree: the run then starts over)."""
        path = self._checkpoint_path(name)
        if not path.exists():
            return None
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
            if "windows_done" not in metadata:
                return None
            return {key: fh.get_tensor(key) for key in fh.keys()}, int(metadata["windows_done"])  # noqa: SIM118

    def clear_checkpoint(self, name: str | None = None) -> None:
        """Remove checkpoint `name` (after its pass completed), or the whole checkpoint folder."""
        if name is None:
            shutil.rmtree(self.path / "checkpoint", ignore_errors=True)
        else:
            self._checkpoint_path(name).unlink(missing_ok=True)

    # ----- per-feature reads -------------------------------------------------------------------------------
    def check_index(self, index: int) -> None:
        """Raise NotFoundError unless `index` is a feature of this store.

        Raises:
            NotFoundError: `index` is outside `0 .. n_features - 1`.
        """
        if not 0 <= index < self.n_features:
            raise NotFoundError(f"feature {index} does not exist (this SAE has {self.n_features} features)")

    def fine_counts(self, index: int) -> np.ndarray:
        """Fine-grid histogram counts of feature `index`."""
        if "hist" not in self._cache:
            self._cache["hist"] = self.read_part("histograms")
        h = self._cache["hist"]
        lo, hi = int(h["indptr"][index]), int(h["indptr"][index + 1])
        counts = np.zeros(FINE_BINS, dtype=np.int64)
        counts[h["bins"][lo:hi].long().numpy()] = h["counts"][lo:hi].numpy()
        return counts

    def statistics(self, index: int) -> Statistics:
        """Exact statistics of feature `index` (and quantiles from the fine histogram).

        Raises:
            NotFoundError: no such feature, or the statistics are not written yet.
        """
        self.check_index(index)
        if "stats" not in self._cache:
            self._cache["stats"] = self.read_part("statistics")
        s = self._cache["stats"]
        n_tokens, count = int(s["n_tokens"]), int(s["count"][index])
        mean = float(s["sum"][index]) / count if count else 0.0
        var = float(s["sumsq"][index]) / count - mean * mean if count else 0.0
        vmax = float(s["max"][index]) if count else 0.0
        vmin = float(s["min"][index]) if count else 0.0
        freq = count / n_tokens if n_tokens else 0.0
        return Statistics(activation_frequency=freq, n_active=count, n_tokens=n_tokens, max_activation=vmax,
                          min_activation=vmin, mean_activation=mean, std_activation=math.sqrt(max(var, 0.0)),
                          l0_contribution=freq, dead=count == 0, quantiles=quantiles(self.fine_counts(index), vmin, vmax),
                          quantile_error_bound=QUANTILE_REL_ERROR)

    def summary_arrays(self) -> dict[str, np.ndarray]:
        """Per-feature frequency, max, mean, dead flag and top token id (for the database summary rows)."""
        s = self.read_part("statistics")
        count = s["count"].numpy()
        n_tokens = max(int(s["n_tokens"]), 1)
        out = {"frequency": count / n_tokens, "max": np.where(count > 0, s["max"].numpy(), 0.0),
               "mean": np.where(count > 0, s["sum"].numpy() / np.maximum(count, 1), 0.0), "dead": count == 0}
        out["top_token"] = self.read_part("summary")["top_token"].numpy() if self.has("summary") else np.full(
            len(count), -1)
        return out


@lru_cache(maxsize=8)
def _open_cached(path: str, mtime: float) -> FeatureStore:
    return FeatureStore.open(path)


def open_store(path: str | Path) -> FeatureStore:
    """Open a store, reusing the in-memory instance (and its caches) while its manifest is unchanged."""
    path = Path(path)
    try:
        mtime = (path / MANIFEST).stat().st_mtime
    except FileNotFoundError as exc:
        raise NotFoundError(f"no feature store at {path}") from exc
    return _open_cached(str(path), mtime)

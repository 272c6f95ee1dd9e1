"""Where export reads per-feature dashboards: the `DashboardSource` protocol that
`dashboards.reader.StoreDashboards` satisfies, and readers of the extraction's manifest."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mistudio.dashboards.schemas import FeatureDashboard


@runtime_checkable
class DashboardSource(Protocol):
    """Per-feature dashboards (`dashboards.schemas.FeatureDashboard`) plus the extraction's manifest."""

    @property
    def n_features(self) -> int: ...

    @property
    def manifest(self) -> dict[str, Any]: ...

    def feature_dashboard(self, index: int, *, n_examples: int | None = None, logit_k: int | None = None,
                          n_bins: int | None = None, include_intervals: bool = True) -> FeatureDashboard: ...

    def iter_dashboards(self, indices: Iterable[int], *, n_examples: int | None = None,
                        logit_k: int | None = None, n_bins: int | None = None,
                        include_intervals: bool = True) -> Iterator[FeatureDashboard]: ...

    def summary_arrays(self) -> dict[str, np.ndarray]: ...


def manifest_value(manifest: dict[str, Any], *keys: str, default: Any = None) -> Any:
    """The first present key among `keys` in the manifest or its `settings`/`dataset` sub-dicts."""
    for scope in (manifest, manifest.get("settings") or {}):
        for key in keys:
            if scope.get(key) is not None:
                return scope[key]
    dataset = manifest.get("dataset")
    if isinstance(dataset, dict):
        for key in keys:
            if dataset.get(key) is not None:
                return dataset[key]
    return default


def dataset_name(manifest: dict[str, Any]) -> str:
    """The dataset path/name the examples came from."""
    dataset = manifest.get("dataset")
    if isinstance(dataset, str):
        return dataset
    return str(manifest_value(manifest, "dataset_path", "path", "name", "dataset_name", default="unknown"))

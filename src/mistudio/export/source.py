"""Where export reads per-feature data: the `DashboardSource` protocol that `dashboards.reader.StoreDashboards`
satisfies (our dashboards: `features/`), the `NeuronpediaSource` protocol that `StoreNeuronpedia` satisfies
(SAEDashboard's numbers: everything that goes to Neuronpedia), and readers of the extraction's manifest."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from mistudio.dashboards.schemas import FeatureDashboard

if TYPE_CHECKING:
    from mistudio.store.feature_store import FeatureStore

LogitLens = Literal["neuronpedia", "folded"]


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


@runtime_checkable
class NeuronpediaSource(Protocol):
    """Per-feature Neuronpedia data (`dashboards.neuronpedia.NeuronpediaFeature`: SAEDashboard's
    `NeuronpediaDashboardFeature.to_dict()` keys plus `topk_cos_sim_*`, each activation with `token_ids` and
    `window_index`)."""

    def has_neuronpedia_data(self) -> bool: ...

    def neuronpedia_feature(self, index: int, *, logit_lens: LogitLens = "neuronpedia") -> Mapping[str, Any]: ...


class StoreNeuronpedia:
    """The Neuronpedia data of a feature store (written by the extraction's Neuronpedia pass)."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store

    def has_neuronpedia_data(self) -> bool:
        """Whether the store holds the Neuronpedia pass and weights."""
        from mistudio.dashboards.neuronpedia import has_neuronpedia_data

        return has_neuronpedia_data(self.store)

    def neuronpedia_feature(self, index: int, *, logit_lens: LogitLens = "neuronpedia") -> Mapping[str, Any]:
        """Feature `index` as SAEDashboard's Neuronpedia runner computes it."""
        from mistudio.dashboards.neuronpedia import neuronpedia_feature

        return neuronpedia_feature(self.store, index, logit_lens=logit_lens)


def missing_neuronpedia_message(sae_id: str) -> str:
    """What to do when a feature store lacks the Neuronpedia data."""
    return (f"the feature store of SAE {sae_id} has no Neuronpedia data (it was extracted before miStudio computed "
            f"SAEDashboard's numbers); run `mistudio extract {sae_id} …` again with the same model and dataset to add "
            "it (only the missing pass runs), or export with --format saelens")


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

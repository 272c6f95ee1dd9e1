"""Incremental export: reuse the features of a previous export that did not change and merge them
with newly computed ones into one complete export."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path
from typing import Any

from mistudio.errors import InvalidInputError
from mistudio.export.layout import EXPLANATIONS, METADATA, feature_index_of
from mistudio.export.prepare import ExplanationDoc, PreparedFeature, explanation_doc


class BaseExport:
    """A previous export archive, read lazily."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise InvalidInputError(f"base export {path} is not a readable zip archive ({exc})") from exc
        names = self._zip.namelist()
        if METADATA not in names:
            raise InvalidInputError(f"base export {path} has no {METADATA}; is it a miStudio export?")
        self.metadata: dict[str, Any] = json.loads(self._zip.read(METADATA))
        self._features = {index: name for name in names if (index := feature_index_of(name)) is not None}
        self.explanations: dict[int, list[ExplanationDoc]] = {}
        if EXPLANATIONS in names:
            doc = json.loads(self._zip.read(EXPLANATIONS))
            self.explanations = {e["feature_index"]: e["explanations"] for e in doc.get("explanations", [])}

    @property
    def indices(self) -> set[int]:
        """Feature indices the base export holds."""
        return set(self._features)

    def document(self, index: int) -> dict[str, Any]:
        """The base's feature document for `index`."""
        name = self._features[index]
        data = self._zip.read(name)
        return json.loads(gzip.decompress(data) if name.endswith(".gz") else data)

    def close(self) -> None:
        """Close the archive."""
        self._zip.close()


def unchanged_features(base: BaseExport, *, extraction_id: str | None, config: dict[str, Any],
                       explanations: dict[int, list[ExplanationDoc]]) -> set[int]:
    """Base features that need no recomputation: same extraction, same data options, same explanations."""
    if base.metadata.get("extraction", {}).get("extraction_id") != extraction_id:
        return set()
    data_keys = ("n_examples", "interval_examples", "logit_k", "n_bins", "top_tokens", "token_ids")
    if any(base.metadata.get("export", {}).get(k) != config.get(k) for k in data_keys):
        return set()
    return {i for i in base.indices if base.explanations.get(i, []) == _explanation_docs(explanations.get(i, []))}


def _explanation_docs(items: list[ExplanationDoc]) -> list[ExplanationDoc]:
    return [explanation_doc(e) for e in items]


def prepared_from_document(doc: dict[str, Any], explanations: list[ExplanationDoc]) -> PreparedFeature:
    """Rebuild the prepared form of a feature from its exported document (already rounded; read from JSON, so
    its values are not checked here: the base export was validated when it was built)."""
    logits: dict[str, Any] = doc.get("logits") or {}
    histogram: Any = doc.get("histogram") or {}
    logits_histogram: Any = logits.get("histogram") or {}
    return PreparedFeature(
        index=int(doc["feature_index"]), statistics=doc["statistics"], examples=doc["activations"],
        histogram=histogram, top_positive=logits.get("top_positive") or [],
        top_negative=logits.get("top_negative") or [], logits_histogram=logits_histogram,
        top_tokens=doc.get("top_tokens") or [], explanations=list(explanations),
    )

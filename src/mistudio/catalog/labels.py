"""Import feature explanations from CSV or JSON into `explanations` and the features' labels."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from mistudio.db.models import Explanation, FeatureSummary, SAERecord
from mistudio.errors import InvalidInputError, NotFoundError


class LabelsImportResult(BaseModel):
    """What a labels import changed."""

    model_config = ConfigDict(extra="allow")

    imported: int = Field(description="Rows read from the file")
    features: int = Field(description="Distinct features the rows name")
    labels_updated: int = Field(description="Feature summary rows whose label was set")


def parse_labels(data: bytes, filename: str) -> list[dict[str, Any]]:
    """Rows `{feature_index, description, method?, model?, score?, category?}` from CSV (header row) or JSON
    (a list of rows, or `{"explanations": [{feature_index, explanations: [...]}]}` as exports write it)."""
    text = data.decode("utf-8-sig")
    rows: list[dict[str, Any]]
    if filename.lower().endswith(".json"):
        doc = json.loads(text)
        if isinstance(doc, dict) and "explanations" in doc:
            rows = [{"feature_index": f["feature_index"], **e} for f in doc["explanations"] for e in f["explanations"]]
        elif isinstance(doc, list):
            rows = doc
        else:
            raise InvalidInputError(f"{filename}: expected a list of rows or an export's explanations.json")
    elif filename.lower().endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(text)))
    else:
        raise InvalidInputError(f"{filename}: labels must be a .csv or .json file")
    out = []
    for n, row in enumerate(rows, start=1):
        index: Any = row.get("feature_index", row.get("index"))
        desc = row.get("description") or row.get("label") or row.get("explanation")
        try:
            index = int(index)
        except (TypeError, ValueError):
            raise InvalidInputError(f"{filename} row {n}: feature_index {index!r} is not an integer") from None
        if not desc or not str(desc).strip():
            raise InvalidInputError(f"{filename} row {n}: no description/label")
        score = row.get("score")
        out.append({"feature_index": index, "description": str(desc).strip(), "method": row.get("method") or "import",
                    "model": row.get("model") or None, "score": float(score) if score not in (None, "") else None,
                    "category": row.get("category") or None})
    return out


def import_labels(session: Session, sae_id: str, rows: list[dict[str, Any]]) -> LabelsImportResult:
    """Add each row as an explanation and set it as the feature's label (last row per feature wins).

    Raises:
        NotFoundError: no such SAE.
        InvalidInputError: a row names a feature index the SAE does not have.
    """
    record = session.get(SAERecord, sae_id)
    if record is None:
        raise NotFoundError(f"SAE {sae_id} not found")
    if record.d_sae is not None:
        bad = sorted({r["feature_index"] for r in rows if not 0 <= r["feature_index"] < record.d_sae})
        if bad:
            raise InvalidInputError(f"feature indices outside [0, {record.d_sae}): {bad[:10]}")
    for r in rows:
        session.add(Explanation(sae_id=sae_id, feature_index=r["feature_index"], description=r["description"],
                                method=r["method"], model=r["model"], score=r["score"]))
    labelled = 0
    latest = {r["feature_index"]: r for r in rows}
    for index, r in latest.items():
        result = cast(CursorResult[Any], session.execute(
            update(FeatureSummary).where(FeatureSummary.sae_id == sae_id, FeatureSummary.feature_index == index)
            .values(label=r["description"][:512], category=r["category"])))
        labelled += result.rowcount or 0
    session.flush()
    return LabelsImportResult(imported=len(rows), features=len(latest), labels_updated=labelled)


def import_labels_file(session: Session, sae_id: str, path: str | Path) -> LabelsImportResult:
    """`import_labels` from a file on disk.

    Raises:
        InvalidInputError: the file does not exist or holds an invalid row.
        NotFoundError: no such SAE.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path} does not exist")
    return import_labels(session, sae_id, parse_labels(path.read_bytes(), path.name))

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

from mistudio.catalog.explanations import add_explanation, add_score
from mistudio.db.models import FeatureSummary, SAERecord
from mistudio.errors import InvalidInputError, NotFoundError


class LabelsImportResult(BaseModel):
    """What a labels import changed."""

    model_config = ConfigDict(extra="allow")

    imported: int = Field(description="Rows read from the file")
    features: int = Field(description="Distinct features the rows name")
    labels_updated: int = Field(description="Feature summary rows whose label was set")


def _rows_of(data: bytes, filename: str) -> list[Any]:
    """The raw rows of a labels file (CSV with a header row, or JSON).

    Raises:
        InvalidInputError: the file is not UTF-8, not valid JSON/CSV, or not one of the two shapes.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInputError(f"{filename} is not UTF-8 text; save it as UTF-8 CSV or JSON") from None
    if filename.lower().endswith(".json"):
        try:
            doc = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise InvalidInputError(f"{filename} is not valid JSON ({exc})") from None
        if isinstance(doc, dict) and "explanations" in doc:
            features = doc["explanations"]
            if not isinstance(features, list) or not all(
                    isinstance(f, dict) and isinstance(f.get("explanations"), list) for f in features):
                raise InvalidInputError(f"{filename}: `explanations` should be a list of "
                                        "{feature_index, explanations: [...]} objects, as exports write it")
            return [{"feature_index": f.get("feature_index"), **e} if isinstance(e, dict) else e
                    for f in features for e in f["explanations"]]
        if isinstance(doc, list):
            return doc
        raise InvalidInputError(f"{filename}: expected a list of rows or an export's explanations.json")
    if filename.lower().endswith(".csv"):
        try:
            return list(csv.DictReader(io.StringIO(text)))
        except csv.Error as exc:
            raise InvalidInputError(f"{filename} is not valid CSV ({exc})") from None
    raise InvalidInputError(f"{filename}: labels must be a .csv or .json file")


def _text_field(row: dict[Any, Any], key: str) -> str | None:
    value = row.get(key)
    return value if isinstance(value, str) and value else None


def parse_labels(data: bytes, filename: str) -> list[dict[str, Any]]:
    """Rows `{feature_index, description, method?, model?, score?, category?, prompt_version?, scores?}` from CSV
    (header row) or JSON (a list of rows, or `{"explanations": [{feature_index, explanations: [...]}]}` as exports
    write it, scores included).

    Raises:
        InvalidInputError: the file cannot be read, or a row lacks an integer feature index or a description, or
            has a score that is not a number.
    """
    out = []
    for n, row in enumerate(_rows_of(data, filename), start=1):
        if not isinstance(row, dict):
            raise InvalidInputError(f"{filename} row {n}: expected an object with feature_index and description")
        index: Any = row.get("feature_index", row.get("index"))
        desc = row.get("description") or row.get("label") or row.get("explanation")
        if isinstance(index, bool) or (isinstance(index, float) and not index.is_integer()):
            raise InvalidInputError(f"{filename} row {n}: feature_index {index!r} is not an integer")
        try:
            index = int(index)
        except (TypeError, ValueError, OverflowError):
            raise InvalidInputError(f"{filename} row {n}: feature_index {index!r} is not an integer") from None
        if not isinstance(desc, (str, int, float)) or isinstance(desc, bool) or not str(desc).strip():
            raise InvalidInputError(f"{filename} row {n}: no description/label")
        score = row.get("score")
        try:
            score = float(score) if score not in (None, "") else None
        except (TypeError, ValueError):
            raise InvalidInputError(f"{filename} row {n}: score {score!r} is not a number") from None
        out.append({"feature_index": index, "description": str(desc).strip(),
                    "method": _text_field(row, "method") or "import", "model": _text_field(row, "model"),
                    "score": score, "category": _text_field(row, "category"),
                    "prompt_version": _text_field(row, "prompt_version"),
                    "original_source": _text_field(row, "source"),
                    "scores": _scores_of(row.get("scores"), f"{filename} row {n}")})
    return out


def _scores_of(value: Any, where: str) -> list[dict[str, Any]]:
    """The scores of an exported explanation (`[{scorer, score, model?, n_examples?, details?}]`).

    Raises:
        InvalidInputError: `scores` is not such a list.
    """
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise InvalidInputError(f"{where}: scores should be a list of {{scorer, score}} objects")
    out = []
    for item in value:
        scorer = item.get("scorer") if isinstance(item, dict) else None
        score = item.get("score") if isinstance(item, dict) else None
        if not isinstance(scorer, str) or not scorer or isinstance(score, bool) or not isinstance(score, (int, float)):
            raise InvalidInputError(f"{where}: each score needs a scorer name and a numeric score, got {item!r}")
        n_examples = item.get("n_examples")
        details = item.get("details")
        out.append({"scorer": scorer, "score": float(score), "model": _text_field(item, "model"),
                    "n_examples": n_examples if isinstance(n_examples, int) and not isinstance(n_examples, bool)
                    else None, "details": details if isinstance(details, dict) else {}})
    return out


def import_labels(session: Session, sae_id: str, rows: list[dict[str, Any]]) -> LabelsImportResult:
    """Add each row as an explanation (with its scores) and set it as the feature's label (last row per feature
    wins).

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
        original = r.get("original_source")
        explanation_id = add_explanation(
            session, sae_id, r["feature_index"], r["description"], method=r["method"], model=r["model"],
            score=r["score"], source="imported", prompt_version=r.get("prompt_version"),
            details={"imported_source": original} if original else None)
        for sc in r.get("scores") or []:
            add_score(session, explanation_id, sc["scorer"], sc["score"], model=sc["model"],
                      n_examples=sc["n_examples"], details=sc["details"])
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

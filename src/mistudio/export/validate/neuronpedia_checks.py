"""Checks of Neuronpedia's formats: SAEDashboard batch files (every key with its type) and bulk-import rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from mistudio.export.neuronpedia.saedashboard_batches import ACTIVATION_KEYS, BATCH_KEYS, FEATURE_KEYS
from mistudio.export.validate.report import ValidationIssue
from mistudio.export.validate.values import as_floats, check_example, is_number

ROW_REQUIRED = {
    "features": ("modelId", "layer", "index", "creatorId", "maxActApprox", "pos_str", "pos_values", "neg_str",
                 "neg_values", "frac_nonzero", "freq_hist_data_bar_heights", "freq_hist_data_bar_values"),
    "activations": ("id", "tokens", "values", "index", "layer", "modelId", "maxValue", "maxValueTokenIndex",
                    "minValue", "creatorId"),
    "explanations": ("id", "modelId", "layer", "index", "description", "authorId", "typeName",
                     "explanationModelName", "scoreV1"),
    "explanation_scores": ("id", "initiatedByUserId", "value", "explanationId", "explanationScoreTypeName",
                           "explanationScoreModelName"),
}


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("float", "number"):
        return is_number(value)
    if kind == "str":
        return isinstance(value, str)
    if kind == "str|null":
        return value is None or isinstance(value, str)
    item = kind.removesuffix("[]")
    if not isinstance(value, list):
        return False
    if item == "object":
        return all(isinstance(v, dict) for v in value)
    if item == "str":
        try:
            "".join(value)
        except TypeError:
            return False
        return True
    if item in ("float", "number"):
        return as_floats(value) is not None and not any(isinstance(v, bool) for v in value[:1])
    return all(_type_ok(v, "str" if item == "str" else "int" if item == "int" else "number") for v in value)


FREQ_HIST_BINS = 50  # SAEDashboard's HistogramData: torch.histc, 50 bins over [min, max] of the non-zero acts


def freq_hist_issues(feat: dict[str, Any], loc: str) -> list[ValidationIssue]:
    """`freq_hist_data_bar_values` are SAEDashboard's: 50 bin centres, equally spaced (Neuronpedia plots them on
    a linear axis and takes each bar's width from its neighbours). Centres are rounded to 3 decimals."""
    values = feat.get("freq_hist_data_bar_values")
    if not isinstance(values, list) or not values or as_floats(values) is None:
        return []
    if len(values) != FREQ_HIST_BINS:
        return [ValidationIssue("hist_shape", f"{loc}.freq_hist_data_bar_values",
                                f"{len(values)} bars; SAEDashboard writes {FREQ_HIST_BINS}",
                                "re-export from an extraction with the Neuronpedia data")]
    steps = np.diff(np.asarray(values, dtype=np.float64))
    mean = float(steps.mean())
    if float(np.abs(steps - mean).max()) > 1.1e-3 + 1e-3 * abs(mean):
        return [ValidationIssue("hist_not_linear", f"{loc}.freq_hist_data_bar_values",
                                "bar centres are not equally spaced (log-binned?); Neuronpedia draws them on a "
                                "linear axis", "re-export from an extraction with the Neuronpedia data")]
    return []


def check_np_feature(feat: dict[str, Any], loc: str) -> list[ValidationIssue]:
    """A SAEDashboard batch feature: every key with its type, and its activations."""
    out = []
    for key, kind in FEATURE_KEYS.items():
        if key not in feat:
            out.append(ValidationIssue("missing_field", f"{loc}.{key}", f"missing '{key}' (SAEDashboard always writes it)",
                             f"add '{key}'" + (" as []" if kind.endswith("[]") else ""), fixable=kind.endswith("[]")))
        elif not _type_ok(feat[key], kind):
            out.append(ValidationIssue("wrong_type", f"{loc}.{key}", f"'{key}' should be {kind}", "re-export the feature"))
    out += freq_hist_issues(feat, loc)
    for hist in ("freq_hist_data_bar", "logits_hist_data_bar"):
        values, heights = feat.get(f"{hist}_values"), feat.get(f"{hist}_heights")
        if isinstance(values, list) and isinstance(heights, list) and len(values) != len(heights):
            out.append(ValidationIssue("hist_length_mismatch", f"{loc}.{hist}_values",
                             f"{len(values)} bar values for {len(heights)} heights (bin edges instead of centres?)",
                             "use bin centres: one value per bar", fixable=len(values) == len(heights) + 1))
    acts = feat.get("activations")
    if isinstance(acts, list):
        if not acts:
            out.append(ValidationIssue("empty_array", f"{loc}.activations", "no activations; Neuronpedia needs at least one",
                             "leave dead features out of the batch (skipped_indexes.json)"))
        for n, act in enumerate(acts):
            for key, kind in ACTIVATION_KEYS.items():
                if key not in act:
                    out.append(ValidationIssue("missing_field", f"{loc}.activations[{n}].{key}", f"missing '{key}'",
                                     "re-export the feature"))
                elif not _type_ok(act[key], kind):
                    out.append(ValidationIssue("wrong_type", f"{loc}.activations[{n}].{key}", f"'{key}' should be {kind}",
                                     "re-export the feature"))
            out += check_example(act, f"{loc}.activations[{n}]", keys=("tokens", "values", None, None))
    return out


def check_batch_document(doc: dict[str, Any], name: str) -> Iterator[ValidationIssue]:
    """A SAEDashboard batch file: its keys with their types, then each of its features."""
    for key, kind in BATCH_KEYS.items():
        if key not in doc:
            yield ValidationIssue("missing_field", f"{name}.{key}", f"batch lacks '{key}'", "re-export",
                        fixable=key == "sae_id_suffix")
        elif not _type_ok(doc[key], kind):
            yield ValidationIssue("wrong_type", f"{name}.{key}", f"'{key}' should be {kind}", "re-export")
    for feat in doc.get("features") or []:
        yield from check_np_feature(feat, f"{name}#feature {feat.get('feature_index')}")


def check_row(kind: str, row: dict[str, Any], loc: str) -> list[ValidationIssue]:
    """A Neuronpedia bulk-import row (feature, activation, explanation or explanation score)."""
    out = [ValidationIssue("missing_field", f"{loc}.{k}", f"row lacks column '{k}'", "re-export")
           for k in ROW_REQUIRED[kind] if k not in row]
    if kind == "explanation_scores" and not out and not is_number(row["value"]):
        out.append(ValidationIssue("wrong_type", f"{loc}.value", "a score's value must be a number", "re-export"))
    if kind == "explanations" and not out and row["explanationModelName"] is not None and row["typeName"] is None:
        out.append(ValidationIssue("wrong_type", f"{loc}.explanationModelName",
                                   "an explanation model without an explanation type", "re-export"))
    if kind == "features":
        out += freq_hist_issues(row, loc)
    if kind == "activations" and not out:
        out += check_example(row, loc, keys=("tokens", "values", "maxValue", "maxValueTokenIndex"))
        if not isinstance(row["id"], str) or len(row["id"]) != 25:
            out.append(ValidationIssue("bad_id", f"{loc}.id", "activation ids are 25-character cuids", "re-export"))
    return out


# the config file naming each kind of name a row may refer to, and the columns that refer to it
CONFIG_REFERENCES = {
    "explanation_type.jsonl": ("explanations", "typeName"),
    "explanation_model_type.jsonl": ("explanations", "explanationModelName"),
    "explanation_score_type.jsonl": ("explanation_scores", "explanationScoreTypeName"),
    "explanation_score_model.jsonl": ("explanation_scores", "explanationScoreModelName"),
}


class ConfigReferences:
    """The explanation type/model and score type/model names the rows use, checked against the config rows of
    the export (Neuronpedia's importer needs each name in its config tables before the rows)."""

    def __init__(self) -> None:
        self.used: dict[str, dict[str, str]] = {f: {} for f in CONFIG_REFERENCES}
        self.defined: dict[str, set[str]] = {f: set() for f in CONFIG_REFERENCES}

    def note_row(self, kind: str, row: dict[str, Any], loc: str) -> None:
        """Record the names a bulk row refers to."""
        for file, (row_kind, column) in CONFIG_REFERENCES.items():
            value = row.get(column) if row_kind == kind else None
            if isinstance(value, str):
                self.used[file].setdefault(value, f"{loc}.{column}")

    def note_config(self, file: str, rows: Any) -> None:
        """Record the names a config file defines."""
        if file in self.defined and isinstance(rows, list):
            self.defined[file].update(r["name"] for r in rows if isinstance(r, dict) and isinstance(r.get("name"), str))

    def issues(self, config_dir: str) -> list[ValidationIssue]:
        """A name used by some row that no config row defines."""
        return [ValidationIssue("unknown_config_name", loc, f"'{name}' is not in {config_dir}/{file}; Neuronpedia's "
                                "importer refuses rows naming an unknown type or model", "re-export")
                for file, names in self.used.items() for name, loc in sorted(names.items())
                if name not in self.defined[file]]

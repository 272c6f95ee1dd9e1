"""Validating an export folder or zip: checksums, JSON Schema, the real Neuronpedia batch and row formats, and
portability (no local path in any JSON, YAML or README member; the model's shape). Each problem has a location,
a message and a suggested fix."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import yaml

from mistudio.export.archive.checksums import parse_sha256sums
from mistudio.export.config import MODEL_ID_RE, SOURCE_SET_RE
from mistudio.export.layout import BULK_MODEL, METADATA, NP_CONFIG_DIR, SHA256SUMS, member_kind
from mistudio.export.validate.feature_checks import check_feature_document, feature_document_conforms
from mistudio.export.validate.files import ExportFiles, load_json_bytes
from mistudio.export.validate.neuronpedia_checks import ConfigReferences, check_batch_document, check_row
from mistudio.export.validate.portability_checks import (
    JSON_SUFFIXES,
    TEXT_SUFFIXES,
    YAML_SUFFIXES,
    local_path_issues,
    model_row_issues,
    text_local_path_issues,
)
from mistudio.export.validate.report import ValidationIssue, ValidationReport
from mistudio.export.validate.schema import schema_issues


def _iter_checks(files: ExportFiles, full_schema: bool, report: ValidationReport) -> Iterator[ValidationIssue]:
    names = files.names()
    report.n_files = len(names)
    if METADATA not in names:
        yield ValidationIssue("missing_file", METADATA, f"the export has no {METADATA}", "re-export")
    yield from _check_sums(files, names)
    references = ConfigReferences()
    for name in names:
        kind = member_kind(name)
        if kind is None:
            if name.startswith(f"{NP_CONFIG_DIR}/"):
                references.note_config(name.rsplit("/", 1)[-1], load_json_bytes(files.read(name), name)[0])
            yield from _check_other_member(files, name)
            continue
        doc, issues = load_json_bytes(files.read(name), name)
        yield from issues
        yield from local_path_issues(doc, name)
        if kind == "metadata":
            yield from schema_issues("metadata", doc, name)
            ids = doc.get("neuronpedia") or {}
            if ids.get("model_id") and not MODEL_ID_RE.match(ids["model_id"]):
                yield ValidationIssue("bad_model_id", name, f"model id {ids['model_id']!r} breaks Neuronpedia's naming rule",
                            "use lower-case letters, digits, '.', '-'")
            if ids.get("source_set") and not SOURCE_SET_RE.match(ids["source_set"]):
                yield ValidationIssue("bad_source_set", name, f"source set {ids['source_set']!r} breaks Neuronpedia's rule",
                            "use lower-case letters, digits and '-'")
        elif kind == "feature":
            report.n_features += 1
            if full_schema and not feature_document_conforms(doc):
                yield from schema_issues("feature", doc, name)
            yield from check_feature_document(doc, name)
        elif kind == "batch":
            yield from check_batch_document(doc, name)
        else:
            for n, row in enumerate(doc):
                yield from check_row(kind, row, f"{name}:{n + 1}")
                references.note_row(kind, row, f"{name}:{n + 1}")
    yield from references.issues(NP_CONFIG_DIR)


def _check_other_member(files: ExportFiles, name: str) -> Iterator[ValidationIssue]:
    """Members not checked one by one above: JSON/YAML/README for local paths, the Neuronpedia model row."""
    if name.endswith(JSON_SUFFIXES):
        doc, issues = load_json_bytes(files.read(name), name)
        yield from issues
        yield from local_path_issues(doc, name)
        if name.endswith(f"/{BULK_MODEL}"):
            for n, row in enumerate(doc):
                yield from model_row_issues(row, f"{name}:{n + 1}")
    elif name.endswith(YAML_SUFFIXES):
        try:
            doc = yaml.safe_load(files.read(name))
        except yaml.YAMLError as exc:
            yield ValidationIssue("invalid_yaml", name, f"not valid YAML ({exc})", "re-export")
            return
        yield from local_path_issues(doc, name)
    elif name.endswith(TEXT_SUFFIXES):
        yield from text_local_path_issues(files.read(name).decode("utf-8", errors="replace"), name)


def _check_sums(files: ExportFiles, names: list[str]) -> Iterator[ValidationIssue]:
    if SHA256SUMS not in names:
        yield ValidationIssue("checksum_missing", SHA256SUMS, f"no {SHA256SUMS} file", f"write {SHA256SUMS}", fixable=True)
        return
    sums = parse_sha256sums(files.read(SHA256SUMS).decode("utf-8", errors="replace"))
    for name in names:
        if name == SHA256SUMS:
            continue
        if name not in sums:
            yield ValidationIssue("checksum_missing", name, "file is not listed in SHA256SUMS", "rewrite SHA256SUMS",
                        fixable=True)
        elif hashlib.sha256(files.read(name)).hexdigest() != sums[name]:
            yield ValidationIssue("checksum_mismatch", name, "SHA-256 does not match SHA256SUMS (file changed or corrupted)",
                        "re-export, or rewrite SHA256SUMS if the change is intended", fixable=True)
    for name in sorted(set(sums) - set(names)):
        yield ValidationIssue("checksum_missing", name, "listed in SHA256SUMS but absent", "rewrite SHA256SUMS", fixable=True)


def validate_export(path: str | Path, *, full_schema: bool = True) -> ValidationReport:
    """Validate an export folder or zip and return the report."""
    files = ExportFiles(Path(path))
    report = ValidationReport(path=str(path))
    try:
        report.issues = list(_iter_checks(files, full_schema, report))
    finally:
        files.close()
    return report

"""Export validation (FR-3.4): the seed's JSON Schema (Appendix A) plus the real Neuronpedia batch and row
formats, on a folder or a zip. Each problem has a location, a message and a suggested fix."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from mistudio.errors import InvalidInputError
from mistudio.export.config import MODEL_ID_RE, SOURCE_SET_RE
from mistudio.export.package import SUMS_FILE, parse_sha256sums

MIN_EXAMPLES = 20
SCHEMA_DIR = Path(__file__).parent / "schemas"
_RAW_BPE = ("\u0120", "\u010a", "\u0109")
ROW_REQUIRED = {
    "features": ("modelId", "layer", "index", "creatorId", "maxActApprox", "pos_str", "pos_values", "neg_str",
                 "neg_values", "frac_nonzero", "freq_hist_data_bar_heights", "freq_hist_data_bar_values"),
    "activations": ("id", "tokens", "values", "index", "layer", "modelId", "maxValue", "maxValueTokenIndex",
                    "minValue", "creatorId"),
    "explanations": ("id", "modelId", "layer", "index", "description", "authorId"),
}


@dataclass
class Issue:
    """One problem: where, what, how to fix it, and whether `--fix` can."""

    code: str
    location: str
    message: str
    fix: str
    fixable: bool = False
    severity: str = "error"

    def to_dict(self) -> dict[str, Any]:
        """JSON view."""
        return asdict(self)


@dataclass
class ValidationReport:
    """All issues found in one export."""

    path: str
    issues: list[Issue] = field(default_factory=list)
    n_files: int = 0
    n_features: int = 0

    @property
    def errors(self) -> list[Issue]:
        """Issues with severity error."""
        return [i for i in self.issues if i.severity == "error"]

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """JSON report."""
        return {"path": self.path, "ok": self.ok, "n_files": self.n_files, "n_features": self.n_features,
                "n_errors": len(self.errors), "n_warnings": len(self.issues) - len(self.errors),
                "n_fixable": sum(i.fixable for i in self.issues), "issues": [i.to_dict() for i in self.issues]}

    def to_text(self) -> str:
        """A readable report."""
        head = (f"{self.path}: {'OK' if self.ok else 'INVALID'} — {self.n_files} files, {self.n_features} features, "
                f"{len(self.errors)} error(s), {len(self.issues) - len(self.errors)} warning(s)")
        lines = [head]
        for i in self.issues:
            lines.append(f"  [{i.severity}] {i.code} at {i.location}: {i.message}\n      fix: {i.fix}"
                         + (" (auto-fixable with --fix)" if i.fixable else ""))
        return "\n".join(lines)


# ----- value checks shared by the export job and the validator ------------------------------------------------
def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _tokens_clean(tokens: list[Any]) -> bool:
    """Fast path: every token is a str, encodes as UTF-8 and holds no raw BPE piece or NUL."""
    try:
        joined = "\x01".join(tokens)
        joined.encode("utf-8")
    except (TypeError, UnicodeEncodeError):
        return False
    return "\x00" not in joined and not any(m in joined for m in _RAW_BPE)


def _as_floats(values: list[Any]) -> np.ndarray | None:
    """`values` as float64, or None when an item is not a number."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.ndim == 1 else None


def _token_issues(tokens: list[Any], loc: str) -> list[Issue]:
    if _tokens_clean(tokens):
        return []
    out = []
    for t, tok in enumerate(tokens):
        if not isinstance(tok, str):
            out.append(Issue("wrong_type", f"{loc}[{t}]", f"token is {type(tok).__name__}, not a string",
                             "re-export; tokens must be strings", fixable=False))
            continue
        try:
            tok.encode("utf-8")
        except UnicodeEncodeError:
            out.append(Issue("lone_surrogate", f"{loc}[{t}]", f"token {tok!r} holds a lone surrogate (not valid UTF-8)",
                             "render the token as text (U+FFFD for incomplete bytes)", fixable=True))
            continue
        if any(m in tok for m in _RAW_BPE):
            out.append(Issue("raw_bpe_token", f"{loc}[{t}]", f"token {tok!r} is a raw byte-level BPE piece",
                             "render it as Neuronpedia does (Ġ→space, Ċ→newline)", fixable=True))
        if "\x00" in tok:
            out.append(Issue("nul_in_token", f"{loc}[{t}]", "token holds a NUL character",
                             "replace it (PostgreSQL text cannot hold NUL)", fixable=True))
    return out


def _values_issues(values: list[Any], loc: str) -> list[Issue]:
    arr = _as_floats(values)
    if arr is not None and np.isfinite(arr).all():
        return []
    bad = [i for i, v in enumerate(values) if not _is_num(v) or not math.isfinite(v)]
    if not bad:
        return []
    return [Issue("non_finite", f"{loc}[{bad[0]}]", f"{len(bad)} value(s) are NaN, Inf or not numbers",
                  "replace them with 0.0", fixable=True)]


def check_example(ex: dict[str, Any], loc: str, *, keys: tuple[str, str, str | None, str | None]) -> list[Issue]:
    """Checks of one example: `keys` = (tokens, values, max value key, max index key)."""
    tk, vk, mk, ik = keys
    tokens, values = ex.get(tk), ex.get(vk)
    if not isinstance(tokens, list) or not isinstance(values, list):
        return [Issue("missing_field", loc, f"example lacks a '{tk}' or '{vk}' list", "re-export the feature")]
    out = _token_issues(tokens, f"{loc}.{tk}") + _values_issues(values, f"{loc}.{vk}")
    if not tokens or not values:
        out.append(Issue("empty_array", loc, "example has no tokens/values", "drop the example or re-export"))
        return out
    if len(tokens) != len(values):
        out.append(Issue("length_mismatch", loc, f"{len(tokens)} tokens but {len(values)} values",
                         "cut both to the shorter length", fixable=True))
    arr = _as_floats(values)
    if arr is None:
        arr = np.array([v if _is_num(v) else 0.0 for v in values], dtype=np.float64)
    finite = np.where(np.isfinite(arr), arr, 0.0)
    top = float(finite.max())
    for key in ("qualifying_token_index", "qualifyingTokenIndex", ik):
        if key and key in ex and ex[key] is not None and not (isinstance(ex[key], int) and 0 <= ex[key] < len(values)):
            out.append(Issue("index_out_of_range", f"{loc}.{key}", f"{key}={ex[key]!r} is outside [0, {len(values)})",
                             "recompute it from the values", fixable=True))
    if ik and isinstance(ex.get(ik), int) and 0 <= ex[ik] < len(values) and float(finite[ex[ik]]) != top:
        out.append(Issue("max_mismatch", f"{loc}.{ik}", f"{ik} points at {finite[ex[ik]]}, but the maximum is {top}",
                         "recompute it from the values", fixable=True))
    if mk and (not _is_num(ex.get(mk)) or abs(float(ex[mk]) - top) > 1e-6 * max(1.0, abs(top))):
        out.append(Issue("max_mismatch", f"{loc}.{mk}", f"{mk}={ex.get(mk)!r} but max(values)={top}",
                         "recompute it from the values", fixable=True))
    return out


def top_example_count(examples: list[dict[str, Any]]) -> int:
    """Examples in the top group (`bin_min` -1 or absent); interval-group examples do not count."""
    return sum(1 for ex in examples if ex.get("bin_min", -1) == -1)


def check_feature_document(doc: dict[str, Any], loc: str) -> list[Issue]:
    """Semantic checks of a FR-2.2 feature document (beyond its JSON Schema)."""
    out: list[Issue] = []
    stats = doc.get("statistics") or {}
    examples = doc.get("activations") or []
    for key, value in stats.items():
        if _is_num(value) and not math.isfinite(value):
            out.append(Issue("non_finite", f"{loc}: statistics.{key}", f"{key} is {value}", "replace it with 0.0",
                             fixable=True))
    if stats.get("dead") is False:
        if not examples:
            out.append(Issue("empty_array", f"{loc}: activations", "a live feature has no examples",
                             "re-run the extraction over more tokens"))
        elif (n_top := top_example_count(examples)) < MIN_EXAMPLES:
            out.append(Issue("too_few_examples", f"{loc}: activations",
                             f"{n_top} top examples; Neuronpedia expects at least {MIN_EXAMPLES} for a live feature",
                             "extract over more tokens, or accept a sparse dashboard", severity="warning"))
    for n, ex in enumerate(examples):
        out += check_example(ex, f"{loc}: activations[{n}]", keys=("tokens", "values", "max_value", "max_token_index"))
    for side in ("top_positive", "top_negative"):
        items = (doc.get("logits") or {}).get(side) or []
        out += _token_issues([t.get("token") for t in items], f"{loc}: logits.{side}")
    return out


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("float", "number"):
        return _is_num(value)
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
        return _as_floats(value) is not None and not any(isinstance(v, bool) for v in value[:1])
    return all(_type_ok(v, "str" if item == "str" else "int" if item == "int" else "number") for v in value)


def check_np_feature(feat: dict[str, Any], loc: str) -> list[Issue]:
    """A SAEDashboard batch feature: every key with its type, and its activations."""
    from mistudio.export.neuronpedia_batch import ACTIVATION_KEYS, FEATURE_KEYS

    out = []
    for key, kind in FEATURE_KEYS.items():
        if key not in feat:
            out.append(Issue("missing_field", f"{loc}.{key}", f"missing '{key}' (SAEDashboard always writes it)",
                             f"add '{key}'" + (" as []" if kind.endswith("[]") else ""), fixable=kind.endswith("[]")))
        elif not _type_ok(feat[key], kind):
            out.append(Issue("wrong_type", f"{loc}.{key}", f"'{key}' should be {kind}", "re-export the feature"))
    for hist in ("freq_hist_data_bar", "logits_hist_data_bar"):
        values, heights = feat.get(f"{hist}_values"), feat.get(f"{hist}_heights")
        if isinstance(values, list) and isinstance(heights, list) and len(values) != len(heights):
            out.append(Issue("hist_length_mismatch", f"{loc}.{hist}_values",
                             f"{len(values)} bar values for {len(heights)} heights (bin edges instead of centres?)",
                             "use bin centres: one value per bar", fixable=len(values) == len(heights) + 1))
    acts = feat.get("activations")
    if isinstance(acts, list):
        if not acts:
            out.append(Issue("empty_array", f"{loc}.activations", "no activations; Neuronpedia needs at least one",
                             "leave dead features out of the batch (skipped_indexes.json)"))
        for n, act in enumerate(acts):
            for key, kind in ACTIVATION_KEYS.items():
                if key not in act:
                    out.append(Issue("missing_field", f"{loc}.activations[{n}].{key}", f"missing '{key}'",
                                     "re-export the feature"))
                elif not _type_ok(act[key], kind):
                    out.append(Issue("wrong_type", f"{loc}.activations[{n}].{key}", f"'{key}' should be {kind}",
                                     "re-export the feature"))
            out += check_example(act, f"{loc}.activations[{n}]", keys=("tokens", "values", None, None))
    return out


def check_row(kind: str, row: dict[str, Any], loc: str) -> list[Issue]:
    """A Neuronpedia bulk-import row (feature, activation or explanation)."""
    out = [Issue("missing_field", f"{loc}.{k}", f"row lacks column '{k}'", "re-export")
           for k in ROW_REQUIRED[kind] if k not in row]
    if kind == "activations" and not out:
        out += check_example(row, loc, keys=("tokens", "values", "maxValue", "maxValueTokenIndex"))
        if not isinstance(row["id"], str) or len(row["id"]) != 25:
            out.append(Issue("bad_id", f"{loc}.id", "activation ids are 25-character cuids", "re-export"))
    return out


def _nums(values: Any) -> bool:
    return isinstance(values, list) and all(type(v) is float or type(v) is int for v in values)


def _ints(values: Any) -> bool:
    return isinstance(values, list) and all(type(v) is int for v in values)


def _opt(obj: dict[str, Any], key: str, ok: Callable[[Any], bool]) -> bool:
    return key not in obj or ok(obj[key])


def _hist_ok(h: Any) -> bool:
    return isinstance(h, dict) and _opt(h, "bin_edges", _nums) and _opt(h, "counts", _ints)


def _logits_ok(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(t, dict) and type(t["token"]) is str and _is_num(t["value"])
                                           for t in items)


def _example_ok(ex: Any) -> bool:
    tokens, values = ex["tokens"], ex["values"]
    return (isinstance(tokens, list) and bool(tokens) and all(type(t) is str for t in tokens) and _nums(values)
            and bool(values) and _is_num(ex["max_value"]) and type(ex["max_token_index"]) is int
            and ex["max_token_index"] >= 0 and _opt(ex, "token_ids", _ints)
            and _opt(ex, "qualifying_token_index", lambda v: type(v) is int and v >= 0)
            and all(_opt(ex, k, _is_num) for k in ("bin_min", "bin_max", "bin_contains"))
            and _opt(ex, "source", lambda v: isinstance(v, dict)))


def feature_document_conforms(doc: Any) -> bool:
    """Fast path for `schemas/feature.schema.json`: True only when `doc` certainly satisfies it (our own output);
    False sends the document through the JSON Schema validator, which says exactly what is wrong."""
    try:
        stats, acts = doc["statistics"], doc["activations"]
        logits = doc.get("logits", {})
        return bool(
            type(doc["feature_index"]) is int and doc["feature_index"] >= 0 and isinstance(stats, dict)
            and type(stats["dead"]) is bool
            and all(_is_num(stats[k]) for k in ("activation_frequency", "max_activation", "mean_activation",
                                                "std_activation"))
            and 0 <= stats["activation_frequency"] <= 1
            and _opt(stats, "quantiles", lambda q: isinstance(q, dict) and _nums(list(q.values())))
            and isinstance(acts, list) and (stats["dead"] or acts) and all(_example_ok(ex) for ex in acts)
            and isinstance(logits, dict) and _opt(logits, "top_positive", _logits_ok)
            and _opt(logits, "top_negative", _logits_ok) and _opt(logits, "histogram", _hist_ok)
            and _opt(doc, "histogram", _hist_ok)
            and _opt(doc, "top_tokens", lambda items: isinstance(items, list) and all(
                type(t["token"]) is str and _is_num(t["total_activation"]) and type(t["count"]) is int
                for t in items)))
    except (KeyError, TypeError, AttributeError):
        return False


# ----- reading an export (folder or zip) ----------------------------------------------------------------------
class ExportFiles:
    """Uniform read access to an export folder or zip."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InvalidInputError(f"{path} does not exist")
        self._zip = None
        if self.path.is_file():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except zipfile.BadZipFile as exc:
                raise InvalidInputError(f"{path} is not a zip archive or export folder") from exc

    def names(self) -> list[str]:
        """Relative file paths, sorted."""
        if self._zip is not None:
            return sorted(n for n in self._zip.namelist() if not n.endswith("/"))
        from mistudio.export.package import staged_files

        return staged_files(self.path)

    def read(self, name: str) -> bytes:
        """A file's bytes."""
        return self._zip.read(name) if self._zip is not None else (self.path / name).read_bytes()

    def close(self) -> None:
        """Release the archive."""
        if self._zip is not None:
            self._zip.close()


def load_json_bytes(data: bytes, name: str) -> tuple[Any, list[Issue]]:
    """Parse (and gunzip) a file, reporting invalid UTF-8 and NaN/Infinity literals."""
    issues = []
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        issues.append(Issue("invalid_utf8", f"{name} (byte {exc.start})", "file is not valid UTF-8",
                            "decode it, replacing invalid bytes with U+FFFD", fixable=True))
        text = data.decode("utf-8", errors="replace")
    constants: list[str] = []

    def constant(token: str) -> float:
        constants.append(token)
        return float("nan")

    if name.endswith(".jsonl") or name.endswith(".jsonl.gz"):
        obj: Any = [json.loads(line, parse_constant=constant) for line in text.splitlines() if line.strip()]
    else:
        obj = json.loads(text, parse_constant=constant)
    if constants:
        issues.append(Issue("non_finite", name, f"{len(constants)} NaN/Infinity literal(s) ({constants[0]})",
                            "replace them with 0.0", fixable=True))
    return obj, issues


@lru_cache(maxsize=2)
def schema_validator(name: str) -> jsonschema.Draft7Validator:
    """A compiled validator for `schemas/{name}.schema.json`."""
    return jsonschema.Draft7Validator(json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text()))


def schema_issues(name: str, doc: Any, loc: str) -> list[Issue]:
    """JSON Schema violations as issues."""
    out = []
    for err in schema_validator(name).iter_errors(doc):
        path = ".".join(str(p) for p in err.absolute_path) or "(root)"
        code = {"required": "missing_field", "type": "wrong_type", "minItems": "empty_array"}.get(err.validator,
                                                                                                 "schema")
        out.append(Issue(code, f"{loc}: {path}", err.message, "re-export, or fix the value by hand"))
    return out


def _iter_checks(files: ExportFiles, full_schema: bool, report: ValidationReport) -> Iterator[Issue]:
    names = files.names()
    report.n_files = len(names)
    if "metadata.json" not in names:
        yield Issue("missing_file", "metadata.json", "the export has no metadata.json", "re-export")
    yield from _check_sums(files, names)
    for name in names:
        kind = _kind(name)
        if kind is None:
            continue
        doc, issues = load_json_bytes(files.read(name), name)
        yield from issues
        if kind == "metadata":
            yield from schema_issues("metadata", doc, name)
            ids = doc.get("neuronpedia") or {}
            if ids.get("model_id") and not MODEL_ID_RE.match(ids["model_id"]):
                yield Issue("bad_model_id", name, f"model id {ids['model_id']!r} breaks Neuronpedia's naming rule",
                            "use lower-case letters, digits, '.', '-'")
            if ids.get("source_set") and not SOURCE_SET_RE.match(ids["source_set"]):
                yield Issue("bad_source_set", name, f"source set {ids['source_set']!r} breaks Neuronpedia's rule",
                            "use lower-case letters, digits and '-'")
        elif kind == "feature":
            report.n_features += 1
            if full_schema and not feature_document_conforms(doc):
                yield from schema_issues("feature", doc, name)
            yield from check_feature_document(doc, name)
        elif kind == "batch":
            from mistudio.export.neuronpedia_batch import BATCH_KEYS

            for key, t in BATCH_KEYS.items():
                if key not in doc:
                    yield Issue("missing_field", f"{name}.{key}", f"batch lacks '{key}'", "re-export",
                                fixable=key == "sae_id_suffix")
                elif not _type_ok(doc[key], t):
                    yield Issue("wrong_type", f"{name}.{key}", f"'{key}' should be {t}", "re-export")
            for feat in doc.get("features") or []:
                yield from check_np_feature(feat, f"{name}#feature {feat.get('feature_index')}")
        else:
            for n, row in enumerate(doc):
                yield from check_row(kind, row, f"{name}:{n + 1}")


def _kind(name: str) -> str | None:
    parts = name.split("/")
    if name == "metadata.json":
        return "metadata"
    if parts[0] == "features" and len(parts) == 2:
        return "feature"
    if parts[0] == "neuronpedia" and len(parts) == 2 and parts[1].startswith("batch-"):
        return "batch"
    if parts[0] == "neuronpedia" and len(parts) >= 3 and parts[-2] in ROW_REQUIRED and parts[-1].endswith(".jsonl.gz"):
        return parts[-2]
    return None


def _check_sums(files: ExportFiles, names: list[str]) -> Iterator[Issue]:
    if SUMS_FILE not in names:
        yield Issue("checksum_missing", SUMS_FILE, "no SHA256SUMS file", "write SHA256SUMS", fixable=True)
        return
    sums = parse_sha256sums(files.read(SUMS_FILE).decode("utf-8", errors="replace"))
    for name in names:
        if name == SUMS_FILE:
            continue
        if name not in sums:
            yield Issue("checksum_missing", name, "file is not listed in SHA256SUMS", "rewrite SHA256SUMS",
                        fixable=True)
        elif hashlib.sha256(files.read(name)).hexdigest() != sums[name]:
            yield Issue("checksum_mismatch", name, "SHA-256 does not match SHA256SUMS (file changed or corrupted)",
                        "re-export, or rewrite SHA256SUMS if the change is intended", fixable=True)
    for name in sorted(set(sums) - set(names)):
        yield Issue("checksum_missing", name, "listed in SHA256SUMS but absent", "rewrite SHA256SUMS", fixable=True)


def validate_export(path: str | Path, *, full_schema: bool = True) -> ValidationReport:
    """Validate an export folder or zip and return the report."""
    files = ExportFiles(Path(path))
    report = ValidationReport(path=str(path))
    try:
        report.issues = list(_iter_checks(files, full_schema, report))
    finally:
        files.close()
    return report

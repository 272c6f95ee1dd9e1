"""Auto-fix for the fixable validation issues: NaN/Inf, unrendered or invalid tokens, length mismatches,
wrong max values/indices, missing list keys, bin edges instead of centres, and checksums."""

from __future__ import annotations

import math
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from mistudio.export.archive.checksums import write_sha256sums
from mistudio.export.archive.deterministic_zip import zip_folder
from mistudio.export.archive.jsonio import dumps, gzip_bytes, jsonl, render_token, round_list
from mistudio.export.layout import BULK_ROW_KINDS, SHA256SUMS, member_kind
from mistudio.export.neuronpedia.saedashboard_batches import FEATURE_KEYS, bin_centres
from mistudio.export.validate.files import load_json_bytes
from mistudio.export.validate.report import ValidationReport
from mistudio.export.validate.validator import validate_export

_EXAMPLE_KEYS = {"feature": ("tokens", "values", "max_value", "max_token_index"),
                 "batch": ("tokens", "values", None, None),
                 "activations": ("tokens", "values", "maxValue", "maxValueTokenIndex")}


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return 0.0
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    return obj


def fix_example(ex: dict[str, Any], keys: tuple[str, str, str | None, str | None]) -> None:
    """Render tokens, cut tokens/values to one length, recompute max value/index and clamp indices."""
    tk, vk, mk, ik = keys
    tokens = [render_token(t) if isinstance(t, str) else str(t) for t in ex.get(tk) or []]
    values = [v if isinstance(v, (int, float)) and math.isfinite(v) else 0.0 for v in ex.get(vk) or []]
    n = min(len(tokens), len(values))
    ex[tk], ex[vk] = tokens[:n], values[:n]
    if not n:
        return
    peak = max(range(n), key=ex[vk].__getitem__)
    if mk:
        ex[mk] = ex[vk][peak]
    if ik:
        ex[ik] = peak
    if mk == "maxValue":
        ex["minValue"] = min(ex[vk])
    for key in ("qualifying_token_index", "qualifyingTokenIndex"):
        if key in ex and not (isinstance(ex[key], int) and -1 <= ex[key] < n):  # -1: SAEDashboard's position 0
            ex[key] = peak


def _fix_np_feature(feat: dict[str, Any]) -> None:
    for key, kind in FEATURE_KEYS.items():
        if key not in feat and kind.endswith("[]"):
            feat[key] = []
    for hist in ("freq_hist_data_bar", "logits_hist_data_bar"):
        values, heights = feat.get(f"{hist}_values") or [], feat.get(f"{hist}_heights") or []
        if len(values) == len(heights) + 1:
            feat[f"{hist}_values"] = bin_centres(values)
    for key in ("neg_str", "pos_str"):
        feat[key] = [render_token(t) for t in feat.get(key) or []]
    for act in feat.get("activations") or []:
        fix_example(act, _EXAMPLE_KEYS["batch"])
    feat["pos_values"] = round_list(feat.get("pos_values") or [])


def fix_document(kind: str, doc: Any) -> Any:
    """The repaired form of a parsed file of the given kind."""
    doc = _finite(doc)
    if kind == "feature":
        for ex in doc.get("activations") or []:
            fix_example(ex, _EXAMPLE_KEYS["feature"])
        for side in ("top_positive", "top_negative"):
            for item in (doc.get("logits") or {}).get(side) or []:
                item["token"] = render_token(str(item.get("token", "")))
    elif kind == "batch":
        doc.setdefault("sae_id_suffix", None)
        for feat in doc.get("features") or []:
            _fix_np_feature(feat)
    elif kind == "activations":
        for row in doc:
            fix_example(row, _EXAMPLE_KEYS["activations"])
    return doc


def _encode(kind: str, name: str, doc: Any) -> bytes:
    if kind in BULK_ROW_KINDS:
        data = jsonl(doc)
    else:
        data = dumps(doc, sort_keys=kind == "feature", indent=kind == "metadata")
    return gzip_bytes(data) if name.endswith(".gz") else data


def fix_folder(root: Path, report: ValidationReport) -> list[str]:
    """Apply every fixable repair in an unpacked export; returns the files rewritten."""
    fixable_files = {i.location.split(" ")[0].split(":")[0].split("#")[0].split(".", 1)[0] for i in report.issues
                     if i.fixable}
    changed = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        kind = member_kind(name)
        stem = name.split(".", 1)[0]
        if kind is None or kind == "metadata" or stem not in fixable_files:
            continue
        doc, _ = load_json_bytes(path.read_bytes(), name)
        path.write_bytes(_encode(kind, name, fix_document(kind, doc)))
        changed.append(name)
    if any(i.code.startswith("checksum") for i in report.issues) or changed:
        write_sha256sums(root)
        changed.append(SHA256SUMS)
    return changed


def autofix_export(path: str | Path) -> dict[str, Any]:
    """Validate, repair what is fixable (in place, atomically for a zip), validate again."""
    path = Path(path)
    before = validate_export(path)
    if not any(i.fixable for i in before.issues):
        return {"fixed_files": [], "before": before.to_dict(), "after": before.to_dict()}
    if path.is_dir():
        changed = fix_folder(path, before)
    else:
        work = Path(tempfile.mkdtemp(prefix=".fix-", dir=path.parent))
        try:
            with zipfile.ZipFile(path) as zf:
                zf.extractall(work)
            changed = fix_folder(work, before)
            zip_folder(work, path)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    after = validate_export(path)
    return {"fixed_files": changed, "before": before.to_dict(), "after": after.to_dict()}




"""Checks that an archive is usable away from the machine that wrote it: no local path in any JSON, YAML or
README member, and a Neuronpedia model row with the model's real shape."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from mistudio.export.validate.report import ValidationIssue

# string values that are text or token pieces, not names: a token "/" or a description mentioning a path is fine
_TEXT_KEYS = frozenset({"tokens", "pos_str", "neg_str", "description", "text", "notes", "token", "message"})
_LOCAL_VALUE = re.compile(r"^(?:/|~[/\\]|~$|file:|[A-Za-z]:[\\/]|\.\.?[/\\])")
# in free text (README), an absolute path under a usual file-system root, a home path or a file: URL
_LOCAL_IN_TEXT = re.compile(
    r"(?:file://\S+|(?<![\w.:/])~/[\w.-]+|(?<![\w.:/])[A-Za-z]:\\[\w.-]+"
    r"|(?<![\w.:/-])/(?:home|Users|tmp|var|root|mnt|opt|srv|data|private|media|work|workspace|scratch|content|"
    r"Volumes|usr|nix)/[\w./-]*)")
JSON_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz")
YAML_SUFFIXES = (".yaml", ".yml")
TEXT_SUFFIXES = (".md",)


def _local_values(obj: Any, path: str) -> Iterator[tuple[str, str]]:
    """(location, value) of every string value that is a local path, text and token fields skipped."""
    if isinstance(obj, str):
        if _LOCAL_VALUE.match(obj):
            yield path, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            if key not in _TEXT_KEYS:
                yield from _local_values(value, f"{path}.{key}" if path else str(key))
    elif isinstance(obj, list) and obj and isinstance(obj[0], (str, dict, list)):
        for n, value in enumerate(obj):
            yield from _local_values(value, f"{path}[{n}]")


def local_path_issues(doc: Any, name: str) -> list[ValidationIssue]:
    """Local paths among the values of a parsed JSON / YAML member (one issue per member, the first named)."""
    found = list(_local_values(doc, ""))
    if not found:
        return []
    where, value = found[0]
    return [ValidationIssue(
        "local_path", f"{name}: {where or '(root)'}",
        f"{len(found)} value(s) name a path on the machine that wrote the archive, e.g. {value!r}",
        "re-export with --model-id / --dataset-id naming the model and dataset by their HuggingFace ids")]


def text_local_path_issues(text: str, name: str) -> list[ValidationIssue]:
    """Local paths in a text member (README)."""
    found = _LOCAL_IN_TEXT.findall(text)
    if not found:
        return []
    return [ValidationIssue("local_path", name, f"{len(found)} local path(s) in the text, e.g. {found[0]!r}",
                            "re-export with --model-id / --dataset-id naming the model and dataset by their "
                            "HuggingFace ids")]


def model_row_issues(row: dict[str, Any], loc: str) -> list[ValidationIssue]:
    """Neuronpedia's model row: the layer count and MLP width Neuronpedia shows (warnings when unknown)."""
    out = []
    for key, what in (("layers", "layer count"), ("neuronsPerLayer", "MLP width")):
        value = row.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            out.append(ValidationIssue(
                "model_shape_unknown", f"{loc}.{key}", f"the model's {what} is unknown ({key}={value!r})",
                "re-run the extraction (it records the model's shape), or set it by hand before the import",
                severity="warning"))
    return out

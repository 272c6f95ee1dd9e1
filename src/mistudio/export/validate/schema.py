"""The JSON Schemas of `metadata.json` and the feature documents (`json_schemas/`), as issues."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from mistudio.export.validate.report import ValidationIssue

SCHEMA_DIR = Path(__file__).parent / "json_schemas"


@lru_cache(maxsize=2)
def schema_validator(name: str) -> jsonschema.Draft7Validator:
    """A compiled validator for `json_schemas/{name}.schema.json`."""
    return jsonschema.Draft7Validator(json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text()))


def schema_issues(name: str, doc: Any, loc: str) -> list[ValidationIssue]:
    """JSON Schema violations as issues."""
    out = []
    for err in schema_validator(name).iter_errors(doc):
        path = ".".join(str(p) for p in err.absolute_path) or "(root)"
        code = {"required": "missing_field", "type": "wrong_type", "minItems": "empty_array"}.get(err.validator,
                                                                                                 "schema")
        out.append(ValidationIssue(code, f"{loc}: {path}", err.message, "re-export, or fix the value by hand"))
    return out

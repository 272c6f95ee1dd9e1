"""Every 2xx JSON response in the OpenAPI schema is typed (an object with properties, or a $ref)."""

from __future__ import annotations

from typing import Any

import pytest

from mistudio.api.app import create_app
from mistudio.studio import Studio


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("home")
    studio = Studio.open(home=home)
    return create_app(studio, start_worker=False).openapi()


def _typed(schema: dict[str, Any]) -> bool:
    if "$ref" in schema or schema.get("properties"):
        return True
    if schema.get("type") == "array":
        return _typed(schema.get("items", {}))
    variants = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
    return bool(variants) and all(_typed(v) for v in variants)


def _operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, item in openapi["paths"].items() for method, op in item.items()]


def test_every_2xx_json_response_is_typed(openapi: dict[str, Any]) -> None:
    untyped = []
    for method, path, op in _operations(openapi):
        for code, response in op["responses"].items():
            json_body = response.get("content", {}).get("application/json")
            if code.startswith("2") and json_body is not None and not _typed(json_body.get("schema", {})):
                untyped.append(f"{method} {path} {code}")
    assert untyped == []


def test_every_operation_has_a_2xx_response(openapi: dict[str, Any]) -> None:
    missing = [f"{m} {p}" for m, p, op in _operations(openapi) if not any(c.startswith("2") for c in op["responses"])]
    assert missing == []


def test_non_json_responses_say_what_comes_back(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    download = paths["/api/v1/saes/{sae_id}/export/download/{job_id}"]["get"]["responses"]["200"]["content"]
    events = paths["/api/v1/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]
    assert "application/zip" in download and "application/json" not in download
    assert "text/event-stream" in events and "application/json" not in events
    assert "content" not in paths["/api/v1/saes/{sae_id}"]["delete"]["responses"]["204"]

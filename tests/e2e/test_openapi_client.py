"""The web client's API contract: frontend/openapi.json is the live app's schema (regenerate with
`MISTUDIO_UPDATE_OPENAPI=1 pytest tests/e2e/test_openapi_client.py`, then `npm --prefix frontend run gen:api`),
and every endpoint the client calls (frontend/src/api/endpoints.ts) exists in it with its method."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from mistudio.api.app import create_app
from mistudio.settings import reset_settings
from mistudio.studio import Studio

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
SAVED = FRONTEND / "openapi.json"
ENDPOINTS = FRONTEND / "src" / "api" / "endpoints.ts"
_ENTRY = re.compile(r'^\s*(\w+): "(GET|POST|PUT|PATCH|DELETE) (/[^"]*)",', re.M)


def _dump(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


@pytest.fixture(scope="module")
def live_schema(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("openapi-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("MISTUDIO_HOME", str(home))
    mp.delenv("MISTUDIO_DATABASE_URL", raising=False)
    reset_settings()
    try:
        schema = create_app(Studio.open(), start_worker=False).openapi()
    finally:
        mp.undo()
        reset_settings()
    schema.get("info", {}).pop("version", None)  # the package version is not part of the contract
    return json.loads(_dump(schema))


def test_saved_schema_matches_live_app(live_schema: dict) -> None:
    if os.environ.get("MISTUDIO_UPDATE_OPENAPI"):
        SAVED.write_text(_dump(live_schema))
    assert SAVED.exists(), "frontend/openapi.json is missing: run with MISTUDIO_UPDATE_OPENAPI=1"
    saved = json.loads(SAVED.read_text())
    drift = sorted(set(saved["paths"]) ^ set(live_schema["paths"]))
    assert not drift, f"API paths changed ({drift}); run MISTUDIO_UPDATE_OPENAPI=1 pytest {__file__} and npm run gen:api"
    assert saved == live_schema, (f"the API schema changed; run MISTUDIO_UPDATE_OPENAPI=1 pytest {__file__}, "
                                  "then `npm --prefix frontend run gen:api` and fix what `npm run build` reports")


def test_client_endpoints_exist_in_live_schema(live_schema: dict) -> None:
    entries = _ENTRY.findall(ENDPOINTS.read_text())
    assert len(entries) >= 20, "could not read the ENDPOINTS table of frontend/src/api/endpoints.ts"
    missing = [f"{name}: {method} {path}" for name, method, path in entries
               if method.lower() not in live_schema["paths"].get(f"/api/v1{path}", {})]
    assert not missing, f"the web client calls endpoints the API does not have: {missing}"

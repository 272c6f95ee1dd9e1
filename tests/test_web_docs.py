"""The API docs page (/docs) loads Swagger UI from the web UI's build, not from a CDN, so it works offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from mistudio.api.app import STATIC_DIR, create_app
from mistudio.api.docs import ASSETS, mount_docs


def _docs_html(static_dir: Path) -> str:
    app = FastAPI(title="t", docs_url=None)
    mount_docs(app, static_dir)
    res = TestClient(app).get("/docs")
    assert res.status_code == 200
    return res.text


def test_docs_use_the_local_swagger_ui_when_the_build_has_it(tmp_path: Path) -> None:
    (tmp_path / ASSETS).mkdir()
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        (tmp_path / ASSETS / name).write_text("x")
    html = _docs_html(tmp_path)
    assert f"/{ASSETS}/swagger-ui-bundle.js" in html and f"/{ASSETS}/swagger-ui.css" in html
    assert "http" not in html.replace("/openapi.json", "")  # no address outside this server
    assert "cdn" in _docs_html(tmp_path / "missing")  # without the build: the CDN, as FastAPI does


@pytest.mark.skipif(not (STATIC_DIR / ASSETS / "swagger-ui-bundle.js").exists(),
                    reason="the web UI is not built (npm run build copies Swagger UI into it)")
def test_the_served_docs_page_and_its_assets_come_from_this_server(studio) -> None:  # noqa: ANN001
    with TestClient(create_app(studio, start_worker=False)) as client:
        html = client.get("/docs").text
        assert "cdn." not in html
        js = client.get(f"/{ASSETS}/swagger-ui-bundle.js")
        assert js.status_code == 200 and "SwaggerUIBundle" in js.text
        assert client.get(f"/{ASSETS}/swagger-ui.css").status_code == 200
        assert client.get("/openapi.json").json()["info"]["title"] == "miStudio"

"""The API docs page (/docs): Swagger UI from the web UI's own build (`web/static/swagger-ui/`, copied there from
the front end's `swagger-ui-dist` package), so it works with no network; from a CDN only when that build is
missing."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

ASSETS = "swagger-ui"  # folder inside the web UI's build
_FILES = {"js": "swagger-ui-bundle.js", "css": "swagger-ui.css", "favicon": "favicon-32x32.png"}


def local_assets(static_dir: Path) -> dict[str, str] | None:
    """URLs of the Swagger UI files the web UI's build holds, or None when they are not there."""
    if not all((static_dir / ASSETS / name).is_file() for name in _FILES.values()):
        return None
    return {key: f"/{ASSETS}/{name}" for key, name in _FILES.items()}


def mount_docs(app: FastAPI, static_dir: Path) -> None:
    """Serve /docs (register it before the web UI's catch-all route, which serves the asset files)."""

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def docs() -> HTMLResponse:
        urls = local_assets(static_dir)
        title = f"{app.title} — API docs"
        if urls is None:
            return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=title)
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=title,
                                   swagger_js_url=urls["js"], swagger_css_url=urls["css"],
                                   swagger_favicon_url=urls["favicon"])

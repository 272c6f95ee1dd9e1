"""The FastAPI application: REST API under /api/v1 (behind the API token when MISTUDIO_API_TOKEN is set; see
`api/auth.py`) and the built web UI at /. Error messages never show the store's or its temp folders' paths."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel

from mistudio import __version__
from mistudio.api.auth import TokenAuthMiddleware
from mistudio.api.deps import scrub_paths, server_path_patterns
from mistudio.api.docs import mount_docs
from mistudio.api.routes import activations as activation_routes
from mistudio.api.routes import auth as auth_routes
from mistudio.api.routes import autointerp as autointerp_routes
from mistudio.api.routes import explanations as explanation_routes
from mistudio.api.routes import exports, features, hub, jobs, saes
from mistudio.api.routes import publish as publish_routes
from mistudio.api.routes import scoring as scoring_routes
from mistudio.api.routes import steering as steering_routes
from mistudio.api.routes import training as training_routes
from mistudio.errors import MiStudioError
from mistudio.studio import Studio

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


class Health(BaseModel):
    """The server is up, and its version."""

    status: str
    version: str
    auth_required: bool = False


def error_body(message: str, kind: str, details: dict | None = None) -> dict:
    """The JSON shape of every error response."""
    return {"error": {"type": kind, "message": message, "details": details or {}}, "detail": message}


def create_app(studio: Studio | None = None, start_worker: bool = True, *, auth: bool = True) -> FastAPI:
    """Build the app around `studio` (opened from the settings when not given). With `MISTUDIO_API_TOKEN` set
    every `/api/` route but `GET /api/v1/health` needs it; `auth=False` (`serve --no-auth`) serves without."""
    studio = studio or Studio.open()
    token = studio.settings.api_token if auth else None
    private_paths = server_path_patterns(studio)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start_worker:
            studio.start_worker()
        yield
        if start_worker:
            studio.stop_worker()

    app = FastAPI(title="miStudio", version=__version__, lifespan=lifespan, docs_url=None,
                  description="SAE management, feature dashboards and Neuronpedia export.")
    app.state.studio = studio
    app.state.api_token = token
    if token:
        app.add_middleware(TokenAuthMiddleware, token=token)

    @app.exception_handler(MiStudioError)
    async def _mistudio_error(_request: Request, exc: MiStudioError) -> JSONResponse:
        return JSONResponse(status_code=exc.http_status, content=error_body(
            scrub_paths(exc.message, private_paths), type(exc).__name__, scrub_paths(exc.details, private_paths)))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse(status_code=422, content=error_body(f"invalid request: {problems}",
                                                                "InvalidInputError"))

    @app.get("/api/v1/health", tags=["meta"], response_model=Health)
    def health() -> Health:
        return Health(status="ok", version=__version__, auth_required=token is not None)

    for module in (auth_routes, saes, hub, jobs, features, exports, publish_routes, activation_routes,
                   steering_routes, explanation_routes, autointerp_routes, scoring_routes, training_routes):
        app.include_router(module.router, prefix="/api/v1")

    mount_docs(app, STATIC_DIR)  # Swagger UI served from the web UI's build: works offline
    _mount_web(app)
    return app


def _mount_web(app: FastAPI) -> None:
    """Serve the built front end, with index.html for client-side routes."""

    @app.get("/{path:path}", include_in_schema=False, response_model=None)
    def web(path: str) -> FileResponse | JSONResponse:
        if path.startswith("api/"):
            return JSONResponse(status_code=404, content=error_body(f"no API route /{path}", "NotFoundError"))
        index = STATIC_DIR / "index.html"
        if not index.exists():
            return JSONResponse(status_code=404, content=error_body(
                "the web UI is not built; run `npm --prefix frontend ci && npm --prefix frontend run build`",
                "NotFoundError"))
        candidate = (STATIC_DIR / path).resolve()
        if path and candidate.is_file() and STATIC_DIR.resolve() in candidate.parents:
            return FileResponse(candidate)
        return FileResponse(index)

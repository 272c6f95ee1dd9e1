"""REST routes: a browser session for the API token (the cookie EventSource streams and downloads send)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from mistudio.api.auth import COOKIE_PATH, SESSION_COOKIE, session_value

router = APIRouter(tags=["auth"])


class AuthSession(BaseModel):
    """Whether the server needs a token, and that this request carried a valid one."""

    auth_required: bool = Field(description="True when the server has MISTUDIO_API_TOKEN set")
    authenticated: bool


@router.post("/auth/session", response_model=AuthSession)
def create_session(request: Request, response: Response) -> AuthSession:
    """Check the bearer token (any request reaching here carried it) and set the session cookie that GET
    requests without headers (EventSource streams, downloads) authenticate with."""
    token: str | None = request.app.state.api_token
    if token:
        response.set_cookie(SESSION_COOKIE, session_value(token), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path=COOKIE_PATH)
    return AuthSession(auth_required=token is not None, authenticated=True)


@router.delete("/auth/session", status_code=204, response_class=Response)
def delete_session() -> Response:
    """Forget the session cookie (the token itself stays valid)."""
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response

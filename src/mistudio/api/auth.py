"""Who may use the API: a bearer token (`MISTUDIO_API_TOKEN`) on every `/api/...` request except
`GET /api/v1/health`, and the rule that a server reachable from other machines needs one.

Browsers cannot set headers on `EventSource` streams or `<a href>` downloads, so `POST /api/v1/auth/session`
(with the bearer token) sets an HttpOnly, SameSite=Strict session cookie derived from the token; the cookie is
accepted on GET/HEAD requests only (reads, SSE streams, downloads), never on requests that change anything, so a
forged cross-site form cannot act with it. Changing the token invalidates every cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from http.cookies import SimpleCookie

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mistudio.errors import InvalidInputError

SESSION_COOKIE = "mistudio_session"
COOKIE_PATH = "/api/"
PUBLIC_ROUTES = frozenset({("GET", "/api/v1/health"), ("HEAD", "/api/v1/health")})
SAFE_METHODS = frozenset({"GET", "HEAD"})


def session_value(token: str) -> str:
    """The session cookie's value for `token` (an HMAC of it: the token itself never sits in a cookie)."""
    return hmac.new(token.encode(), b"mistudio-session-v1", hashlib.sha256).hexdigest()


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1); False for anything else, e.g. 0.0.0.0."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def serve_access_warning(host: str, api_token: str | None, no_auth: bool) -> str | None:
    """Decide whether `mistudio serve --host HOST` may start; returns a warning to print, if any.

    Raises:
        InvalidInputError: `host` is reachable from other machines and no token is set (and no `--no-auth`).
    """
    if no_auth:
        if is_loopback(host):
            return None
        return (f"warning: --no-auth on {host}: anyone who can reach this address can use the whole API "
                "(import, delete, export, run jobs). Set MISTUDIO_API_TOKEN instead unless the network is yours.")
    if api_token or is_loopback(host):
        return None
    raise InvalidInputError(
        f"refusing to serve on {host} without authentication: other machines could reach the API. Set "
        "MISTUDIO_API_TOKEN to a long random secret (e.g. `export MISTUDIO_API_TOKEN=$(openssl rand -hex 32)`), "
        "bind to 127.0.0.1, or pass --no-auth if every machine on that network may use it."
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class TokenAuthMiddleware:
    """Answer 401 to any `/api/` request without the bearer token (or, for GET/HEAD, the session cookie)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._bearer = f"Bearer {token}".encode()
        self._session = session_value(token).encode()

    def _authorized(self, scope: Scope, method: str) -> bool:
        header = _header(scope, b"authorization")
        if header is not None and hmac.compare_digest(header.strip().encode("latin-1"), self._bearer):
            return True
        if method not in SAFE_METHODS:
            return False
        cookies = _header(scope, b"cookie")
        if not cookies:
            return False
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookies)
        except Exception:  # a malformed Cookie header is no credential
            return False
        morsel = jar.get(SESSION_COOKIE)
        return morsel is not None and hmac.compare_digest(morsel.value.encode("latin-1"), self._session)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = "/" + str(scope.get("path", "")).lstrip("/")
        method = str(scope.get("method", "GET")).upper()
        if not path.startswith("/api/") or (method, path.rstrip("/")) in PUBLIC_ROUTES \
                or self._authorized(scope, method):
            await self.app(scope, receive, send)
            return
        message = ("this miStudio server needs its API token: send `Authorization: Bearer <MISTUDIO_API_TOKEN>` "
                   "(the web UI asks for it once)")
        response = JSONResponse(
            status_code=401,
            content={"error": {"type": "AuthenticationError", "message": message, "details": {}},
                     "detail": message},
            headers={"WWW-Authenticate": 'Bearer realm="miStudio"'},
        )
        await response(scope, receive, send)

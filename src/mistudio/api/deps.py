"""FastAPI dependencies: the Studio and a database session per request."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session

from mistudio.db.session import transaction
from mistudio.studio import Studio


def get_studio(request: Request) -> Studio:
    """The Studio the app was created with."""
    return request.app.state.studio


def get_session(request: Request) -> Iterator[Session]:
    """A session committed at the end of the request, rolled back on error."""
    with transaction(request.app.state.studio.sessions) as session:
        yield session

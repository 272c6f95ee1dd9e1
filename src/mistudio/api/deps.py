"""FastAPI dependencies: the Studio and a database session per request."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session

from mistudio.studio import Studio


def get_studio(request: Request) -> Studio:
    """The Studio the app was created with."""
    return request.app.state.studio


def get_session(request: Request) -> Iterator[Session]:
    """A session committed at the end of the request, rolled back on error."""
    session = request.app.state.studio.sessions()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()

"""Shared fixtures: an isolated MISTUDIO_HOME, database URLs (SQLite always; PostgreSQL when

MISTUDIO_TEST_POSTGRES_URL names a server), and an opened Studio."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mistudio.db.session import dispose_engines
from mistudio.settings import reset_settings

pytest_plugins = ["conftest_hub"]

POSTGRES_ADMIN_URL = os.environ.get("MISTUDIO_TEST_POSTGRES_URL")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own MISTUDIO_HOME and a fresh settings cache."""
    home = tmp_path / "mistudio-home"
    monkeypatch.setenv("MISTUDIO_HOME", str(home))
    monkeypatch.delenv("MISTUDIO_DATABASE_URL", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    reset_settings()
    yield home
    dispose_engines()
    reset_settings()


def _postgres_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"mistudio_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, isolated_home: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, then a new database on the PostgreSQL test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{isolated_home / 'test.db'}"
        return
    if not POSTGRES_ADMIN_URL:
        if os.environ.get("CI"):
            pytest.fail("CI must set MISTUDIO_TEST_POSTGRES_URL (see .ci/run)")
        pytest.skip("MISTUDIO_TEST_POSTGRES_URL is not set; start PostgreSQL to run these")
    yield from _postgres_database()


@pytest.fixture
def studio(isolated_home: Path):  # noqa: ANN201
    """A Studio on SQLite in the isolated home (no background worker)."""
    from mistudio.studio import Studio

    return Studio.open(home=isolated_home)


@pytest.fixture
def any_db_studio(database_url: str, isolated_home: Path):  # noqa: ANN201
    """A Studio on each database backend in turn."""
    from mistudio.studio import Studio

    return Studio.open(home=isolated_home, database_url=database_url)

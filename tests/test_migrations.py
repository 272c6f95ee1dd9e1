"""The shipped Alembic migrations build exactly the schema the models declare, on every database."""

from __future__ import annotations


def test_migrations_match_models(any_db_studio):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from mistudio.db.models import Base

    engine = any_db_studio.sessions.kw["bind"]
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []

"""jobs.runner: the process that runs a job, so a job whose process died is recognised as interrupted

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 12:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add jobs.runner."""
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runner", sa.String(length=200), nullable=True))


def downgrade() -> None:
    """Drop jobs.runner."""
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("runner")

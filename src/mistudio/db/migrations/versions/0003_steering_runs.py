"""steering_runs: stored steering runs (prompt, settings, outputs, Neuronpedia comparison)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 15:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create steering_runs."""
    op.create_table(
        "steering_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("sae_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("chat", sa.Boolean(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["sae_id"], ["saes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("steering_runs", schema=None) as batch_op:
        batch_op.create_index("ix_steering_runs_sae_id", ["sae_id"], unique=False)
        batch_op.create_index("ix_steering_runs_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    """Drop steering_runs."""
    with op.batch_alter_table("steering_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_steering_runs_created_at")
        batch_op.drop_index("ix_steering_runs_sae_id")
    op.drop_table("steering_runs")

"""explanations: source, prompt version, job, details; explanation_scores; trainings: runs of the trainer

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 17:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the explanation columns, explanation_scores and the training-run columns."""
    with op.batch_alter_table("explanations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=20), nullable=False, server_default="typed"))
        batch_op.add_column(sa.Column("prompt_version", sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column("job_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("details", sa.JSON(), nullable=False, server_default="{}"))
    op.create_table(
        "explanation_scores",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("explanation_id", sa.String(length=36), nullable=False),
        sa.Column("scorer", sa.String(length=50), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("n_examples", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["explanation_id"], ["explanations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("explanation_scores", schema=None) as batch_op:
        batch_op.create_index("ix_explanation_scores_explanation", ["explanation_id"], unique=False)
    with op.batch_alter_table("trainings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=20), nullable=False, server_default="recorded"))
        batch_op.add_column(sa.Column("job_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("architecture", sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column("hook_name_out", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("device", sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column("tokens_seen", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("wall_time_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("run_dir", sa.String(length=500), nullable=True))


def downgrade() -> None:
    """Drop what upgrade added."""
    with op.batch_alter_table("trainings", schema=None) as batch_op:
        for name in ("run_dir", "wall_time_s", "tokens_seen", "device", "hook_name_out", "architecture", "job_id",
                     "status"):
            batch_op.drop_column(name)
    with op.batch_alter_table("explanation_scores", schema=None) as batch_op:
        batch_op.drop_index("ix_explanation_scores_explanation")
    op.drop_table("explanation_scores")
    with op.batch_alter_table("explanations", schema=None) as batch_op:
        for name in ("details", "job_id", "prompt_version", "source"):
            batch_op.drop_column(name)

"""The daemon's record of its jobs and of the lead, for `slamon status`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "daemon_jobs",
        sa.Column("job", sa.String(length=200), nullable=False),
        sa.Column("last_started_at", sa.BigInteger(), nullable=True),
        sa.Column("last_finished_at", sa.BigInteger(), nullable=True),
        sa.Column("last_status", sa.String(length=10), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_run_at", sa.BigInteger(), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_daemon_jobs")),
    )
    op.create_table(
        "daemon_leader",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("since", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", sa.BigInteger(), nullable=False),
        sa.Column("stopped_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daemon_leader")),
    )


def downgrade() -> None:
    op.drop_table("daemon_leader")
    op.drop_table("daemon_jobs")

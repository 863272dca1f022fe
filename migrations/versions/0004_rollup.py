"""The maintained roll-up: rollup_meta, rollup_days, rollup_closures, and the roll-up's view of
each complaint (rl_day, rl_week, rl_dur) with the two indexes median and p90 read.

An empty database gets a roll-up that is ready under the default settings (timezone UTC, final
closure, all five dimensions): empty tables are exact under any settings, and the first import
keeps them. A database that already holds complaints gets a roll-up marked stale: the migration
does not know the configuration's timezone, so it does not guess; reports read raw rows and say
so until `slamon db rebuild-rollup` builds it.

Complaints deleted (or a source renamed) by anything but slamon mark the roll-up stale through
triggers, so that it never serves figures that no longer match the rows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DEFAULTS = {
    "timezone": "UTC",
    "closure": "final",
    "dimensions": "source,queue,channel,category,priority",
    "exclusion": "excluded_reason set, or closed before created",
    "excluded_statuses": '["deleted", "spam", "merged"]',
}
_CLOSED_INCLUDED = sa.text("rl_dur IS NOT NULL")

_SQLITE_TRIGGERS = (
    """CREATE TRIGGER rollup_stale_on_delete AFTER DELETE ON complaints
    BEGIN
        UPDATE rollup_meta SET state = 'stale', note = 'complaints were deleted outside slamon'
        WHERE id = 1 AND state = 'ready';
    END""",
    """CREATE TRIGGER rollup_stale_on_source AFTER UPDATE OF source ON complaints
    WHEN OLD.source IS NOT NEW.source
    BEGIN
        UPDATE rollup_meta SET state = 'stale', note = 'a source was renamed'
        WHERE id = 1 AND state = 'ready';
    END""",
)
_PG_TRIGGERS = (
    """CREATE FUNCTION rollup_mark_stale() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE rollup_meta SET state = 'stale', note = TG_ARGV[0]
        WHERE id = 1 AND state = 'ready';
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER rollup_stale_on_delete AFTER DELETE ON complaints FOR EACH ROW
    EXECUTE FUNCTION rollup_mark_stale('complaints were deleted outside slamon')""",
    """CREATE TRIGGER rollup_stale_on_truncate AFTER TRUNCATE ON complaints FOR EACH STATEMENT
    EXECUTE FUNCTION rollup_mark_stale('complaints were truncated outside slamon')""",
    """CREATE TRIGGER rollup_stale_on_source AFTER UPDATE OF source ON complaints FOR EACH ROW
    WHEN (OLD.source IS DISTINCT FROM NEW.source)
    EXECUTE FUNCTION rollup_mark_stale('a source was renamed')""",
)


def upgrade() -> None:
    op.create_table(
        "rollup_meta",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("timezone", sa.Text(), nullable=True),
        sa.Column("closure", sa.String(length=16), nullable=True),
        sa.Column("dimensions", sa.Text(), nullable=True),
        sa.Column("exclusion", sa.Text(), nullable=True),
        sa.Column("excluded_statuses", sa.Text(), nullable=True),
        sa.Column("built_at", sa.BigInteger(), nullable=True),
        sa.Column("closed_hwm", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_meta")),
    )
    op.create_table(
        "rollup_days",
        sa.Column("dim", sa.String(length=16), nullable=False),
        sa.Column("d", sa.Integer(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("nx", sa.BigInteger(), nullable=False),
        sa.Column("nc", sa.BigInteger(), nullable=False),
        sa.Column("secs", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("dim", "d", "value", name=op.f("pk_rollup_days")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "rollup_closures",
        sa.Column("dim", sa.String(length=16), nullable=False),
        sa.Column("d", sa.Integer(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("c", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("secs", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("dim", "d", "value", "c", name=op.f("pk_rollup_closures")),
        sqlite_with_rowid=False,
    )
    # Plain ALTER TABLE ADD COLUMN on both engines (nullable, no default): no table copy.
    op.add_column("complaints", sa.Column("rl_day", sa.Integer(), nullable=True))
    op.add_column("complaints", sa.Column("rl_week", sa.Integer(), nullable=True))
    op.add_column("complaints", sa.Column("rl_dur", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_complaints_rl_queue",
        "complaints",
        ["queue", "rl_week", "rl_dur", "rl_day", "created_at"],
        unique=False,
        sqlite_where=_CLOSED_INCLUDED,
        postgresql_where=_CLOSED_INCLUDED,
    )
    op.create_index(
        "ix_complaints_rl_dur",
        "complaints",
        ["rl_dur", "rl_day", "created_at"],
        unique=False,
        sqlite_where=_CLOSED_INCLUDED,
        postgresql_where=_CLOSED_INCLUDED,
    )
    bind = op.get_bind()
    held = bind.execute(sa.text("SELECT EXISTS (SELECT 1 FROM complaints)")).scalar()
    meta = sa.table(
        "rollup_meta",
        *(sa.column(name) for name in ("id", "state", "note", *_DEFAULTS)),
    )
    if held:
        op.bulk_insert(
            meta,
            [
                {
                    "id": 1,
                    "state": "stale",
                    "note": "not built yet: the database held complaints before the roll-up",
                }
            ],
        )
    else:
        op.bulk_insert(meta, [{"id": 1, "state": "ready", "note": None, **_DEFAULTS}])
    for statement in _PG_TRIGGERS if bind.dialect.name == "postgresql" else _SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name in ("delete", "truncate", "source"):
            op.execute(f"DROP TRIGGER rollup_stale_on_{name} ON complaints")
        op.execute("DROP FUNCTION rollup_mark_stale()")
    else:
        for name in ("delete", "source"):
            op.execute(f"DROP TRIGGER rollup_stale_on_{name}")
    op.drop_index("ix_complaints_rl_dur", table_name="complaints")
    op.drop_index("ix_complaints_rl_queue", table_name="complaints")
    with op.batch_alter_table("complaints") as batch:
        batch.drop_column("rl_dur")
        batch.drop_column("rl_week")
        batch.drop_column("rl_day")
    op.drop_table("rollup_closures")
    op.drop_table("rollup_days")
    op.drop_table("rollup_meta")

"""The schema is created only by migrations, and the models agree with them, on both engines."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from slamon.store import migrate
from slamon.store.engine import make_engine
from slamon.store.models import Base


def _diff(engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)


def test_upgrade_downgrade_upgrade_and_models_agree(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert migrate.current_revision(engine) is None
        migrate.upgrade(engine)
        head = migrate.head_revision(engine)
        assert migrate.current_revision(engine) == head
        assert _diff(engine) == []
        migrate.downgrade(engine, "base")
        assert migrate.current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == head
        assert _diff(engine) == []
        assert {"complaints", "sources"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_each_revision_steps_down_and_up(db_url: str) -> None:
    """Every revision's downgrade undoes its upgrade (walk the chain one step at a time)."""
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        head = migrate.head_revision(engine)
        revisions = []
        while (rev := migrate.current_revision(engine)) is not None:
            revisions.append(rev)
            migrate.downgrade(engine, "-1")
        assert revisions[0] == head
        for rev in reversed(revisions):
            migrate.upgrade(engine, rev)
            assert migrate.current_revision(engine) == rev
        assert _diff(engine) == []
    finally:
        engine.dispose()

"""Alembic environment. slamon passes its engine in ``config.attributes["engine"]``; run by hand,
``alembic -x url=sqlite:///slamon.db upgrade head`` works too."""

from __future__ import annotations

from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext

from slamon.store.engine import make_engine
from slamon.store.models import Base
from slamon.store.types import Instant

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Autogenerate writes Instant columns as plain BIGINT: a migration must never change
    meaning when slamon's Python types do."""
    if type_ == "type" and isinstance(obj, Instant):
        return "sa.BigInteger()"
    return False


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///slamon.db")
        engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("slamon migrations run online only: pass a database URL")
run_migrations_online()

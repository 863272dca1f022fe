"""Alembic, driven from slamon: the migrations ship inside the wheel (slamon/_migrations) and
live at the top of the repository (migrations/) in a checkout."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from slamon.errors import DatabaseError
from slamon.store.engine import mask_url


def _one_line(exc: BaseException) -> str:
    """The driver's own message (not SQLAlchemy's wrapping), on one line."""
    return " ".join(str(getattr(exc, "orig", None) or exc).split())


def migrations_dir() -> Path:
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_migrations", here.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise DatabaseError("the migrations are missing from this installation of slamon")


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise DatabaseError(f"cannot open {mask_url(engine.url)}: {_one_line(exc)}") from exc


def upgrade(engine: Engine, revision: str = "head") -> None:
    try:
        command.upgrade(alembic_config(engine), revision)
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"migration failed on {mask_url(engine.url)}: {_one_line(exc)}"
        ) from exc


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def require_current(engine: Engine) -> None:
    """Refuse to work on a database that is not at this slamon's schema."""
    current = current_revision(engine)
    head = head_revision(engine)
    if current == head:
        return
    where = mask_url(engine.url)
    if current is None:
        raise DatabaseError(f"{where} has no slamon schema yet: run `slamon db upgrade`")
    known = {
        rev.revision for rev in ScriptDirectory.from_config(alembic_config(engine)).walk_revisions()
    }
    if current not in known:
        raise DatabaseError(
            f"{where} is at revision {current}, newer than this slamon knows: upgrade slamon"
        )
    raise DatabaseError(f"{where} is at revision {current}, not {head}: run `slamon db upgrade`")

"""Engines for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from slamon.errors import DatabaseError


def normalize_url(raw: str) -> URL:
    """Parse a database URL; plain ``postgresql://`` means psycopg 3 (what slamon ships with)."""
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise DatabaseError(f"not a database URL: {mask_url(raw)}") from exc
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseError(
            f"unsupported database {url.get_backend_name()!r}: use sqlite:/// or postgresql://"
        )
    return url


def mask_url(raw: str | URL) -> str:
    """The URL with any password replaced by ***."""
    try:
        url = raw if isinstance(raw, URL) else make_url(raw)
    except ArgumentError:
        return "<unparseable URL>"
    return url.render_as_string(hide_password=True)


def make_engine(raw_url: str | URL, **kwargs: Any) -> Engine:
    url = raw_url if isinstance(raw_url, URL) else normalize_url(raw_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    # psycopg prepares a statement after five executions and keeps its generic plan for the
    # connection's life: planned while a table was small (a first sync), that plan is a
    # sequential scan, and a long sync slowed from 55 to 180+ ms a page. Plan every time.
    connect_args = {"prepare_threshold": None, **kwargs.pop("connect_args", {})}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling would begin transactions lazily and as DEFERRED; take
    # control so that writers can ask for BEGIN IMMEDIATE (see write_transaction()).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA busy_timeout = 30000")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes: on SQLite it takes the write lock at BEGIN, so that a reader
    turning writer never fails half way with 'database is locked'."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn

"""Shared fixtures.

Database tests run on SQLite always, and on PostgreSQL too when SLAMON_TEST_DATABASE_URL names a
server (an admin connection: the tests create a database of their own for the run, one schema per
test in it, and drop both afterwards).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from slamon.store import migrate
from slamon.store.engine import make_engine, normalize_url

PG_ENV = "SLAMON_TEST_DATABASE_URL"


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get(PG_ENV)
    if url:
        return f"PostgreSQL tests: on ({make_url(url).render_as_string(hide_password=True)})"
    return f"PostgreSQL tests: off (set {PG_ENV} to run them)"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """A database created for this test run on the server named by SLAMON_TEST_DATABASE_URL."""
    raw = os.environ.get(PG_ENV)
    if not raw:
        yield None
        return
    admin_url = normalize_url(raw)
    name = f"slamon_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database: str | None
) -> Iterator[str]:
    """An empty database (no schema yet) on each engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'slamon.db'}"
        return
    if pg_database is None:
        pytest.skip(f"PostgreSQL: set {PG_ENV}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    base = make_url(pg_database)
    with create_engine(base, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        eng = create_engine(base, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        eng.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database on each engine."""
    eng = make_engine(db_url)
    migrate.upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'slamon.db'}")
    migrate.upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()

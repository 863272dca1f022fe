"""The leader lock: of all daemons on one database, only the holder of this lock works.

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a fixed 64-bit key derived
  from ``"slamon-leader"``, taken on a connection of its own that stays open while the lock is
  held (never returned to a pool). Its ``application_name`` is the holder's identity, so that
  ``lock_holder`` can name it from ``pg_locks`` joined with ``pg_stat_activity``. The lock dies
  with that session: when the daemon dies, or the connection does, the server releases it, and
  ``still_held()`` (which asks the server) says False.
- SQLite: ``flock(LOCK_EX | LOCK_NB)`` on ``<database file>.lock`` beside the database, with the
  identity and the start time written into it. The kernel releases it when the process dies.
  flock works on one host only: a database on a network share is not protected.
- An in-memory SQLite database cannot be shared between processes: its lock always acquires.

Every method is non-blocking (apart from the network round trip on PostgreSQL) and safe to call
from several threads. None raises on a database error: it logs and answers False.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import threading
from datetime import UTC
from pathlib import Path
from typing import Protocol

import sqlalchemy
from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from slamon import clock
from slamon.errors import DatabaseError
from slamon.store.engine import mask_url

log = logging.getLogger("slamon.daemon.lock")

LOCK_NAME = "slamon-leader"
LOCK_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)
"""The advisory lock key: the first 8 bytes of SHA-256("slamon-leader"), a signed bigint."""

_PG_APPLICATION_NAME_MAX = 63  # NAMEDATALEN - 1: the server truncates longer names


class LeaderLock(Protocol):
    def try_acquire(self) -> bool:
        """Non-blocking: True when this lock holds the lead now (already or just taken)."""
        ...

    def release(self) -> None:
        """Let the lead go; idempotent."""
        ...

    @property
    def held(self) -> bool:
        """What this object believes, without asking anybody."""
        ...

    def still_held(self) -> bool:
        """Checks again (PostgreSQL: the session is alive and holds the lock)."""
        ...


def default_identity() -> str:
    """``slamon run HOST:PID``: how a daemon names itself in the lock."""
    return f"slamon run {socket.gethostname()}:{os.getpid()}"


def leader_lock(engine: sqlalchemy.Engine, identity: str, *, key: int = LOCK_KEY) -> LeaderLock:
    """The leader lock of the database behind ``engine``, held under the name ``identity``
    (``key``: PostgreSQL's advisory lock key, for tests)."""
    if engine.dialect.name == "postgresql":
        return PostgresLock(engine, identity, key=key)
    if engine.dialect.name == "sqlite":
        path = sqlite_lock_path(engine)
        if path is None:
            return MemoryLock()
        return FileLock(path, identity)
    raise ValueError(f"no leader lock for the {engine.dialect.name} dialect")


def lock_holder(engine: sqlalchemy.Engine, *, key: int = LOCK_KEY) -> str | None:
    """Who holds the lead now (their identity), or None when nobody does.

    Raises DatabaseError when it cannot tell (the server unreachable, the lock file unreadable)."""
    if engine.dialect.name == "postgresql":
        return _pg_holder(engine, key)
    if engine.dialect.name == "sqlite":
        path = sqlite_lock_path(engine)
        return None if path is None else _file_holder(path)
    raise ValueError(f"no leader lock for the {engine.dialect.name} dialect")


# --- PostgreSQL ------------------------------------------------------------------------------


def _halves(key: int) -> dict[str, int]:
    return {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF}


# How pg_locks shows a one-bigint advisory lock: the key's high and low halves, objsubid 1.
_PG_LOCK_ROWS = """
    FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted
      AND l.classid::bigint = :hi AND l.objid::bigint = :lo AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


class PostgresLock:
    def __init__(self, engine: sqlalchemy.Engine, identity: str, *, key: int = LOCK_KEY) -> None:
        self._url = engine.url
        self._identity = identity
        self._key = key
        self._mutex = threading.RLock()
        self._engine: sqlalchemy.Engine | None = None
        self._conn: Connection | None = None
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def _connect(self) -> Connection:
        if self._conn is None:
            # An engine of its own without a pool: closing the connection closes the session,
            # which is what releases the lock. AUTOCOMMIT: never "idle in transaction".
            self._engine = sqlalchemy.create_engine(
                self._url,
                poolclass=NullPool,
                isolation_level="AUTOCOMMIT",
                connect_args={
                    "application_name": self._identity[:_PG_APPLICATION_NAME_MAX],
                    "connect_timeout": 10,
                    # Notice a dead server or network: 30 s idle, then 3 probes 10 s apart.
                    "keepalives": 1,
                    "keepalives_idle": 30,
                    "keepalives_interval": 10,
                    "keepalives_count": 3,
                    "tcp_user_timeout": 60_000,
                },
            )
            self._conn = self._engine.connect()
        return self._conn

    def _drop(self) -> None:
        conn, eng = self._conn, self._engine
        self._conn = self._engine = None
        self._held = False
        for close in (conn.close if conn else None, eng.dispose if eng else None):
            if close is not None:
                try:
                    close()
                except Exception:  # a dead connection may fail to close; it is gone anyway
                    log.debug("closing the leader lock's connection failed", exc_info=True)

    def try_acquire(self) -> bool:
        with self._mutex:
            if self._held:
                return True
            try:
                conn = self._connect()
                got = conn.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
                ).scalar_one()
            except (SQLAlchemyError, OSError) as exc:
                log.warning(
                    "leader lock on %s: cannot ask the server: %s",
                    mask_url(self._url),
                    _one_line(exc),
                )
                self._drop()
                return False
            self._held = bool(got)
            return self._held

    def still_held(self) -> bool:
        with self._mutex:
            if not self._held or self._conn is None:
                return False
            try:
                mine = self._conn.execute(
                    text(f"SELECT count(*) {_PG_LOCK_ROWS} AND l.pid = pg_backend_pid()"),
                    _halves(self._key),
                ).scalar_one()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("leader lock lost: its connection failed: %s", _one_line(exc))
                self._drop()
                return False
            if not mine:
                log.warning("leader lock lost: the server no longer shows it as ours")
                self._drop()
                return False
            return True

    def release(self) -> None:
        with self._mutex:
            if self._held and self._conn is not None:
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
                except (SQLAlchemyError, OSError):
                    log.debug("unlocking failed; closing the session releases it", exc_info=True)
            self._drop()


def _pg_holder(engine: sqlalchemy.Engine, key: int) -> str | None:
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(f"SELECT l.pid, a.application_name {_PG_LOCK_ROWS}"),
                _halves(key),
            ).first()
            conn.rollback()
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"cannot ask {mask_url(engine.url)} who leads: {_one_line(exc)}"
        ) from exc
    if row is None:
        return None
    pid, name = row
    return str(name) if name else f"PostgreSQL backend pid {pid}"


# --- SQLite ----------------------------------------------------------------------------------


def sqlite_lock_path(engine: sqlalchemy.Engine) -> Path | None:
    """``<database file>.lock`` (absolute), or None for an in-memory database."""
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # a URI filename (?uri=true)
        database = database[len("file:") :].split("?", 1)[0]
        if engine.url.query.get("mode") == "memory" or not database or database == ":memory:":
            return None
    return Path(os.path.abspath(database + ".lock"))


class FileLock:
    def __init__(self, path: Path, identity: str) -> None:
        self.path = path
        self._identity = " ".join(identity.split())  # one line in the file
        self._mutex = threading.RLock()
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        with self._mutex:
            if self._fd is not None:
                return True
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                log.warning("leader lock: cannot open %s: %s", self.path, exc)
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # BlockingIOError: somebody holds it
                os.close(fd)
                return False
            try:
                started = clock.now().astimezone(UTC).isoformat()
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{self._identity}\n{started}\n".encode(), 0)
            except OSError as exc:  # the lock is ours all the same; only its label is missing
                log.warning("leader lock: cannot write %s: %s", self.path, exc)
            self._fd = fd
            return True

    def still_held(self) -> bool:
        with self._mutex:
            if self._fd is None:
                return False
            # Ours as long as the file at the path is still the one we locked: a deleted or
            # replaced lock file would let another daemon in.
            try:
                same = os.path.samestat(os.fstat(self._fd), os.stat(self.path))
            except OSError:
                same = False
            if not same:
                log.warning("leader lock lost: %s was removed or replaced", self.path)
                self._close()
            return same

    def release(self) -> None:
        with self._mutex:
            if self._fd is None:
                return
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            self._close()

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


def _file_holder(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DatabaseError(f"cannot read the lead lock {path}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            content = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            return content.splitlines()[0].strip() if content.strip() else "unknown"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class MemoryLock:
    """An in-memory database lives in one process: there is nobody to compete with."""

    def __init__(self) -> None:
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    def try_acquire(self) -> bool:
        self._held = True
        return True

    def still_held(self) -> bool:
        return self._held

    def release(self) -> None:
        self._held = False


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


__all__ = [
    "LOCK_KEY",
    "FileLock",
    "LeaderLock",
    "MemoryLock",
    "PostgresLock",
    "default_identity",
    "leader_lock",
    "lock_holder",
]

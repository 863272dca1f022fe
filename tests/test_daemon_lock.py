"""The leader lock between real processes, on SQLite (flock on a file) and PostgreSQL (an
advisory lock): one holds, the other does not; SIGKILL of the holder lets the other in; the
holder is named; release lets the other in."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from slamon.daemon.lock import LeaderLock, leader_lock, lock_holder, sqlite_lock_path
from slamon.errors import DatabaseError
from slamon.store.engine import make_engine

# A process holding a lock of its own, driven line by line on stdin.
CHILD = r"""
import sys
from slamon.daemon.lock import leader_lock
from slamon.errors import DatabaseError
from slamon.store.engine import make_engine

lock = leader_lock(make_engine(sys.argv[1]), sys.argv[2])
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "acquire":
        print(lock.try_acquire(), flush=True)
    elif cmd == "still":
        print(lock.still_held(), flush=True)
    elif cmd == "release":
        lock.release()
        print("released", flush=True)
"""


class Child:
    def __init__(self, url: str, identity: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, url, identity],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._read() == "ready"

    def _read(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def ask(self, cmd: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def acquire(self) -> bool:
        return self.ask("acquire") == "True"

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL
        self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def children(db_url: str) -> Iterator[list[Child]]:
    made: list[Child] = []
    yield made
    for child in made:
        child.close()


def acquire_soon(try_acquire: Callable[[], bool]) -> bool:
    """The next tries of a standby after the holder died. SQLite: the kernel drops the flock when
    the process dies, so the first try succeeds. PostgreSQL: the server ends the dead client's
    session when it reads EOF from its socket, a moment later; a standby retries (every
    standby_poll in the daemon), so retry here too, for at most 30 s."""
    deadline = time.monotonic() + 30
    while True:
        if try_acquire():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def test_one_holds_the_other_waits_and_takes_over_after_sigkill(
    db_url: str, children: list[Child]
) -> None:
    a = Child(db_url, "slamon run host-a:1")
    children.append(a)
    b = Child(db_url, "slamon run host-b:2")
    children.append(b)
    engine = make_engine(db_url)
    try:
        assert lock_holder(engine) is None
        assert a.acquire()
        assert a.acquire()  # holding already: still True
        assert not b.acquire()
        assert lock_holder(engine) == "slamon run host-a:1"
        assert a.ask("still") == "True"
        assert b.ask("still") == "False"

        a.kill()
        if engine.dialect.name == "sqlite":
            assert b.acquire()
        else:
            assert acquire_soon(b.acquire)
        assert lock_holder(engine) == "slamon run host-b:2"
        assert b.ask("still") == "True"
    finally:
        engine.dispose()


def test_release_lets_the_other_in(db_url: str, children: list[Child]) -> None:
    a = Child(db_url, "slamon run host-a:1")
    children.append(a)
    b = Child(db_url, "slamon run host-b:2")
    children.append(b)
    engine = make_engine(db_url)
    try:
        assert a.acquire()
        assert not b.acquire()
        assert a.ask("release") == "released"
        assert a.ask("release") == "released"  # idempotent
        assert a.ask("still") == "False"
        assert lock_holder(engine) is None
        assert b.acquire()  # immediately: release is synchronous on both engines
        assert lock_holder(engine) == "slamon run host-b:2"
        assert not a.acquire()
    finally:
        engine.dispose()


def is_held(lock: LeaderLock) -> bool:
    return lock.held  # read afresh (a bare `lock.held` after an assert is narrowed by mypy)


def test_in_process_locks_exclude_each_other(db_url: str) -> None:
    """Two lock objects in one process compete too (flock is per open file; advisory locks per
    session): a second lock object never mistakes the first one's lead for its own."""
    engine = make_engine(db_url)
    first = leader_lock(engine, "first")
    second = leader_lock(engine, "second")
    try:
        assert first.try_acquire()
        assert first.held
        assert not second.try_acquire()
        assert not second.held
        assert lock_holder(engine) == "first"
        first.release()
        assert not is_held(first)
        assert second.try_acquire()
        assert lock_holder(engine) == "second"
    finally:
        first.release()
        second.release()
        engine.dispose()


def test_postgres_lock_lost_with_its_session(db_url: str) -> None:
    """When the server ends the lock's session, still_held() says so and the lead is free."""
    engine = make_engine(db_url)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        pytest.skip("PostgreSQL only")
    lock = leader_lock(engine, "slamon run doomed:1")
    other = leader_lock(engine, "slamon run other:2")
    try:
        assert lock.try_acquire()
        with engine.connect() as conn:
            killed = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'slamon run doomed:1'"
                )
            ).scalar_one()
            conn.commit()
        assert killed
        assert not lock.still_held()
        assert not lock.held
        assert acquire_soon(other.try_acquire)
        assert lock_holder(engine) == "slamon run other:2"
        assert lock.try_acquire() is False  # reconnects, finds it taken
    finally:
        lock.release()
        other.release()
        engine.dispose()


def test_sqlite_lock_file_beside_the_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'data.db'}")
    lock = leader_lock(engine, "slamon run here:42")
    try:
        path = sqlite_lock_path(engine)
        assert path == tmp_path / "data.db.lock"
        assert lock.try_acquire()
        identity, started = path.read_text().splitlines()
        assert identity == "slamon run here:42"
        assert started.endswith("+00:00")
        # A lock file removed under a holder: the holder no longer counts itself the leader.
        path.unlink()
        assert not lock.still_held()
        assert not lock.held
        assert lock.try_acquire()
        assert lock.still_held()
    finally:
        lock.release()
        engine.dispose()
    assert lock_holder(engine) is None


def test_in_memory_sqlite_always_acquires() -> None:
    engine = make_engine("sqlite://")
    a = leader_lock(engine, "a")
    b = leader_lock(engine, "b")
    assert a.try_acquire() and b.try_acquire()
    assert a.still_held()
    a.release()
    assert not a.held
    assert lock_holder(engine) is None
    engine.dispose()


def test_unreachable_postgres_is_no_lead_and_an_error_to_ask(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = make_engine(f"postgresql://slamon:pw-not-shown@127.0.0.1:{port}/slamon")
    lock = leader_lock(engine, "slamon run nowhere:1")
    assert not lock.try_acquire()
    assert not lock.still_held()
    lock.release()
    assert "cannot ask the server" in caplog.text
    assert "pw-not-shown" not in caplog.text
    with pytest.raises(DatabaseError, match="who leads") as info:
        lock_holder(engine)
    assert "pw-not-shown" not in str(info.value)
    engine.dispose()


def test_unreadable_lock_file_is_an_error_to_ask(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'data.db'}")
    (tmp_path / "data.db.lock").symlink_to(tmp_path / "data.db.lock")  # a loop: ELOOP
    with pytest.raises(DatabaseError, match="cannot read the lead lock"):
        lock_holder(engine)
    assert not leader_lock(engine, "x").try_acquire()
    engine.dispose()

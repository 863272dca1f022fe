"""The daemon's own rows: what each job did (daemon_jobs), who leads (daemon_leader), and the
deletion of old history; read by `slamon status`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from slamon.store.models import alert_runs, daemon_jobs, daemon_leader, digest_slots, sources


def _insert(conn: Connection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


def record_job(
    conn: Connection,
    job: str,
    *,
    finished: bool = False,
    failed: bool = False,
    **values: Any,
) -> None:
    """Set ``values`` on the job's row (created on first use); ``finished`` counts a run,
    ``failed`` a failure."""
    changes = dict(values)
    if finished:
        changes["runs"] = daemon_jobs.c.runs + 1
        changes["failures"] = daemon_jobs.c.failures + int(failed)
    first = {**values, "job": job, "runs": int(finished), "failures": int(failed)}
    stmt = _insert(conn)(daemon_jobs).values(**first)
    conn.execute(stmt.on_conflict_do_update(index_elements=["job"], set_=changes or values))


def keep_jobs(conn: Connection, jobs: Sequence[str]) -> None:
    """Forget the jobs the schedule no longer has (a source or digest removed)."""
    conn.execute(delete(daemon_jobs).where(daemon_jobs.c.job.not_in(list(jobs))))


def jobs(conn: Connection) -> Sequence[Row[Any]]:
    return conn.execute(select(daemon_jobs).order_by(daemon_jobs.c.job)).all()


def failed_jobs(conn: Connection) -> list[str]:
    query = select(daemon_jobs.c.job).where(daemon_jobs.c.last_status == "failed")
    return list(conn.execute(query).scalars())


def take_lead(conn: Connection, holder: str, now: datetime) -> None:
    values = {"holder": holder, "since": now, "seen_at": now, "stopped_at": None}
    stmt = _insert(conn)(daemon_leader).values(id=1, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=values))


def mark_leader(conn: Connection, holder: str, **values: datetime) -> None:
    """seen_at (while leading) or stopped_at (a clean stop), if ``holder`` still leads."""
    conn.execute(
        update(daemon_leader)
        .where(daemon_leader.c.id == 1, daemon_leader.c.holder == holder)
        .values(**values)
    )


def leader(conn: Connection) -> dict[str, Any] | None:
    row = conn.execute(select(daemon_leader).where(daemon_leader.c.id == 1)).mappings().first()
    return dict(row) if row is not None else None


def last_successes(conn: Connection) -> list[tuple[str, datetime | None]]:
    """Each source's last successful sync (the sources table only: no count of complaints)."""
    rows = conn.execute(select(sources.c.name, sources.c.last_success_at))
    return [(name, last) for name, last in rows]


def purge_history(conn: Connection, before: datetime) -> tuple[int, int]:
    """Housekeeping: alert runs and digest slots older than ``before``; how many of each."""
    runs = conn.execute(delete(alert_runs).where(alert_runs.c.at < before)).rowcount
    slots = conn.execute(delete(digest_slots).where(digest_slots.c.slot < before)).rowcount
    return runs, slots

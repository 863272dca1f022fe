"""`slamon status`: what the daemon and the data look like now, and what needs attention.

Read from the database only (and the lead's lock), so it tells the truth whichever host asks:
the sources' last sync and lag, the alerts firing, the outbox backlog, each job's last and next
run as the leading daemon recorded them, and who holds the lead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from slamon import sources as sources_mod
from slamon.config import Config
from slamon.daemon.lock import lock_holder
from slamon.domain import sync_failure
from slamon.notify import outbox
from slamon.store import alerts as alerts_store
from slamon.store import daemon as daemon_store

#: Pending messages older than this need attention (the daemon delivers every minute).
OUTBOX_LATE = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class SourceLine:
    name: str
    last_success_at: datetime | None
    lag: timedelta | None
    error: str | None
    stale: bool


@dataclass(frozen=True, slots=True)
class JobLine:
    job: str
    last_finished_at: datetime | None
    last_status: str | None
    last_error: str | None
    next_run_at: datetime | None
    runs: int
    failures: int


@dataclass
class Status:
    at: datetime
    holder: str | None
    leader_row: dict[str, Any] | None
    sources: list[SourceLine]
    firing: list[str]
    outbox: dict[str, int]
    oldest_pending: datetime | None
    jobs: list[JobLine]
    attention: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        def iso(v: datetime | None) -> str | None:
            return None if v is None else v.isoformat()

        return {
            "at": iso(self.at),
            "leader": self.holder,
            "leader_record": {
                k: (iso(v) if isinstance(v, datetime) else v)
                for k, v in (self.leader_row or {}).items()
            },
            "sources": [
                {
                    "name": s.name,
                    "last_success_at": iso(s.last_success_at),
                    "lag_seconds": None if s.lag is None else int(s.lag.total_seconds()),
                    "error": s.error,
                    "stale": s.stale,
                }
                for s in self.sources
            ],
            "alerts_firing": self.firing,
            "outbox": self.outbox,
            "outbox_oldest_pending": iso(self.oldest_pending),
            "jobs": [
                {
                    "job": j.job,
                    "last_finished_at": iso(j.last_finished_at),
                    "last_status": j.last_status,
                    "last_error": j.last_error,
                    "next_run_at": iso(j.next_run_at),
                    "runs": j.runs,
                    "failures": j.failures,
                }
                for j in self.jobs
            ],
            "attention": self.attention,
            "ok": not self.attention,
        }


def collect(engine: Engine, config: Config, now: datetime) -> Status:
    stale_after = config.settings.alerts.stale_after
    poll = config.settings.daemon.standby_poll
    lines = []
    for known in sources_mod.statuses(engine, config):
        if not known.configured:
            continue
        last = known.last_success_at
        lag = None if last is None else now - last
        stale = lag is None or lag > stale_after
        error = sync_failure(known.last_error, last, known.last_attempt_at)
        lines.append(SourceLine(known.name, last, lag, error, stale))
    with engine.connect() as conn:
        firing = alerts_store.firing_keys(conn)
        counts = outbox.backlog(conn)
        oldest = outbox.oldest_waiting(conn)
        jobs = [
            JobLine(
                r.job,
                r.last_finished_at,
                r.last_status,
                r.last_error,
                r.next_run_at,
                r.runs,
                r.failures,
            )
            for r in daemon_store.jobs(conn)
        ]
        leader = daemon_store.leader(conn)
    holder = lock_holder(engine)
    status = Status(now, holder, leader, lines, firing, counts, oldest, jobs)
    need = status.attention
    if holder is None:
        need.append("no daemon holds the lead: `slamon run` is not running")
    elif leader is not None and leader["seen_at"] < now - 3 * poll - timedelta(seconds=30):
        need.append(f"the leading daemon was last seen at {leader['seen_at']:%Y-%m-%d %H:%M} UTC")
    for s in lines:
        if s.error:
            need.append(f"source {s.name}: last sync failed: {s.error}")
        elif s.stale:
            need.append(f"source {s.name}: no successful sync for longer than stale_after")
    if firing:
        need.append(f"{len(firing)} alert(s) firing")
    if counts.get("failed"):
        need.append(f"{counts['failed']} message(s) failed to deliver (outbox)")
    if oldest is not None and oldest < now - OUTBOX_LATE:
        need.append(f"messages wait in the outbox since {oldest:%Y-%m-%d %H:%M} UTC")
    for j in jobs:
        if j.last_status == "failed":
            need.append(f"job {j.job} failed: {j.last_error}")
    return status

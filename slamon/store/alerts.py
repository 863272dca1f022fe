"""Reading alert states and history, and keeping silences: the SQL behind `slamon alerts`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from slamon.store.models import alert_states, alert_transitions, silences


def states(conn: Connection) -> Sequence[Row[Any]]:
    return conn.execute(select(alert_states)).all()


def firing_keys(conn: Connection) -> list[str]:
    query = select(alert_states.c.key).where(alert_states.c.status == "firing")
    return list(conn.execute(query.order_by(alert_states.c.key)).scalars())


def transitions(conn: Connection, limit: int) -> Sequence[Row[Any]]:
    t = alert_transitions
    return conn.execute(select(t).order_by(t.c.at.desc(), t.c.id.desc()).limit(limit)).all()


def add_silence(
    conn: Connection,
    match: dict[str, str],
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    created_by: str,
) -> int:
    return int(
        conn.execute(
            insert(silences)
            .values(
                match=json.dumps(match, sort_keys=True),
                starts_at=starts_at,
                ends_at=ends_at,
                reason=reason,
                created_by=created_by,
            )
            .returning(silences.c.id)
        ).scalar_one()
    )


def all_silences(conn: Connection) -> Sequence[Row[Any]]:
    return conn.execute(select(silences).order_by(silences.c.id)).all()


def active_silences(conn: Connection, at: datetime) -> list[dict[str, str]]:
    """The match of every silence in force at ``at``."""
    query = select(silences.c.match).where(
        silences.c.starts_at <= at, silences.c.ends_at > at, silences.c.cancelled_at.is_(None)
    )
    return [json.loads(m) for m in conn.execute(query).scalars()]


def lift_silence(conn: Connection, silence_id: int, at: datetime) -> bool:
    """End a silence now; False when there is no such silence in force."""
    done = conn.execute(
        update(silences)
        .where(silences.c.id == silence_id, silences.c.cancelled_at.is_(None))
        .values(cancelled_at=at)
    ).rowcount
    return bool(done)

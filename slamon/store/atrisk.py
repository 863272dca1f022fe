"""Open complaints whose deadline falls soon: counted per segment in SQL, listed capped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from slamon.domain import Closure
from slamon.store.models import complaints as _c


@dataclass(frozen=True, slots=True)
class OpenComplaint:
    source: str
    external_id: str
    created_at: datetime
    queue: str
    channel: str
    category: str
    priority: str
    subject: str
    url: str


def _conditions(at: datetime, created: tuple[datetime, datetime], closure: Closure) -> list[Any]:
    closed = _c.c.closed_at if closure is Closure.FINAL else _c.c.first_closed_at
    return [
        _c.c.created_at >= created[0],
        _c.c.created_at < created[1],
        _c.c.created_at <= at,
        _c.c.excluded_reason.is_(None),
        or_(closed.is_(None), closed > at),
    ]


def count_open(
    conn: Connection,
    at: datetime,
    created: tuple[datetime, datetime],
    closure: Closure,
    by: Sequence[str],
) -> dict[tuple[str, str], int]:
    """Open complaints created in ``created`` as of ``at``: the total under ("", "") and one
    count per value of each field in ``by`` under (field, value)."""
    conds = _conditions(at, created, closure)
    counts: dict[tuple[str, str], int] = {
        ("", ""): conn.execute(select(func.count()).where(and_(*conds))).scalar_one()
    }
    for name in by:
        col = _c.c[name]
        for value, count in conn.execute(select(col, func.count()).where(*conds).group_by(col)):
            counts[(name, value)] = count
    return counts


def list_open(
    conn: Connection,
    at: datetime,
    created: tuple[datetime, datetime],
    closure: Closure,
    filters: dict[str, str],
    limit: int,
) -> list[OpenComplaint]:
    """The oldest open complaints of the range (the earliest deadlines first), at most ``limit``."""
    query = (
        select(
            _c.c.source,
            _c.c.external_id,
            _c.c.created_at,
            _c.c.queue,
            _c.c.channel,
            _c.c.category,
            _c.c.priority,
            _c.c.subject,
            _c.c.url,
        )
        .where(*_conditions(at, created, closure))
        .where(*[_c.c[k] == v for k, v in filters.items()])
        .order_by(_c.c.created_at, _c.c.id)
        .limit(limit)
    )
    return [OpenComplaint(*row) for row in conn.execute(query)]

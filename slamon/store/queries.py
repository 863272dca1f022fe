"""Capped reads for digests: a few open complaints (oldest first, or created in given ranges)
with the count of all that match, and the sources' sync state.

Open, as SERVICE-LEVEL.md counts it: created by as_of, not excluded (no exclusion reason, not
closed before it was created), and not closed as of as_of under the configured closure rule. Only
``limit`` rows ever reach Python; the total comes from a window count in the same statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, func, or_, select

from slamon.domain import SEGMENT_FIELDS, Closure
from slamon.store.models import complaints, sources

_c = complaints.c
_s = sources.c

#: The kind `slamon import` registers a source with (store.complaints.ensure_source).
IMPORT_KIND = "import"


@dataclass(frozen=True, slots=True)
class OpenComplaint:
    source: str
    external_id: str
    created_at: datetime
    queue: str
    subject: str
    url: str


@dataclass(frozen=True, slots=True)
class CappedList:
    items: tuple[OpenComplaint, ...]
    #: Every complaint that matched, shown or not.
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.items)


def _open_conditions(
    as_of: int, closure: Closure, filters: Mapping[str, str]
) -> list[ColumnElement[bool]]:
    closed = _c.closed_at if closure is Closure.FINAL else _c.first_closed_at
    conds: list[ColumnElement[bool]] = [
        _c.excluded_reason.is_(None),
        _c.created_at <= as_of,
        or_(closed.is_(None), closed > as_of),
        # Closed before it was created (even if after as_of): excluded from every metric.
        or_(closed.is_(None), closed >= _c.created_at),
    ]
    for name, value in filters.items():
        if name not in SEGMENT_FIELDS:
            raise ValueError(f"not a segment field: {name}")
        conds.append(_c[name] == value)
    return conds


def open_complaints(
    conn: Connection,
    *,
    as_of: int,
    closure: Closure,
    filters: Mapping[str, str],
    limit: int,
    created: Sequence[Sequence[tuple[int, int]]] | None = None,
) -> CappedList:
    """The oldest ``limit`` complaints open as of ``as_of`` (epoch seconds) and how many are open
    in all. With ``created``, only those created within one of the half-open epoch ranges
    [start, stop), given in groups: the complaints of an earlier group come first. Ties in
    creation time are broken by source and id, so the list is stable."""
    conds = _open_conditions(as_of, closure, filters)
    order: list[ColumnElement[Any]] = []
    if created is not None:
        groups = [
            or_(*(and_(_c.created_at >= a, _c.created_at < b) for a, b in group))
            for group in created
            if group
        ]
        if not groups:
            return CappedList((), 0)
        conds.append(or_(*groups))
        if len(groups) > 1:
            order.append(case(*((g, i) for i, g in enumerate(groups)), else_=len(groups)))
    query = (
        select(
            _c.source,
            _c.external_id,
            _c.created_at,
            _c.queue,
            _c.subject,
            _c.url,
            func.count().over().label("total"),
        )
        .where(*conds)
        .order_by(*order, _c.created_at, _c.source, _c.external_id)
        .limit(limit)
    )
    rows = conn.execute(query).all()
    items = tuple(
        OpenComplaint(
            source=r.source,
            external_id=r.external_id,
            created_at=r.created_at,
            queue=r.queue,
            subject=r.subject,
            url=r.url,
        )
        for r in rows
    )
    return CappedList(items, int(rows[0].total) if rows else 0)


@dataclass(frozen=True, slots=True)
class SourceState:
    name: str
    kind: str
    last_success_at: datetime | None
    last_error: str | None
    #: For sources filled by `slamon import`: when their complaints last changed.
    last_import_at: datetime | None


def source_states(conn: Connection, names: Sequence[str] | None = None) -> list[SourceState]:
    """Each source's sync state, by name; imported sources also get the last time one of their
    complaints was written (they have no sync to record a success)."""
    query = select(_s.name, _s.kind, _s.last_success_at, _s.last_error).order_by(_s.name)
    if names is not None:
        query = query.where(_s.name.in_(names))
    rows = conn.execute(query).all()
    imported = [r.name for r in rows if r.kind == IMPORT_KIND]
    last_import: dict[str, datetime] = {}
    if imported:
        changed = (
            select(_c.source, func.max(_c.changed_at).label("at"))
            .where(_c.source.in_(imported))
            .group_by(_c.source)
        )
        # max() keeps the column's type: the Instant comes back as an aware datetime.
        last_import = {r.source: r.at for r in conn.execute(changed) if r.at is not None}
    return [
        SourceState(
            name=r.name,
            kind=r.kind,
            last_success_at=r.last_success_at,
            last_error=r.last_error,
            last_import_at=last_import.get(r.name),
        )
        for r in rows
    ]

"""The SQL that counts service levels over raw complaint rows (SQLite and PostgreSQL alike).

The local creation days of the report go into a temporary table (one row per day: its UTC bounds,
its period label and, in calendar and working modes, each threshold's deadline instant), which is
joined to the complaints by range on created_at. One statement then counts per group: complaints,
excluded, closed (as of as_of) and their summed closure seconds, and per threshold the matured
complaints and the hits. A second statement reads the ranks that median and p90 need with window
functions, so only a handful of values per group ever reach Python.

Every rule of SERVICE-LEVEL.md that decides a count is written here once:
- excluded: the source marks it deleted/spam/merged, or it closed before it was created;
- a closure after as_of has not happened: closed means closed_at <= as_of;
- matured: deadline <= as_of; hit: matured and closed_at < deadline;
- complaints created after as_of do not exist: each day's upper bound is capped at as_of + 1
  (one bound on created_at per day, so that SQLite's index range stops at the day's end).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    case,
    column,
    func,
    literal,
    or_,
    select,
    table,
)

from slamon.domain import SEGMENT_FIELDS, Closure, DayMode
from slamon.servicelevel.cohort import CohortDay

_SECONDS_PER_DAY = 86400

# The complaints table as the counting sees it: plain integers, no Python-side conversion.
_c = table(
    "complaints",
    column("created_at", BigInteger),
    column("closed_at", BigInteger),
    column("first_closed_at", BigInteger),
    column("excluded_reason", Text),
    *(column(name, Text) for name in SEGMENT_FIELDS),
)

GroupKey = tuple[str | None, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class GroupCounts:
    period: str | None
    segment: tuple[str, ...]
    total: int  # every complaint created in the group's days up to as_of
    excluded: int
    closed: int  # included complaints closed as of as_of
    closed_seconds: int
    matured: tuple[int, ...]  # per threshold
    hits: tuple[int, ...]
    #: With LevelSpec.carry, per threshold i > 0: matured for threshold i and closed before the
    #: deadline of threshold i - 1 (what a survival curve needs for its risk sets); else empty.
    carried: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class LevelSpec:
    """What to count: thresholds, day mode, closure rule, grouping and equality filters."""

    as_of: int  # epoch seconds
    thresholds: tuple[int, ...]
    mode: DayMode
    closure: Closure
    by: tuple[str, ...] = ()
    by_period: bool = True
    filters: Mapping[str, str] | None = None
    carry: bool = False


def _days_table(n_thresholds: int) -> Table:
    return Table(
        "slamon_report_days",
        MetaData(),
        Column("d", Integer, primary_key=True),
        Column("start", BigInteger, nullable=False),
        Column("stop", BigInteger, nullable=False),
        Column("period", Text),
        *(Column(f"dl{i}", BigInteger) for i in range(n_thresholds)),
        prefixes=["TEMPORARY"],
    )


class _Days:
    """The report's days as a temporary table for the duration of a with-block."""

    def __init__(
        self, conn: Connection, days: Sequence[CohortDay], n_thresholds: int, as_of: int
    ) -> None:
        self.conn = conn
        self.table = _days_table(n_thresholds)
        self.rows = [
            {
                "d": day.day.toordinal(),
                "start": day.start,
                # Complaints created after as_of do not exist yet.
                "stop": min(day.stop, as_of + 1),
                "period": day.period,
                **{f"dl{i}": dl for i, dl in enumerate(day.deadlines)},
            }
            for day in days
        ]

    def __enter__(self) -> Table:
        self.table.drop(self.conn, checkfirst=True)
        self.table.create(self.conn)
        if self.rows:
            self.conn.execute(self.table.insert(), self.rows)
        if self.conn.dialect.name == "postgresql":
            self.conn.exec_driver_sql(f"ANALYZE {self.table.name}")
        return self.table

    def __exit__(self, *exc: object) -> None:
        self.table.drop(self.conn, checkfirst=True)


def _closure_column(closure: Closure) -> ColumnElement[Any]:
    return _c.c.closed_at if closure is Closure.FINAL else _c.c.first_closed_at


def _included(closed: ColumnElement[Any]) -> ColumnElement[bool]:
    """Not excluded: never NULL, so that NOT and CASE treat it as a plain boolean."""
    return and_(
        _c.c.excluded_reason.is_(None),
        or_(closed.is_(None), closed >= _c.c.created_at),
    )


def _where(days: Table, spec: LevelSpec) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [
        _c.c.created_at >= days.c.start,
        _c.c.created_at < days.c.stop,
    ]
    for name, value in (spec.filters or {}).items():
        conds.append(_c.c[name] == value)
    return conds


def _group_columns(days: Table, spec: LevelSpec) -> list[ColumnElement[Any]]:
    cols: list[ColumnElement[Any]] = []
    cols.append(days.c.period if spec.by_period else literal(None, Text).label("period"))
    cols.extend(_c.c[name] for name in spec.by)
    return cols


def count_groups(conn: Connection, days: Sequence[CohortDay], spec: LevelSpec) -> list[GroupCounts]:
    """Counts per (period, segment) over the given days; groups with no complaint are absent."""
    if not days:
        return []
    for name in (*spec.by, *(spec.filters or {})):
        if name not in SEGMENT_FIELDS:
            raise ValueError(f"not a segment field: {name}")
    with _Days(conn, days, len(spec.thresholds), spec.as_of) as d:
        return _count(conn, d, spec)


def _count(conn: Connection, d: Table, spec: LevelSpec) -> list[GroupCounts]:
    cl = _closure_column(spec.closure)
    inc = _included(cl)
    closed = and_(inc, cl <= spec.as_of)
    aggs: list[ColumnElement[Any]] = [
        func.count().label("total"),
        func.sum(case((inc, 0), else_=1)).label("excluded"),
        func.sum(case((closed, 1), else_=0)).label("closed"),
        func.sum(case((closed, cl - _c.c.created_at), else_=0)).label("closed_seconds"),
    ]
    deadlines = [
        _c.c.created_at + n * _SECONDS_PER_DAY if spec.mode is DayMode.ELAPSED else d.c[f"dl{i}"]
        for i, n in enumerate(spec.thresholds)
    ]
    for i, dl in enumerate(deadlines):
        matured = and_(inc, dl <= spec.as_of)
        aggs.append(func.sum(case((matured, 1), else_=0)).label(f"m{i}"))
        aggs.append(func.sum(case((and_(matured, cl < dl), 1), else_=0)).label(f"h{i}"))
    if spec.carry:
        for i in range(1, len(deadlines)):
            both = and_(inc, deadlines[i] <= spec.as_of, cl < deadlines[i - 1])
            aggs.append(func.sum(case((both, 1), else_=0)).label(f"c{i}"))
    groups = _group_columns(d, spec)
    query = select(*groups, *aggs).select_from(d.join(_c, and_(*_where(d, spec)))).group_by(*groups)
    out = []
    k = len(spec.thresholds)
    for row in conn.execute(query):
        values = tuple(row)
        period = values[0]
        segment = tuple(str(v) for v in values[1 : 1 + len(spec.by)])
        rest = values[1 + len(spec.by) :]
        total, excluded, n_closed, secs = (int(v or 0) for v in rest[:4])
        per = [int(v or 0) for v in rest[4 : 4 + 2 * k]]
        carried = tuple(int(v or 0) for v in rest[4 + 2 * k :])
        out.append(
            GroupCounts(
                period=period,
                segment=segment,
                total=total,
                excluded=excluded,
                closed=n_closed,
                closed_seconds=secs,
                matured=tuple(per[2 * i] for i in range(k)),
                hits=tuple(per[2 * i + 1] for i in range(k)),
                carried=carried,
            )
        )
    return out


def _rank_filter(rn: ColumnElement[Any], cnt: ColumnElement[Any]) -> ColumnElement[bool]:
    """Rows at the ranks numpy's linear median and p90 interpolate between (0-based, exact
    integer arithmetic: floor and ceiling of (cnt - 1) / 2 and 9 (cnt - 1) / 10)."""
    r = rn - 1
    return or_(
        r == (cnt - 1) // 2,
        r == cnt // 2,
        r == (9 * (cnt - 1)) // 10,
        r == (9 * (cnt - 1) + 9) // 10,
    )


@dataclass(frozen=True, slots=True)
class RankedDurations:
    """Closure durations (seconds) at the ranks median and p90 need, per group and in total."""

    groups: dict[GroupKey, dict[int, int]]
    total: dict[int, int]


def closure_ranks(
    conn: Connection, days: Sequence[CohortDay], spec: LevelSpec, *, with_total: bool
) -> RankedDurations:
    if not days:
        return RankedDurations({}, {})
    with _Days(conn, days, len(spec.thresholds), spec.as_of) as d:
        cl = _closure_column(spec.closure)
        dur = (cl - _c.c.created_at).label("dur")
        groups = _group_columns(d, spec)
        partition = [g for g in groups if spec.by_period or g is not groups[0]]
        rn = func.row_number().over(partition_by=partition or None, order_by=dur)
        cnt = func.count().over(partition_by=partition or None)
        cols: list[ColumnElement[Any]] = [
            *(g.label(f"g{i}") for i, g in enumerate(groups)),
            dur,
            rn.label("rn"),
            cnt.label("cnt"),
        ]
        if with_total:
            cols += [
                func.row_number().over(order_by=dur).label("trn"),
                func.count().over().label("tcnt"),
            ]
        inner = (
            select(*cols)
            .select_from(d.join(_c, and_(*_where(d, spec))))
            .where(_included(cl), cl <= spec.as_of)
            .subquery()
        )
        keep = _rank_filter(inner.c.rn, inner.c.cnt)
        if with_total:
            keep = or_(keep, _rank_filter(inner.c.trn, inner.c.tcnt))
        out_groups: dict[GroupKey, dict[int, int]] = {}
        total: dict[int, int] = {}
        n_groups = len(groups)
        for row in conn.execute(select(inner).where(keep)):
            values = tuple(row)
            key: GroupKey = (values[0], tuple(str(v) for v in values[1:n_groups]))
            duration, rank = int(values[n_groups]), int(values[n_groups + 1]) - 1
            out_groups.setdefault(key, {})[rank] = duration
            if with_total:
                total[int(values[n_groups + 3]) - 1] = duration
        return RankedDurations(out_groups, total)

"""Service-level counts from the roll-up (store/rollup.py), and median / p90 from raw rows through
the indexes made for them. Both give, field by field, what store/levels.py counts over raw rows.

Notation: d = local creation day, c = local closing day, ad = local day of as_of, DL = the
deadline day of a complaint created on d for threshold N (calendar: d + N; working: the N-th
working day after d), start(D) = the first instant of local day D. The deadline is start(DL + 1),
and a local day is a non-decreasing function of the instant, so (SERVICE-LEVEL.md):

- matured:  start(DL + 1) <= as_of        iff  DL < ad            (depends on d and N only)
- hit:      matured and closed < start(DL + 1)  iff  matured and c <= DL
  (never "working days between <= N": a Saturday close after a Friday deadline is late);
- closed as of as_of: c < ad, or c = ad and closed_at <= as_of. The day grain cannot see inside
  day ad, so two corrections come from raw rows: closures on day ad after as_of (not closed yet),
  and complaints created on day ad after as_of (they do not exist yet). Both are empty when no
  stored closure is later than as_of (rollup_meta.closed_hwm) and, for the second, when day ad
  holds nothing after as_of: the usual case of a report as of now.

Days, weeks and months are unions of days, so one pair of tables serves every cohort grain.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Integer, MetaData, Table, Text, text

from slamon.domain import Closure
from slamon.store.levels import GroupCounts, GroupKey, LevelSpec, RankedDurations
from slamon.store.rollup import TOTAL, week_number

#: A cohort across queues holding at least this share of all closed complaints is read by
#: walking the closure-time index (rl_dur first) rather than sorting its rows.
WALK_SHARE = 0.3


@dataclass(frozen=True, slots=True)
class Day:
    """One local creation day of a report, as the roll-up queries join it."""

    d: int  # days since 1970-01-01, local
    start: int  # first instant of the day (epoch seconds)
    stop: int  # first instant of the next day (not capped at as_of)
    period: str | None
    #: Per threshold, the deadline day (days since 1970-01-01); empty in elapsed mode.
    deadline_days: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Grain:
    """Which roll-up rows answer: ``dim`` (TOTAL or a segment field), only ``value`` of it when
    given (a filter), and whether the value is the rows' segment (grouped by ``dim``)."""

    dim: str
    value: str | None = None
    grouped: bool = False


@dataclass(frozen=True, slots=True)
class AsOf:
    instant: int  # epoch seconds
    day: int  # its local day
    next_start: int  # first instant of the local day after it
    #: No stored closure is later than this (None: none stored).
    closed_hwm: int | None

    @property
    def closures_after(self) -> bool:
        return self.closed_hwm is not None and self.closed_hwm > self.instant


_TEMP = "slamon_rollup_days"


@contextmanager
def _days_table(
    conn: Connection, days: Sequence[Day], k: int, as_of_day: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The report's days as a relation named slamon_rollup_days: (d, start, stop, period,
    dlmax, dl0.., m0..), mI = 1 when threshold I has matured for day d, dlmax the latest
    matured deadline day. Yields the SQL to put before a statement and its parameters: on
    SQLite a temporary table (nothing to put before), on PostgreSQL a WITH over arrays (no
    catalog churn, no ANALYZE per report)."""
    columns: dict[str, list[Any]] = (
        {name: [] for name in ("d", "start", "stop", "period", "dlmax")}
        | {f"dl{i}": [] for i in range(k)}
        | {f"m{i}": [] for i in range(k)}
    )
    for day in days:
        matured = [1 if dl < as_of_day else 0 for dl in day.deadline_days]
        reach = [dl for dl, m in zip(day.deadline_days, matured, strict=True) if m]
        values = [day.d, day.start, day.stop, day.period, max(reach) if reach else None]
        values += [*day.deadline_days, *matured]
        for column, value in zip(columns.values(), values, strict=True):
            column.append(value)
    types = {"start": "BIGINT", "stop": "BIGINT", "period": "TEXT"}
    if conn.dialect.name == "postgresql":
        arrays = ", ".join(f"CAST(:t_{name} AS {types.get(name, 'INTEGER')}[])" for name in columns)
        prefix = f"WITH {_TEMP} AS (SELECT * FROM unnest({arrays}) AS u({', '.join(columns)})) "
        yield prefix, {f"t_{name}": values for name, values in columns.items()}
        return
    table = Table(
        _TEMP,
        MetaData(),
        Column("d", Integer, primary_key=True),
        *(
            Column(name, {"BIGINT": BigInteger, "TEXT": Text}.get(types.get(name, ""), Integer))
            for name in columns
            if name != "d"
        ),
        prefixes=["TEMPORARY"],
    )
    table.drop(conn, checkfirst=True)
    table.create(conn)
    try:
        rows = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
        if rows:
            conn.execute(table.insert(), rows)
        yield "", {}
    finally:
        table.drop(conn, checkfirst=True)


def _value_filter(grain: Grain, alias: str) -> str:
    return "" if grain.value is None else f" AND {alias}.value = :value"


def _closure(spec: LevelSpec) -> str:
    return "closed_at" if spec.closure is Closure.FINAL else "first_closed_at"


def count_groups(
    conn: Connection, days: Sequence[Day], spec: LevelSpec, grain: Grain, as_of: AsOf
) -> list[GroupCounts]:
    """What levels.count_groups counts over raw rows, from the roll-up (calendar and working
    modes). Groups with no complaint are absent."""
    if not days:
        return []
    k = len(spec.thresholds)
    params: dict[str, Any] = {
        "dim": grain.dim,
        "value": grain.value,
        "ad": as_of.day,
        "d0": days[0].d,
        "d1": days[-1].d,
    }
    acc: dict[tuple[str | None, str], list[int]] = {}
    width = 6 + 2 * k + max(k - 1, 0)  # n nx nc secs after after_secs | m.. h.. | carried..

    def slot(period: str | None, value: str) -> list[int]:
        row = acc.get((period, value))
        if row is None:
            row = acc[period, value] = [0] * width
        return row

    with _days_table(conn, days, k, as_of.day) as (prefix, relation):
        params.update(relation)
        matured = ", ".join(f"sum(r.n * t.m{i})" for i in range(k))
        totals = (
            "SELECT t.period, r.value, sum(r.n), sum(r.nx), sum(r.nc), sum(r.secs), "
            + matured
            + f" FROM {_TEMP} t JOIN rollup_days r ON r.dim = :dim AND r.d = t.d"
            + _value_filter(grain, "r")
            + " GROUP BY t.period, r.value"
        )
        for row in conn.execute(text(prefix + totals), params):
            s = slot(row[0], row[1])
            for i in range(4):
                s[i] += int(row[2 + i])
            for i in range(k):
                s[6 + i] += int(row[6 + i])
        # Per (day, value) first, in the primary key's order (the groups stream, no sort), then
        # per period: closures by the deadline day (inner), counted for matured days (outer).
        pairs = [(f"dl{i}", f"m{i}") for i in range(k)]
        if spec.carry:
            pairs += [(f"dl{i - 1}", f"m{i}") for i in range(1, k)]
        inner = ", ".join(
            f"sum(CASE WHEN r.c <= t.{dl} THEN r.n ELSE 0 END) AS h{j}"
            for j, (dl, _) in enumerate(pairs)
        )
        outer = ", ".join(f"sum(x.h{j} * t.{m})" for j, (_, m) in enumerate(pairs))
        hits = (
            f"SELECT t.period, x.value, {outer} FROM ("
            f"SELECT r.d AS d, r.value AS value, {inner}"
            f" FROM rollup_closures r JOIN {_TEMP} t ON t.d = r.d"
            " WHERE r.dim = :dim AND r.d >= :d0 AND r.d <= :d1"
            + _value_filter(grain, "r")
            + " AND t.dlmax IS NOT NULL AND r.c <= t.dlmax GROUP BY r.d, r.value"
            f") x JOIN {_TEMP} t ON t.d = x.d GROUP BY t.period, x.value"
        )
        for row in conn.execute(text(prefix + hits), params):
            s = slot(row[0], row[1])
            for i in range(k):
                s[6 + k + i] += int(row[2 + i])
            if spec.carry:
                for i in range(k - 1):
                    s[6 + 2 * k + i] += int(row[2 + k + i])
        if as_of.closures_after:
            _subtract_closures_after(conn, spec, grain, as_of, prefix, params, slot)
        if days[-1].d == as_of.day:
            _subtract_created_after(conn, spec, grain, as_of, days[-1], slot)
    out = []
    for (period, value), s in acc.items():
        n, nx, nc, secs, after, after_secs = s[:6]
        if n + nx == 0:
            continue  # only complaints created after as_of: the group does not exist yet
        out.append(
            GroupCounts(
                period=period,
                segment=(value,) if grain.grouped else (),
                total=n + nx,
                excluded=nx,
                closed=nc - after,
                closed_seconds=secs - after_secs,
                matured=tuple(s[6 : 6 + k]),
                hits=tuple(s[6 + k : 6 + 2 * k]),
                carried=tuple(s[6 + 2 * k :]) if spec.carry else (),
            )
        )
    return out


def _subtract_closures_after(
    conn: Connection,
    spec: LevelSpec,
    grain: Grain,
    as_of: AsOf,
    prefix: str,
    params: dict[str, Any],
    slot: Any,
) -> None:
    """Closures after as_of have not happened yet: those on a local day after as_of's from the
    roll-up, those later on as_of's own day from raw rows (of the creation days that have any
    closure on that day)."""
    later = (
        "SELECT t.period, r.value, sum(r.n), sum(r.secs)"
        f" FROM {_TEMP} t JOIN rollup_closures r ON r.dim = :dim AND r.d = t.d"
        + _value_filter(grain, "r")
        + " WHERE r.c > :ad GROUP BY t.period, r.value"
    )
    for row in conn.execute(text(prefix + later), params):
        s = slot(row[0], row[1])
        s[4] += int(row[2])
        s[5] += int(row[3])
    cl = f"x.{_closure(spec)}"
    value = "''" if grain.dim == TOTAL else f"x.{grain.dim}"
    by = "" if grain.dim == TOTAL else f", x.{grain.dim}"
    same_day = (
        f"SELECT t.period, {value}, count(*), sum({cl} - x.created_at)"
        f" FROM {_TEMP} t JOIN complaints x ON x.created_at >= t.start AND x.created_at < t.stop"
        f" WHERE t.d IN (SELECT r.d FROM rollup_closures r WHERE r.dim = '{TOTAL}'"
        " AND r.value = '' AND r.c = :ad)"
        f" AND {cl} > :as_of AND {cl} < :next_start"
        f" AND x.excluded_reason IS NULL AND {cl} >= x.created_at"
        + ("" if grain.value is None else f" AND x.{grain.dim} = :value")
        + f" GROUP BY t.period{by}"
    )
    extra = {"as_of": as_of.instant, "next_start": as_of.next_start}
    for row in conn.execute(text(prefix + same_day), {**params, **extra}):
        s = slot(row[0], row[1])
        s[4] += int(row[2])
        s[5] += int(row[3])


def _subtract_created_after(
    conn: Connection, spec: LevelSpec, grain: Grain, as_of: AsOf, last: Day, slot: Any
) -> None:
    """Complaints created on as_of's local day after as_of do not exist yet (their closures, all
    later than as_of, are out of the closed counts already)."""
    cl = _closure(spec)
    value = "''" if grain.dim == TOTAL else grain.dim
    by = "" if grain.dim == TOTAL else f" GROUP BY {grain.dim}"
    excluded = f"(excluded_reason IS NOT NULL OR ({cl} IS NOT NULL AND {cl} < created_at))"
    query = (
        f"SELECT {value}, sum(CASE WHEN {excluded} THEN 0 ELSE 1 END),"
        f" sum(CASE WHEN {excluded} THEN 1 ELSE 0 END)"
        " FROM complaints WHERE created_at > :as_of AND created_at < :stop"
        + ("" if grain.value is None else f" AND {grain.dim} = :value")
        + by
    )
    params = {"as_of": as_of.instant, "stop": last.stop, "value": grain.value}
    for row in conn.execute(text(query), params):
        if row[1] is None:
            continue  # no row matched (an aggregate without GROUP BY still answers)
        s = slot(last.period, row[0])
        s[0] -= int(row[1])
        s[1] -= int(row[2])


# --- median and p90 -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cohort:
    key: GroupKey | None  # None: the report's total
    queue: str | None
    d0: int
    d1: int
    count: int  # its closed complaints as of as_of: the ranks follow from it

    def ranks(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(first rank, how many) to read for the median, then for p90: the closest ranks
        around (count - 1) / 2 and 9 (count - 1) / 10 (servicelevel.stats.quantile_ranks, in
        integers)."""
        n = self.count - 1
        return (n // 2, 1 + (n % 2)), (9 * n // 10, 1 + (9 * n % 10 > 0))

    def reads(self) -> tuple[tuple[int, int, int, bool], ...]:
        """Per rank range of ranks(): (first rank, how many, OFFSET, descending). A range is
        read from the nearer end of the closure-time order: p90 skips the 10 % above it
        instead of the 90 % below (the walk costs what it skips)."""
        out: list[tuple[int, int, int, bool]] = []
        for first, n in self.ranks():
            above = self.count - first - n  # closures after the range
            out.append((first, n, above, True) if above < first else (first, n, first, False))
        return tuple(out)


_LIVE = (
    "rl_dur IS NOT NULL AND rl_day >= {d0} AND rl_day <= {d1} AND created_at + rl_dur <= {as_of}"
)
#: How each kind of cohort is read (placeholders: {q} queue, {w0} {w1} weeks, {d0} {d1} days).
_READS = {
    # one queue within one ISO week: the index gives closure-time order, no sort
    "week": "queue = {q} AND rl_week = {w0} AND " + _LIVE,
    # one queue over several weeks: a range of the index, sorted
    "weeks": "queue = {q} AND rl_week >= {w0} AND rl_week <= {w1} AND " + _LIVE,
    # every queue, a small share of the data: queue by queue from the same index, sorted
    "queues": (
        "queue IN (SELECT value FROM rollup_days WHERE dim = 'queue' AND d >= {d0}"
        " AND d <= {d1}) AND rl_week >= {w0} AND rl_week <= {w1} AND " + _LIVE
    ),
    # every queue, much of the data: walk the closure-time index itself
    "walk": _LIVE,
}


def _kind(cohort: _Cohort, walk_from: float, queues_known: bool) -> str:
    if cohort.queue is not None:
        return "week" if week_number(cohort.d0) == week_number(cohort.d1) else "weeks"
    return "queues" if queues_known and cohort.count < walk_from else "walk"


def _read_sqlite(
    conn: Connection, kind: str, cohorts: Sequence[_Cohort], as_of: int
) -> Iterator[tuple[_Cohort, int, int]]:
    """(cohort, rank, value): two statements a cohort on the driver's own cursor (SQLite takes
    no LIMIT or OFFSET from an outer query, and a statement costs microseconds here)."""
    where = _READS[kind].format(q="?", w0="?", w1="?", d0="?", d1="?", as_of="?")
    hint = " INDEXED BY ix_complaints_rl_dur" if kind == "walk" else ""
    sql = {
        desc: f"SELECT rl_dur FROM complaints{hint} WHERE {where}"
        f" ORDER BY rl_dur{' DESC' if desc else ''} LIMIT ? OFFSET ?"
        for desc in (False, True)
    }
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for c in cohorts:
            w0, w1 = week_number(c.d0), week_number(c.d1)
            bound = {
                "week": (c.queue, w0),
                "weeks": (c.queue, w0, w1),
                "queues": (c.d0, c.d1, w0, w1),
            }
            for first, n, offset, desc in c.reads():
                params = (*bound.get(kind, ()), c.d0, c.d1, as_of, n, offset)
                values = sorted(int(v) for (v,) in cursor.execute(sql[desc], params))
                for i, value in enumerate(values):
                    yield c, first + i, value
    finally:
        cursor.close()


def _read_postgresql(
    conn: Connection, kind: str, cohorts: Sequence[_Cohort], as_of: int
) -> Iterator[tuple[_Cohort, int, int]]:
    """(cohort, rank, value): one statement for all cohorts of a kind (their parameters as
    arrays), each cohort read by two correlated subqueries, LIMIT and OFFSET from the outer
    row. (One subquery numbering the closures with row_number() instead read twice as slowly:
    the window costs more than the second walk.) Each range is read from the nearer end of
    the closure-time order (_Cohort.reads); string_agg puts its values in ascending order."""
    columns: list[list[Any]] = [[] for _ in range(14)]
    for i, c in enumerate(cohorts):
        (k1, n1, o1, desc1), (k2, n2, o2, desc2) = c.reads()
        w0, w1 = week_number(c.d0), week_number(c.d1)
        row = (i, c.queue, w0, w1, c.d0, c.d1, k1, n1, o1, desc1, k2, n2, o2, desc2)
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    where = _READS[kind].format(q="t.q", w0="t.w0", w1="t.w1", d0="t.d0", d1="t.d1", as_of="%s")

    def pick(j: int, desc: bool) -> str:
        # the other direction's subquery stops at its one-time filter on t.desc{j}
        guard = f"t.desc{j}" if desc else f"NOT t.desc{j}"
        order = "rl_dur DESC" if desc else "rl_dur"
        return (
            f"(SELECT string_agg(v::text, ',' ORDER BY v) FROM (SELECT rl_dur AS v FROM"
            f" complaints WHERE {guard} AND {where} ORDER BY {order}"
            f" LIMIT t.n{j} OFFSET t.o{j}) s)"
        )

    picks = [f"coalesce({pick(j, False)}, {pick(j, True)})" for j in (1, 2)]
    types = ["int", "text", "int", "int", "int", "int", "int", "int", "int", "bool"]
    arrays = ", ".join(f"%s::{t}[]" for t in [*types, *types[6:]])
    statement = (
        f"SELECT t.i, t.k1, {picks[0]}, t.k2, {picks[1]} FROM unnest({arrays})"
        " AS t(i, q, w0, w1, d0, d1, k1, n1, o1, desc1, k2, n2, o2, desc2)"
    )
    for i, k1, v1, k2, v2 in conn.exec_driver_sql(statement, (*[as_of] * 4, *columns)):
        for first, found in ((k1, v1), (k2, v2)):
            for j, value in enumerate(found.split(",") if found else []):
                yield cohorts[i], first + j, int(value)


def closure_ranks(
    conn: Connection,
    days: Sequence[Day],
    spec: LevelSpec,
    groups: Sequence[GroupCounts],
    *,
    with_total: bool,
    queues_known: bool,
) -> RankedDurations:
    """What levels.closure_ranks reads, through the indexes on (queue, rl_week, rl_dur, ...)
    and (rl_dur, ...): only when grouping and filters involve the queue at most. The closed
    counts (``groups``, from either path) give the ranks to fetch. ``queues_known``: the
    roll-up keeps the queue, so a cohort across queues can be read queue by queue."""
    if set(spec.by) - {"queue"} or set(spec.filters or {}) - {"queue"}:
        raise ValueError("median and p90 from the indexes: grouping and filters by queue only")
    if not days:
        return RankedDurations({}, {})
    span: dict[str | None, tuple[int, int]] = {}
    for day in days:
        key = day.period if spec.by_period else None
        lo, _ = span.get(key, (day.d, day.d))
        span[key] = (lo, day.d)
    fixed = (spec.filters or {}).get("queue")
    cohorts = [
        _Cohort(
            (g.period, g.segment),
            g.segment[0] if spec.by == ("queue",) else fixed,
            *span[g.period if spec.by_period else None],
            g.closed,
        )
        for g in groups
        if g.closed > 0
    ]
    closed = sum(g.closed for g in groups)
    if with_total and closed > 0:
        cohorts.append(_Cohort(None, fixed, days[0].d, days[-1].d, closed))
    walk_from = 0.0
    if any(c.queue is None for c in cohorts):
        everything = conn.execute(
            text(f"SELECT coalesce(sum(nc), 0) FROM rollup_days WHERE dim = '{TOTAL}'")
        ).scalar_one()
        walk_from = WALK_SHARE * int(everything)
    kinds: dict[str, list[_Cohort]] = {}
    for c in cohorts:
        kinds.setdefault(_kind(c, walk_from, queues_known), []).append(c)
    read = _read_postgresql if conn.dialect.name == "postgresql" else _read_sqlite
    out: dict[GroupKey, dict[int, int]] = {}
    total: dict[int, int] = {}
    for kind, members in kinds.items():
        for cohort, rank, value in read(conn, kind, members, spec.as_of):
            target = total if cohort.key is None else out.setdefault(cohort.key, {})
            target[rank] = value
    return RankedDurations(out, total)

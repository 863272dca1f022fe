"""The maintained roll-up: what the service-level report needs, per local creation day.

Two tables, each with a row per grain: ``dim`` is "*" for all complaints (value "") or a kept
segment field (value: the complaint's value of it).

- rollup_days (dim, d, value): n complaints, nx excluded, nc closed (as stored) and their
  summed closure seconds, per local creation day d (days since 1970-01-01, local time);
- rollup_closures (dim, d, value, c): the closed, not excluded complaints by local closing
  day c, with their count and closure seconds.

In calendar and working modes every count of SERVICE-LEVEL.md follows from these exactly (see
store/rollup_levels.py), for any threshold, holiday calendar and as_of. The roll-up is bound to
what it was built under: the timezone (it defines d and c), the closure rule, the exclusion rule
and the kept dimensions, recorded in rollup_meta. Each complaint also carries the roll-up's view
of itself (rl_day, rl_week, rl_dur) for the indexes that median and p90 read.

Upkeep happens in apply_batch, in the transaction that stores the batch: the stored versions of
the changed complaints (which apply_batch reads anyway) are taken out, the new ones put in, as net
deltas per key (INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n), and rows whose counts
fell to zero are deleted. Writers serialize on the rollup_meta row (SELECT ... FOR UPDATE on
PostgreSQL; SQLite has one writer anyway), so that concurrent syncs cannot deadlock on roll-up
rows and a rebuild never sees half a batch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, Index, select, text, update

from slamon.domain import SEGMENT_FIELDS, Closure, ComplaintRecord
from slamon.store.models import complaints, rollup_closures, rollup_days, rollup_meta

#: The grain of all complaints (value "").
TOTAL = "*"
#: The exclusion rule of SERVICE-LEVEL.md as the counts apply it; a change means a rebuild.
EXCLUSION_RULE = "excluded_reason set, or closed before created"
READY = "ready"
STALE = "stale"

SECONDS_PER_DAY = 86400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
#: Instants outside these bounds (typos such as year 2206) get their local days in Python
#: during a rebuild; inside them, in SQL from the zone's offsets.
_SQL_FROM = int(datetime(1900, 1, 1, tzinfo=UTC).timestamp())
_SQL_UNTIL = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp())
_ZONE_PROBE = 6 * 3600


def local_day(instant: datetime, tz: ZoneInfo) -> int:
    """The local calendar day of an aware instant, as days since 1970-01-01."""
    return instant.astimezone(tz).toordinal() - _EPOCH_ORDINAL


def week_number(day: int) -> int:
    """The ISO week (from Monday) of a day number: 1970-01-01 was a Thursday."""
    return (day + 3) // 7


def week_sql(day: str) -> str:
    """week_number() in SQL (integer division truncates toward zero on both engines)."""
    return f"(CASE WHEN {day} >= -3 THEN ({day} + 3) / 7 ELSE ({day} - 3) / 7 END)"


def day_number(day: date) -> int:
    """A date as days since 1970-01-01."""
    return day.toordinal() - _EPOCH_ORDINAL


@dataclass(frozen=True, slots=True)
class Basis:
    """What a roll-up is built under."""

    timezone: str
    closure: Closure
    dimensions: tuple[str, ...]
    excluded_statuses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for dim in self.dimensions:
            if dim not in SEGMENT_FIELDS:
                raise ValueError(f"not a segment field: {dim}")
        ordered = tuple(f for f in SEGMENT_FIELDS if f in self.dimensions)
        object.__setattr__(self, "dimensions", ordered)

    def describe(self) -> str:
        dims = ", ".join(self.dimensions) or "none"
        return f"timezone {self.timezone}, closure {self.closure.value}, dimensions {dims}"


@dataclass(frozen=True, slots=True)
class Meta:
    """The rollup_meta row as stored."""

    state: str
    note: str | None
    timezone: str | None
    closure: str | None
    dimensions: tuple[str, ...]
    exclusion: str | None
    excluded_statuses: tuple[str, ...] | None
    built_at: datetime | None
    closed_hwm: int | None

    @property
    def ready(self) -> bool:
        return self.state == READY and self.timezone is not None and self.closure is not None

    def differences(self, basis: Basis) -> list[str]:
        """How ``basis`` differs from what the roll-up was built under, in words (dimensions
        the roll-up keeps beyond the basis's are no difference: it can still answer). The
        excluded statuses are recorded but no difference either: they decide a complaint's
        excluded_reason when it is stored, and the roll-up follows the stored rows, as the raw
        counts do; a rebuild would give the same roll-up."""
        out = []
        if self.timezone != basis.timezone:
            out.append(f"timezone {self.timezone} (configured: {basis.timezone})")
        if self.closure != basis.closure.value:
            out.append(f"closure {self.closure} (configured: {basis.closure.value})")
        if self.exclusion != EXCLUSION_RULE:
            out.append(f"exclusion rule {self.exclusion!r} (this slamon: {EXCLUSION_RULE!r})")
        missing = [d for d in basis.dimensions if d not in self.dimensions]
        if missing:
            out.append(f"without dimension {', '.join(missing)} (configured)")
        return out


def read_meta(conn: Connection, *, lock: bool = False) -> Meta | None:
    query = select(rollup_meta).where(rollup_meta.c.id == 1)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        return None
    return Meta(
        state=row.state,
        note=row.note,
        timezone=row.timezone,
        closure=row.closure,
        dimensions=tuple(d for d in (row.dimensions or "").split(",") if d),
        exclusion=row.exclusion,
        excluded_statuses=(
            tuple(json.loads(row.excluded_statuses)) if row.excluded_statuses else None
        ),
        built_at=row.built_at,
        closed_hwm=row.closed_hwm,
    )


# --- upkeep in apply_batch ------------------------------------------------------------------


#: What of a complaint the roll-up counts: (created, closure, excluded, segment values), the
#: instants as epoch seconds, the closure by the roll-up's rule, the values in the order of the
#: roll-up's dimensions (the source's name for "source"). A change elsewhere (a subject, a
#: status) leaves it equal: most of what a sync brings changes nothing here.
Counted = tuple[int, int | None, bool, tuple[str, ...]]

_HOUR = 3600


class Upkeep:
    """The roll-up's writer for one batch: the complaints' rl_day/rl_dur under the roll-up's
    timezone and closure rule, and (when the roll-up is ready) its net deltas. Instants come as
    epoch seconds (what storage keeps), so that a million-row import pays no datetime work
    here."""

    def __init__(self, meta: Meta) -> None:
        assert meta.timezone is not None and meta.closure is not None
        self.tz = ZoneInfo(meta.timezone)
        self.final = meta.closure == Closure.FINAL.value
        self.dimensions = meta.dimensions
        self.tables = meta.ready
        self.closed_hwm = meta.closed_hwm
        self._days: dict[tuple[str, int, str], list[int]] = {}
        self._closures: dict[tuple[str, int, str, int], list[int]] = {}
        self._latest: int | None = None
        #: Local midnight offsets per UTC hour: (offset at the hour's start, or None when the
        #: offset changes within the hour).
        self._offsets: dict[int, int | None] = {}

    def local_day(self, t: int) -> int:
        """The local day (days since 1970-01-01) of the epoch instant ``t``: as local_day(),
        with the zone's offset looked up once per UTC hour."""
        hour = t // _HOUR
        try:
            off = self._offsets[hour]
        except KeyError:
            first = _offset(self.tz, hour * _HOUR)
            off = first if first == _offset(self.tz, hour * _HOUR + _HOUR - 1) else None
            self._offsets[hour] = off
        if off is None:
            off = _offset(self.tz, t)
        return (t + off) // SECONDS_PER_DAY

    def counted(
        self, source: str, rec: ComplaintRecord, closed: int | None, first: int | None, created: int
    ) -> Counted:
        closure = closed if self.final else first
        values = tuple(source if dim == "source" else getattr(rec, dim) for dim in self.dimensions)
        return created, closure, rec.excluded_reason is not None, values

    def columns(self, counted: Counted) -> tuple[int, int, int | None]:
        """(rl_day, rl_week, rl_dur) of a complaint about to be stored."""
        created, closure, excluded, _ = counted
        dur = None
        if closure is not None and not excluded and closure >= created:
            dur = closure - created
        day = self.local_day(created)
        return day, (day + 3) // 7, dur

    def change(self, old: Counted | None, new: Counted, latest: int | None) -> None:
        """A complaint stored as ``old`` (None: new) now counts as ``new``; ``latest`` is its
        latest closure of either kind (for the closure high-water mark)."""
        if not self.tables:
            return
        if latest is not None and (self._latest is None or latest > self._latest):
            self._latest = latest
        if old is not None:
            if old == new:
                return
            self._add(old, -1)
        self._add(new, 1)

    def _add(self, counted: Counted, sign: int) -> None:
        created, closure, excluded, values = counted
        d = self.local_day(created)
        keys = [(TOTAL, d, ""), *zip(self.dimensions, (d,) * len(values), values, strict=True)]
        days = self._days
        if excluded or (closure is not None and closure < created):
            for key in keys:
                row = days.get(key)
                if row is None:
                    days[key] = [0, sign, 0, 0]
                else:
                    row[1] += sign
            return
        if closure is None:
            for key in keys:
                row = days.get(key)
                if row is None:
                    days[key] = [sign, 0, 0, 0]
                else:
                    row[0] += sign
            return
        signed = sign * (closure - created)
        c = self.local_day(closure)
        closures = self._closures
        for key in keys:
            row = days.get(key)
            if row is None:
                days[key] = [sign, 0, sign, signed]
            else:
                row[0] += sign
                row[2] += sign
                row[3] += signed
            ckey = (*key, c)
            crow = closures.get(ckey)
            if crow is None:
                closures[ckey] = [sign, signed]
            else:
                crow[0] += sign
                crow[1] += signed

    def flush(self, conn: Connection) -> None:
        """Write the batch's net deltas; delete the rows they emptied."""
        if not self.tables:
            return
        # No ordering needed against deadlocks: writers serialize on the rollup_meta row.
        # Only a key whose count went down can have reached zero.
        days = self._days.items()
        _write(
            conn,
            _DAYS,
            [(*k, *v) for k, v in days if v[0] or v[1] or v[2] or v[3]],
            [k for k, v in days if v[0] < 0 or v[1] < 0],
        )
        closures = self._closures.items()
        _write(
            conn,
            _CLOSURES,
            [(*k, *v) for k, v in closures if v[0] or v[1]],
            [k for k, v in closures if v[0] < 0],
        )
        latest = self._latest
        if latest is not None and (self.closed_hwm is None or latest > self.closed_hwm):
            hwm = rollup_meta.c.closed_hwm
            conn.execute(
                update(rollup_meta)
                .where(rollup_meta.c.id == 1, hwm.is_(None) | (hwm < latest))
                .values(closed_hwm=latest)
            )
            self.closed_hwm = latest
        self._latest = None
        self._days.clear()
        self._closures.clear()


def upkeep(conn: Connection) -> Upkeep | None:
    """The roll-up's writer for a batch on ``conn``, or None when the roll-up has never been
    built (no timezone to compute local days under). Takes the roll-up's write lock."""
    meta = read_meta(conn, lock=True)
    if meta is None or meta.timezone is None or meta.closure is None:
        return None
    return Upkeep(meta)


@dataclass(frozen=True, slots=True)
class _Shape:
    table: str
    keys: tuple[str, ...]
    values: tuple[str, ...]  # bigint counters, added on conflict
    empty: tuple[str, ...]  # the counters that are all zero in a row to delete
    down: tuple[str, ...]  # a delta lowering one of these may have emptied its row


_DAYS = _Shape(
    "rollup_days", ("dim", "d", "value"), ("n", "nx", "nc", "secs"), ("n", "nx"), ("n", "nx")
)
_CLOSURES = _Shape("rollup_closures", ("dim", "d", "value", "c"), ("n", "secs"), ("n",), ("n",))


def _write(
    conn: Connection,
    shape: _Shape,
    rows: Sequence[tuple[Any, ...]],
    emptied: Sequence[tuple[Any, ...]],
) -> None:
    """Add ``rows`` (keys then deltas) to a roll-up table; then delete the rows of the
    ``emptied`` keys (those whose counts went down) if their counts are zero. SQLite:
    executemany (a loop in C). PostgreSQL: the deltas are COPied into a temporary table of the
    session and applied by one INSERT ... SELECT and one DELETE ... USING (a pipelined
    executemany pays a round of the executor per row; arrays for unnest() cost psycopg more
    than COPY does)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        _write_by_copy(conn, shape, rows, bool(emptied))
        return
    keys = shape.keys
    names = ", ".join([*keys, *shape.values])
    marks = ", ".join("?" for _ in range(len(keys) + len(shape.values)))
    conn.exec_driver_sql(
        f"INSERT INTO {shape.table} ({names}) VALUES ({marks}){_on_conflict(shape)}", rows
    )
    if emptied:
        match = " AND ".join(f"{k} = ?" for k in keys)
        empty = " AND ".join(f"{v} = 0" for v in shape.empty)
        conn.exec_driver_sql(f"DELETE FROM {shape.table} WHERE {match} AND {empty}", emptied)


def _on_conflict(shape: _Shape) -> str:
    keys = ", ".join(shape.keys)
    sums = ", ".join(f"{v} = {shape.table}.{v} + excluded.{v}" for v in shape.values)
    return f" ON CONFLICT ({keys}) DO UPDATE SET {sums}"


def _write_by_copy(
    conn: Connection, shape: _Shape, rows: Sequence[tuple[Any, ...]], emptied: bool
) -> None:
    keys = shape.keys
    names = ", ".join([*keys, *shape.values])
    stage = f"slamon_stage_{shape.table}"
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS"
        f" SELECT {names} FROM {shape.table} WITH NO DATA"
    )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {stage} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    finally:
        cursor.close()
    conn.exec_driver_sql(
        f"INSERT INTO {shape.table} ({names}) SELECT {names} FROM {stage}{_on_conflict(shape)}"
    )
    if emptied:
        # Only a key whose count went down can have reached zero.
        match = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        down = " OR ".join(f"s.{v} < 0" for v in shape.down)
        empty = " AND ".join(f"t.{v} = 0" for v in shape.empty)
        conn.exec_driver_sql(
            f"DELETE FROM {shape.table} t USING {stage} s WHERE {match} AND ({down}) AND {empty}"
        )
    conn.exec_driver_sql(f"TRUNCATE {stage}")


# --- local days in SQL ------------------------------------------------------------------------


def _offset(tz: ZoneInfo, t: int) -> int:
    off = datetime.fromtimestamp(t, tz).utcoffset()
    assert off is not None
    return int(off.total_seconds())


def zone_steps(tz: ZoneInfo, lo: int, hi: int) -> list[tuple[int, int]]:
    """The zone's UTC offset over [lo, hi] as a step function: (instant it starts, offset),
    ascending, the first at ``lo``; each change found to the second by bisection."""
    steps = [(lo, _offset(tz, lo))]
    t = lo
    while t < hi:
        nxt = min(t + _ZONE_PROBE, hi)
        if _offset(tz, nxt) != steps[-1][1]:
            a, b = t, nxt
            while b - a > 1:
                mid = (a + b) // 2
                if _offset(tz, mid) == steps[-1][1]:
                    a = mid
                else:
                    b = mid
            steps.append((b, _offset(tz, b)))
        t = nxt
    return steps


def local_day_sql(expr: str, steps: Sequence[tuple[int, int]]) -> str:
    """SQL for the local day (days since 1970-01-01) of the epoch-seconds ``expr``, exact for
    instants within the steps' range. Integer division truncates toward zero on both engines,
    hence the adjustment for local times before 1970."""
    if len(steps) == 1:
        offset = str(steps[0][1])
    else:
        arms = " ".join(f"WHEN {expr} >= {t} THEN {o}" for t, o in reversed(steps[1:]))
        offset = f"(CASE {arms} ELSE {steps[0][1]} END)"
    local = f"({expr} + {offset})"
    if steps[0][0] + min(o for _, o in steps) >= 0:
        return f"({local} / {SECONDS_PER_DAY})"
    return f"(({local} - CASE WHEN {local} < 0 THEN {SECONDS_PER_DAY - 1} ELSE 0 END)" + (
        f" / {SECONDS_PER_DAY})"
    )


# --- rebuild --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RebuildResult:
    basis: Basis
    complaints: int
    day_rows: int
    closure_rows: int
    rewrote_columns: bool
    seconds: float


Progress = Callable[[int, int, str], None]


def _quantile_indexes() -> list[Index]:
    return [
        ix
        for ix in complaints.indexes
        if ix.name in ("ix_complaints_rl_queue", "ix_complaints_rl_dur")
    ]


def _excluded_sql(closure: str) -> str:
    return f"(excluded_reason IS NOT NULL OR ({closure} IS NOT NULL AND {closure} < created_at))"


def rebuild(
    conn: Connection,
    basis: Basis,
    now: datetime,
    progress: Progress | None = None,
    *,
    rewrite_columns: bool | None = None,
) -> RebuildResult:
    """Rebuild the roll-up from the stored complaints under ``basis``, in the caller's
    transaction (on PostgreSQL it takes the roll-up's write lock first, so that no batch lands
    half seen). The complaints' rl_day and rl_dur are rewritten only when the timezone or the
    closure rule change (or were never set), or when ``rewrite_columns`` says so."""
    started = time.perf_counter()
    meta = read_meta(conn, lock=True)
    if meta is None:
        conn.execute(rollup_meta.insert().values(id=1, state=STALE))
        meta = read_meta(conn)
        assert meta is not None
    tz = ZoneInfo(basis.timezone)
    closure = "closed_at" if basis.closure is Closure.FINAL else "first_closed_at"
    # rl_day and rl_dur follow the recorded timezone and closure rule in every batch, even
    # while the roll-up is stale; a database migrated with complaints in it has neither yet.
    rewrite = meta.timezone != basis.timezone or meta.closure != basis.closure.value
    if rewrite_columns is not None:
        rewrite = rewrite_columns
    grains = [TOTAL, *basis.dimensions]
    total_steps = len(grains) + (1 if rewrite else 0)
    done = 0

    def step(label: str) -> None:
        if progress is not None:
            progress(done, total_steps, label)

    bounds = conn.execute(
        text(
            "SELECT count(*), min(created_at), max(created_at), min(closed_at), max(closed_at),"
            " min(first_closed_at), max(first_closed_at) FROM complaints"
        )
    ).one()
    count = int(bounds[0])
    instants = [int(v) for v in bounds[1:] if v is not None]
    lo = max(min(instants, default=0), _SQL_FROM)
    hi = min(max(instants, default=0), _SQL_UNTIL)
    lo, hi = min(lo, hi), max(lo, hi)
    steps = zone_steps(tz, lo - 2 * SECONDS_PER_DAY, hi + 2 * SECONDS_PER_DAY)
    in_window = f"BETWEEN {lo} AND {hi}"
    if rewrite:
        step("complaints: local days and closure times")
        for ix in _quantile_indexes():
            ix.drop(conn)
        conn.execute(
            text(
                "UPDATE complaints SET"
                f" rl_day = CASE WHEN created_at {in_window}"
                f" THEN {local_day_sql('created_at', steps)} END,"
                f" rl_week = CASE WHEN created_at {in_window}"
                f" THEN {week_sql(local_day_sql('created_at', steps))} END,"
                f" rl_dur = CASE WHEN NOT {_excluded_sql(closure)} AND {closure} IS NOT NULL"
                f" THEN {closure} - created_at END"
            )
        )
        outside = conn.execute(
            text(f"SELECT id, created_at FROM complaints WHERE NOT (created_at {in_window})")
        ).all()
        if outside:
            conn.execute(
                text("UPDATE complaints SET rl_day = :day, rl_week = :week WHERE id = :id"),
                [
                    {"id": row.id, "day": day, "week": week_number(day)}
                    for row in outside
                    for day in [local_day(datetime.fromtimestamp(row.created_at, UTC), tz)]
                ],
            )
        for ix in _quantile_indexes():
            ix.create(conn)
        done += 1
    conn.execute(rollup_closures.delete())
    conn.execute(rollup_days.delete())
    excluded = _excluded_sql(closure)
    for grain in grains:
        step(f"grain {grain if grain != TOTAL else 'all complaints'}")
        value = "''" if grain == TOTAL else grain
        by = "" if grain == TOTAL else f", {grain}"
        conn.execute(
            text(
                "INSERT INTO rollup_days (dim, d, value, n, nx, nc, secs)"
                f" SELECT :grain, rl_day, {value},"
                f" sum(CASE WHEN {excluded} THEN 0 ELSE 1 END),"
                f" sum(CASE WHEN {excluded} THEN 1 ELSE 0 END),"
                " count(rl_dur), coalesce(sum(rl_dur), 0)"
                f" FROM complaints GROUP BY rl_day{by}"
            ),
            {"grain": grain},
        )
        closed = "created_at + rl_dur"
        conn.execute(
            text(
                "INSERT INTO rollup_closures (dim, d, value, c, n, secs)"
                f" SELECT :grain, rl_day, {value}, {local_day_sql(closed, steps)},"
                " count(*), sum(rl_dur)"
                f" FROM complaints WHERE rl_dur IS NOT NULL AND {closed} {in_window}"
                f" GROUP BY rl_day{by}, {local_day_sql(closed, steps)}"
            ),
            {"grain": grain},
        )
        _closures_outside(conn, grain, value, in_window, tz)
        done += 1
    hwm = max((int(v) for v in (bounds[4], bounds[6]) if v is not None), default=None)
    conn.execute(
        update(rollup_meta)
        .where(rollup_meta.c.id == 1)
        .values(
            state=READY,
            note=None,
            timezone=basis.timezone,
            closure=basis.closure.value,
            dimensions=",".join(basis.dimensions),
            exclusion=EXCLUSION_RULE,
            excluded_statuses=json.dumps(list(basis.excluded_statuses)),
            built_at=now,
            closed_hwm=hwm,
        )
    )
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ANALYZE rollup_days")
        conn.exec_driver_sql("ANALYZE rollup_closures")
        if rewrite:
            conn.exec_driver_sql("ANALYZE complaints")
    day_rows, closure_rows = (
        int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
        for t in ("rollup_days", "rollup_closures")
    )
    if progress is not None:
        progress(total_steps, total_steps, "done")
    return RebuildResult(
        basis, count, day_rows, closure_rows, rewrite, time.perf_counter() - started
    )


def _closures_outside(
    conn: Connection, grain: str, value: str, in_window: str, tz: ZoneInfo
) -> None:
    """Closures outside the SQL window (typo instants): their closing days from Python."""
    rows = conn.execute(
        text(
            f"SELECT rl_day, {value} AS value, created_at + rl_dur AS closed, rl_dur"
            f" FROM complaints WHERE rl_dur IS NOT NULL AND NOT (created_at + rl_dur {in_window})"
        )
    ).all()
    sums: dict[tuple[int, str, int], list[int]] = {}
    for row in rows:
        c = local_day(datetime.fromtimestamp(row.closed, UTC), tz)
        acc = sums.setdefault((int(row.rl_day), str(row.value), c), [0, 0])
        acc[0] += 1
        acc[1] += int(row.rl_dur)
    _write(conn, _CLOSURES, [(grain, *k, *v) for k, v in sums.items()], [])


def contents(conn: Connection) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every roll-up row, sorted (for tests and benchmarks: a maintained roll-up must equal a
    rebuild)."""
    days = [
        tuple(r)
        for r in conn.execute(select(rollup_days).order_by(*rollup_days.primary_key.columns))
    ]
    closures = [
        tuple(r)
        for r in conn.execute(
            select(rollup_closures).order_by(*rollup_closures.primary_key.columns)
        )
    ]
    return days, closures


def vacuum(engine: Engine, *, complaints_too: bool) -> None:
    """PostgreSQL, after a rebuild (outside its transaction): reclaim the deleted roll-up rows,
    and set the visibility map of rewritten complaints, without which the median/p90 indexes
    are read with a heap fetch per entry (12 s instead of 0.3 s at 1 M) until autovacuum."""
    if engine.dialect.name != "postgresql":
        return
    tables = ["rollup_days", "rollup_closures", *(["complaints"] if complaints_too else [])]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables:
            conn.exec_driver_sql(f"VACUUM (ANALYZE) {table}")

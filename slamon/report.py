"""The service-level report: what `slamon report` prints and what alerts and digests read.

The counting happens in SQL: from the maintained roll-up (store.rollup_levels) whenever it can
answer, else over raw rows (store.levels); both give the same counts. This module chooses, and
turns counts into the figures of SERVICE-LEVEL.md (shares, Wilson intervals, mean / median / p90
closure days) and into the JSON and CSV shapes that other tools are built against.

The roll-up answers calendar and working modes, without grouping or grouped by one dimension it
keeps (with or without period), with filters on that same dimension only; median and p90 come
from raw rows through the indexes made for them when grouping and filters involve the queue at
most. It answers only when it was built under the configured timezone, closure rule and
exclusion rule: otherwise the report reads raw rows and says so once (a warning on the
"slamon.report" logger), until `slamon db rebuild-rollup`.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, select

from slamon.config import Config
from slamon.domain import SEGMENT_FIELDS, Closure, DayMode, Period
from slamon.errors import UsageError
from slamon.instants import to_epoch
from slamon.servicelevel.cohort import CohortDay, cohort_days
from slamon.servicelevel.curve import CurvePoint, days_to, kaplan_meier
from slamon.servicelevel.deadlines import (
    WorkCalendar,
    deadline_day,
    local_date,
    start_of_local_day,
)
from slamon.servicelevel.stats import MEDIAN, P90, lerp, wilson_interval
from slamon.store import levels, rollup, rollup_levels
from slamon.store.engine import write_transaction
from slamon.store.levels import GroupCounts, LevelSpec, RankedDurations
from slamon.store.models import complaints

log = logging.getLogger("slamon.report")

DEFAULT_DAYS = 28
_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class ReportRequest:
    since: date
    until: date
    as_of: datetime
    period: Period = Period.NONE
    by: tuple[str, ...] = ()
    filters: Mapping[str, str] = field(default_factory=dict)


def make_request(
    *,
    as_of: datetime,
    tz: ZoneInfo,
    since: date | None = None,
    until: date | None = None,
    period: str = "none",
    by: Sequence[str] = (),
    filters: Mapping[str, str] | None = None,
) -> ReportRequest:
    """Validate report arguments; the default range is the last 28 local days up to as_of."""
    if as_of.tzinfo is None:
        raise UsageError("--as-of needs a timezone-aware instant")
    try:
        per = Period(period)
    except ValueError:
        raise UsageError(f"--period must be none, day, week or month, not {period!r}") from None
    fields = tuple(dict.fromkeys(by))
    for name in (*fields, *(filters or {})):
        if name not in SEGMENT_FIELDS:
            raise UsageError(f"cannot group by {name!r}: use one of {', '.join(SEGMENT_FIELDS)}")
    last = until or local_date(as_of, tz)
    first = since or (last - timedelta(days=DEFAULT_DAYS - 1))
    if first > last:
        raise UsageError(f"--since {first} is after --until {last}")
    return ReportRequest(first, last, as_of, per, fields, dict(filters or {}))


@dataclass(frozen=True, slots=True)
class Level:
    threshold: int
    hits: int
    misses: int
    matured: int
    pending: int
    share: float | None
    ci_low: float | None
    ci_high: float | None
    target: float | None
    met: bool | None

    def as_json(self) -> dict[str, Any]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "matured": self.matured,
            "pending": self.pending,
            "share": self.share,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "target": self.target,
            "met": self.met,
        }


@dataclass(frozen=True, slots=True)
class Row:
    period: str | None
    segment: dict[str, str]
    complaints: int
    excluded: int
    open: int
    mean_days: float | None
    median_days: float | None
    p90_days: float | None
    levels: tuple[Level, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "complaints": self.complaints,
            "excluded": self.excluded,
            "open": self.open,
            "mean_days": self.mean_days,
            "median_days": self.median_days,
            "p90_days": self.p90_days,
            "levels": {str(lv.threshold): lv.as_json() for lv in self.levels},
        }

    def level(self, n: int) -> Level:
        return next(lv for lv in self.levels if lv.threshold == n)


@dataclass(frozen=True, slots=True)
class Report:
    as_of: datetime
    timezone: str
    day_mode: DayMode
    closure: Closure
    thresholds: tuple[int, ...]
    request: ReportRequest
    rows: list[Row]
    total: Row

    def as_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "timezone": self.timezone,
            "day_mode": self.day_mode.value,
            "closure": self.closure.value,
            "thresholds": list(self.thresholds),
            "since": self.request.since.isoformat(),
            "until": self.request.until.isoformat(),
            "period": self.request.period.value,
            "by": list(self.request.by),
            "rows": [{"period": r.period, "segment": r.segment, **r.as_json()} for r in self.rows],
            "total": self.total.as_json(),
        }


def _level(n: int, matured: int, hits: int, complaints: int, target: float | None) -> Level:
    share = hits / matured if matured else None
    ci = wilson_interval(hits, matured)
    return Level(
        threshold=n,
        hits=hits,
        misses=matured - hits,
        matured=matured,
        pending=complaints - matured,
        share=share,
        ci_low=ci[0] if ci else None,
        ci_high=ci[1] if ci else None,
        target=target,
        met=None if share is None or target is None else share >= target,
    )


def _quantile(ranked: Mapping[int, int], count: int, q: Fraction) -> float | None:
    """numpy's linear quantile from the values at the closest ranks (quantile_ranks, with the
    position (count - 1) * q in integers: a report has thousands of them)."""
    if count == 0:
        return None
    lo, rest = divmod((count - 1) * q.numerator, q.denominator)
    hi = lo + 1 if rest else lo
    t = rest / q.denominator
    return lerp(ranked[lo] / _SECONDS_PER_DAY, ranked[hi] / _SECONDS_PER_DAY, t)


def _row(
    period: str | None,
    segment: dict[str, str],
    counts: GroupCounts,
    ranked: Mapping[int, int],
    thresholds: Sequence[int],
    targets: Mapping[int, float | None],
) -> Row:
    complaints = counts.total - counts.excluded
    return Row(
        period=period,
        segment=segment,
        complaints=complaints,
        excluded=counts.excluded,
        open=complaints - counts.closed,
        mean_days=(
            counts.closed_seconds / counts.closed / _SECONDS_PER_DAY if counts.closed else None
        ),
        median_days=_quantile(ranked, counts.closed, MEDIAN),
        p90_days=_quantile(ranked, counts.closed, P90),
        levels=tuple(
            _level(n, counts.matured[i], counts.hits[i], complaints, targets.get(n))
            for i, n in enumerate(thresholds)
        ),
    )


def _sum(groups: Sequence[GroupCounts], k: int) -> GroupCounts:
    return GroupCounts(
        period=None,
        segment=(),
        total=sum(g.total for g in groups),
        excluded=sum(g.excluded for g in groups),
        closed=sum(g.closed for g in groups),
        closed_seconds=sum(g.closed_seconds for g in groups),
        matured=tuple(sum(g.matured[i] for g in groups) for i in range(k)),
        hits=tuple(sum(g.hits[i] for g in groups) for i in range(k)),
        carried=()
        if groups and not groups[0].carried
        else tuple(sum(g.carried[i] for g in groups) for i in range(k - 1)),
    )


def _prepare(
    config: Config, request: ReportRequest, thresholds: tuple[int, ...], *, carry: bool = False
) -> tuple[list[CohortDay], LevelSpec]:
    sl = config.settings.service_level
    calendar: WorkCalendar = config.settings.calendar.work_calendar()
    days = cohort_days(
        request.since,
        request.until,
        request.as_of,
        tz=sl.zone,
        period=request.period,
        thresholds=thresholds,
        mode=sl.day_mode,
        calendar=calendar,
    )
    spec = LevelSpec(
        as_of=to_epoch(request.as_of),
        thresholds=thresholds,
        mode=sl.day_mode,
        closure=sl.closure,
        by=request.by,
        by_period=request.period is not Period.NONE,
        filters=request.filters,
        carry=carry,
    )
    return days, spec


# --- which path answers ---------------------------------------------------------------------

_said: set[str] = set()


def _say_once(message: str) -> None:
    """A warning logged once per process (the CLI shows it on stderr; a daemon evaluating
    rules after every sync does not repeat it)."""
    if message not in _said:
        _said.add(message)
        log.warning("%s", message)


def rollup_basis(config: Config) -> rollup.Basis:
    """What the roll-up must be built under to answer for ``config``."""
    s = config.settings
    return rollup.Basis(
        timezone=s.service_level.timezone,
        closure=s.service_level.closure,
        dimensions=s.rollup.dimensions,
        excluded_statuses=s.import_.excluded_statuses,
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    counts: rollup_levels.Grain | None  # None: raw rows
    ranks: bool  # median and p90 through the rl indexes
    meta: rollup.Meta | None

    @property
    def source(self) -> str:
        return "rollup" if self.counts is not None else "raw"


def _plan(conn: Connection, config: Config, spec: LevelSpec, *, use_rollup: bool) -> _Plan:
    meta = rollup.read_meta(conn) if use_rollup else None
    if meta is None:
        return _Plan(None, False, None)
    rebuild = "run `slamon db rebuild-rollup`"
    basis = rollup_basis(config)
    core = [d for d in meta.differences(basis) if not d.startswith("without dimension")]
    if (not meta.ready or core) and not _holds_complaints(conn):
        return _Plan(None, False, meta)  # nothing stored: nothing to be stale, nothing to say
    if not meta.ready:
        _say_once(
            f"the roll-up is stale ({meta.note or 'never built'}): reports read raw rows"
            f" (slower) until you {rebuild}"
        )
        return _Plan(None, False, meta)
    if core:
        _say_once(
            f"the roll-up was built under {'; '.join(core)}: reports read raw rows (slower)"
            f" until you {rebuild}"
        )
        return _Plan(None, False, meta)
    wanted = set(spec.by) | set(spec.filters or {})
    ranks = wanted <= {"queue"}
    if spec.mode is DayMode.ELAPSED or len(wanted) > 1:
        return _Plan(None, ranks, meta)
    if not wanted:
        return _Plan(rollup_levels.Grain(rollup.TOTAL), ranks, meta)
    (dim,) = wanted
    if dim not in meta.dimensions:
        if dim in basis.dimensions:
            _say_once(
                f"the roll-up does not keep the configured dimension {dim} yet: reports by {dim}"
                f" read raw rows (slower) until you {rebuild}"
            )
        return _Plan(None, ranks, meta)
    grain = rollup_levels.Grain(dim, (spec.filters or {}).get(dim), dim in spec.by)
    return _Plan(grain, ranks, meta)


def _holds_complaints(conn: Connection) -> bool:
    return conn.execute(select(complaints.c.id).limit(1)).first() is not None


def _rollup_days(
    config: Config, days: Sequence[CohortDay], spec: LevelSpec
) -> list[rollup_levels.Day]:
    sl = config.settings.service_level
    calendar = config.settings.calendar.work_calendar() if spec.mode is DayMode.WORKING else None
    return [
        rollup_levels.Day(
            d=rollup.day_number(day.day),
            start=day.start,
            stop=day.stop,
            period=day.period,
            deadline_days=()
            if sl.day_mode is DayMode.ELAPSED
            else tuple(
                rollup.day_number(deadline_day(day.day, n, spec.mode, calendar))
                for n in spec.thresholds
            ),
        )
        for day in days
    ]


def _as_of(config: Config, as_of: datetime, meta: rollup.Meta | None) -> rollup_levels.AsOf:
    tz = config.settings.service_level.zone
    day = local_date(as_of, tz)
    return rollup_levels.AsOf(
        instant=to_epoch(as_of),
        day=rollup.day_number(day),
        next_start=to_epoch(start_of_local_day(day + timedelta(days=1), tz)),
        closed_hwm=None if meta is None else meta.closed_hwm,
    )


@contextmanager
def _reading(engine: Engine) -> Iterator[Connection]:
    """One snapshot for every statement of a report (REPEATABLE READ on PostgreSQL; an SQLite
    read transaction is one snapshot already), so that a sync committing in between cannot
    make the counts and the ranks disagree. On PostgreSQL the report's groupings get the memory
    to hash or sort in memory (the default 4 MB spilled the roll-up's to disk at 1 M)."""
    with engine.connect() as conn:
        postgresql = conn.dialect.name == "postgresql"
        if postgresql:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            if postgresql:
                conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
            yield conn


def _counts(
    conn: Connection,
    config: Config,
    request: ReportRequest,
    days: Sequence[CohortDay],
    rdays: Sequence[rollup_levels.Day],
    spec: LevelSpec,
    plan: _Plan,
) -> list[GroupCounts]:
    if plan.counts is None:
        return levels.count_groups(conn, days, spec)
    as_of = _as_of(config, request.as_of, plan.meta)
    return rollup_levels.count_groups(conn, rdays, spec, plan.counts, as_of)


def _ranked(
    conn: Connection,
    days: Sequence[CohortDay],
    rdays: Sequence[rollup_levels.Day],
    spec: LevelSpec,
    plan: _Plan,
    groups: Sequence[GroupCounts],
    *,
    with_total: bool,
) -> RankedDurations:
    if not plan.ranks:
        return levels.closure_ranks(conn, days, spec, with_total=with_total)
    assert plan.meta is not None
    return rollup_levels.closure_ranks(
        conn,
        rdays,
        spec,
        groups,
        with_total=with_total,
        queues_known="queue" in plan.meta.dimensions,
    )


def run(engine: Engine, config: Config, request: ReportRequest) -> Report:
    """The service-level report for ``request`` under ``config``."""
    return _run(engine, config, request)


def _run(
    engine: Engine,
    config: Config,
    request: ReportRequest,
    *,
    use_rollup: bool = True,
    on_plan: Callable[[str, bool], None] | None = None,
) -> Report:
    """run(), optionally on raw rows only (tests and benchmarks compare the two paths);
    ``on_plan`` hears which path counted ("rollup" or "raw") and whether median and p90 came
    through the indexes."""
    sl = config.settings.service_level
    days, spec = _prepare(config, request, sl.thresholds)
    single = request.period is Period.NONE and not request.by
    with _reading(engine) as conn:
        plan = _plan(conn, config, spec, use_rollup=use_rollup)
        if on_plan is not None:
            on_plan(plan.source, plan.ranks)
        rdays = _rollup_days(config, days, spec) if plan.counts or plan.ranks else []
        groups = _counts(conn, config, request, days, rdays, spec, plan)
        ranked = _ranked(conn, days, rdays, spec, plan, groups, with_total=not single)
    targets = {n: sl.target(n) for n in sl.thresholds}
    rows = []
    for g in sorted(groups, key=lambda g: (g.period or "", g.segment)):
        segment = dict(zip(request.by, g.segment, strict=True))
        ranks = ranked.groups.get((g.period, g.segment), {})
        rows.append(_row(g.period, segment, g, ranks, sl.thresholds, targets))
    total_counts = _sum(groups, len(sl.thresholds))
    total_ranks = ranked.groups.get((None, ()), {}) if single else ranked.total
    total = _row(None, {}, total_counts, total_ranks, sl.thresholds, targets)
    return Report(
        as_of=request.as_of,
        timezone=sl.timezone,
        day_mode=sl.day_mode,
        closure=sl.closure,
        thresholds=sl.thresholds,
        request=request,
        rows=rows,
        total=total,
    )


CURVE_DAYS = 30
CURVE_MARKS = (0.8, 0.9)


@dataclass(frozen=True, slots=True)
class CurveRow:
    period: str | None
    segment: dict[str, str]
    complaints: int
    points: list[CurvePoint]

    def as_json(self) -> dict[str, Any]:
        return {
            "complaints": self.complaints,
            **{f"days_to_{round(m * 100)}": days_to(self.points, m) for m in CURVE_MARKS},
            "points": [
                {
                    "day": p.day,
                    "closed_share": p.closed_share,
                    "at_risk": p.at_risk,
                    "closed": p.closed,
                }
                for p in self.points
            ],
        }


@dataclass(frozen=True, slots=True)
class CurveReport:
    as_of: datetime
    timezone: str
    day_mode: DayMode
    closure: Closure
    request: ReportRequest
    rows: list[CurveRow]
    total: CurveRow

    def as_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "timezone": self.timezone,
            "day_mode": self.day_mode.value,
            "closure": self.closure.value,
            "since": self.request.since.isoformat(),
            "until": self.request.until.isoformat(),
            "period": self.request.period.value,
            "by": list(self.request.by),
            "days": CURVE_DAYS,
            "rows": [{"period": r.period, "segment": r.segment, **r.as_json()} for r in self.rows],
            "total": self.total.as_json(),
        }


def run_curve(engine: Engine, config: Config, request: ReportRequest) -> CurveReport:
    """The Kaplan-Meier closure curve for d = 0..30 days in the configured day mode."""
    return _run_curve(engine, config, request)


def _run_curve(
    engine: Engine, config: Config, request: ReportRequest, *, use_rollup: bool = True
) -> CurveReport:
    sl = config.settings.service_level
    days_range = tuple(range(CURVE_DAYS + 1))
    days, spec = _prepare(config, request, days_range, carry=True)
    with _reading(engine) as conn:
        plan = _plan(conn, config, spec, use_rollup=use_rollup)
        rdays = _rollup_days(config, days, spec) if plan.counts else []
        groups = _counts(conn, config, request, days, rdays, spec, plan)

    def row(period: str | None, segment: dict[str, str], g: GroupCounts) -> CurveRow:
        points = kaplan_meier(g.matured, g.hits, g.carried)
        return CurveRow(period, segment, g.total - g.excluded, points)

    rows = [
        row(g.period, dict(zip(request.by, g.segment, strict=True)), g)
        for g in sorted(groups, key=lambda g: (g.period or "", g.segment))
    ]
    return CurveReport(
        as_of=request.as_of,
        timezone=sl.timezone,
        day_mode=sl.day_mode,
        closure=sl.closure,
        request=request,
        rows=rows,
        total=row(None, {}, _sum(groups, len(days_range))),
    )


def curve_to_csv(curve: CurveReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["period", *curve.request.by, "day", "closed_share", "at_risk", "closed"])
    for r, label in [*((r, r.period or "") for r in curve.rows), (curve.total, "total")]:
        for p in r.points:
            share = "" if p.closed_share is None else p.closed_share
            segs = [r.segment.get(f, "") for f in curve.request.by]
            writer.writerow([label, *segs, p.day, share, p.at_risk, p.closed])
    return out.getvalue()


CSV_COLUMNS = (
    "period",
    *SEGMENT_FIELDS,
    "threshold",
    "complaints",
    "excluded",
    "open",
    "hits",
    "misses",
    "matured",
    "pending",
    "share",
    "ci_low",
    "ci_high",
    "target",
    "met",
    "mean_days",
    "median_days",
    "p90_days",
)


def to_csv(report: Report) -> str:
    """One line per row and threshold (the total last, with period "total"), for spreadsheets."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    cols = ["period", *report.request.by, *CSV_COLUMNS[1 + len(SEGMENT_FIELDS) :]]
    writer.writerow(cols)

    def cell(value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return value

    for row, label in [*((r, r.period or "") for r in report.rows), (report.total, "total")]:
        for lv in row.levels:
            writer.writerow(
                [
                    label,
                    *(row.segment.get(f, "") for f in report.request.by),
                    lv.threshold,
                    row.complaints,
                    row.excluded,
                    row.open,
                    lv.hits,
                    lv.misses,
                    lv.matured,
                    lv.pending,
                    *(cell(v) for v in (lv.share, lv.ci_low, lv.ci_high, lv.target, lv.met)),
                    *(cell(v) for v in (row.mean_days, row.median_days, row.p90_days)),
                ]
            )
    return out.getvalue()


# --- the roll-up's rebuild ------------------------------------------------------------------


def rebuild_rollup(
    engine: Engine,
    config: Config,
    now: datetime,
    progress: Callable[[int, int, str], None] | None = None,
) -> rollup.RebuildResult:
    """Rebuild the roll-up from the stored complaints under ``config``, in one transaction
    (syncs and imports wait for it; reports read the old roll-up or raw rows meanwhile)."""
    with write_transaction(engine) as conn:
        result = rollup.rebuild(conn, rollup_basis(config), now, progress)
    rollup.vacuum(engine, complaints_too=result.rewrote_columns)
    return result


def adopt_rollup(engine: Engine, config: Config, now: datetime) -> bool:
    """Build the roll-up under ``config`` when it was built under other settings and the
    database holds no complaints yet (a new database is migrated for UTC): instant, and the
    first import then keeps a roll-up that serves. True when it rebuilt."""
    with engine.connect() as conn:
        meta = rollup.read_meta(conn)
        if meta is not None and meta.ready and not meta.differences(rollup_basis(config)):
            return False
        if conn.execute(select(complaints.c.id).limit(1)).first() is not None:
            return False
    rebuild_rollup(engine, config, now)
    return True

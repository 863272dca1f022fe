"""What a digest says, as plain frozen data: built from the store by build_context (the only I/O
here), rendered by slamon.digest.render without touching the database.

Every figure follows SERVICE-LEVEL.md: cohorts by local creation date, hit / miss / pending as of
``as_of``, the service level over matured complaints only. The counting is report.run's (SQL);
the complaint lists are capped SQL reads (store.queries).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from slamon import report as report_mod
from slamon.config import Config, DigestSettings
from slamon.domain import DayMode, Period
from slamon.instants import to_epoch
from slamon.report import Level, Row
from slamon.servicelevel.cohort import period_label
from slamon.servicelevel.deadlines import (
    WorkCalendar,
    deadline,
    deadline_day,
    local_date,
    start_of_local_day,
)
from slamon.store import queries

#: A level judged over fewer matured complaints than this shows its Wilson interval.
SMALL_SAMPLE = 100
#: Segments shown in the breakdown; the rest are counted as "N more".
BREAKDOWN_ROWS = 15
#: Complaints shown at most in a list (config: list_limit, 1 to this).
LIST_ROWS = 25
#: Alerts and sources shown at most.
ALERT_ROWS = 10
SOURCE_ROWS = 20
#: A source whose last successful sync is older than this is flagged stale.
DEFAULT_STALE_AFTER = timedelta(hours=6)
#: The threshold the "mean vs service level" line compares the mean with, when configured.
MEAN_LINE_THRESHOLD = 3

_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class DigestAlert:
    """An alert firing at the digest's instant (the alerts store fills these)."""

    title: str
    segment: dict[str, str]
    threshold: int | None
    share: float | None
    target: float | None
    since: datetime
    #: level, trend, warning or stale: the digest names the rule in its own language;
    #: "" shows ``title`` as it is.
    rule: str = ""


@dataclass(frozen=True, slots=True)
class LevelFigure:
    """One threshold's service level over one group of complaints."""

    threshold: int
    share: float | None
    target: float | None
    met: bool | None
    matured: int
    pending: int
    ci_low: float | None
    ci_high: float | None

    @property
    def small(self) -> bool:
        """Judged over so few complaints that the interval is worth showing."""
        return 0 < self.matured < SMALL_SAMPLE

    @property
    def shortfall(self) -> float | None:
        """How far below its target (negative: above), or None without share or target."""
        if self.share is None or self.target is None:
            return None
        return self.target - self.share

    @classmethod
    def of(cls, level: Level) -> LevelFigure:
        return cls(
            threshold=level.threshold,
            share=level.share,
            target=level.target,
            met=level.met,
            matured=level.matured,
            pending=level.pending,
            ci_low=level.ci_low,
            ci_high=level.ci_high,
        )

    @classmethod
    def empty(cls, threshold: int, target: float | None) -> LevelFigure:
        return cls(threshold, None, target, None, 0, 0, None, None)


@dataclass(frozen=True, slots=True)
class Headline:
    """A threshold's level for the digest's period, and the change since the period before."""

    level: LevelFigure
    previous: LevelFigure

    @property
    def change_points(self) -> float | None:
        if self.level.share is None or self.previous.share is None:
            return None
        return (self.level.share - self.previous.share) * 100


@dataclass(frozen=True, slots=True)
class TrendPoint:
    label: str  # the cohort label: 2026-05-11, 2026-W20 or 2026-05
    start: date
    end: date
    level: LevelFigure


@dataclass(frozen=True, slots=True)
class Trend:
    threshold: int
    target: float | None
    points: tuple[TrendPoint, ...]


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    segment: tuple[tuple[str, str], ...]  # (field, value) in the order of ``by``
    complaints: int
    open: int
    levels: tuple[LevelFigure, ...]

    @property
    def shortfall(self) -> float | None:
        """The largest shortfall against a target over the thresholds (the sort key)."""
        gaps = [g for g in (lv.shortfall for lv in self.levels) if g is not None]
        return max(gaps) if gaps else None


@dataclass(frozen=True, slots=True)
class MeanVsLevel:
    """The mean closure time beside the service level, over the whole trend window."""

    since: date
    until: date
    complaints: int
    closed: int
    mean_days: float | None
    median_days: float | None
    p90_days: float | None
    level: LevelFigure


@dataclass(frozen=True, slots=True)
class ComplaintItem:
    source: str
    external_id: str
    subject: str
    queue: str
    url: str
    created_at: datetime
    age_days: int
    #: For complaints due soon: the threshold whose deadline comes next, and that deadline.
    threshold: int | None = None
    deadline: datetime | None = None


@dataclass(frozen=True, slots=True)
class SourceFreshness:
    name: str
    kind: str
    #: The last successful sync, or for imported sources the last import.
    last_success_at: datetime | None
    imported: bool
    stale: bool
    last_error: str | None


@dataclass(frozen=True, slots=True)
class DigestContext:
    name: str
    locale: str
    timezone: str  # the digest's own (dates shown, period boundaries)
    as_of: datetime
    late: bool
    period: str  # day | week | month
    period_start: date
    period_end: date
    previous_start: date
    previous_end: date
    scope: tuple[tuple[str, str], ...]
    by: tuple[str, ...]
    thresholds: tuple[int, ...]
    day_mode: DayMode
    cohort_timezone: str  # service_level.timezone: which local day a complaint belongs to
    complaints: int  # of the period (excluded ones not counted)
    excluded: int
    headline: tuple[Headline, ...]
    trends: tuple[Trend, ...]
    breakdown: tuple[BreakdownRow, ...]
    breakdown_more: int
    mean_vs_level: MeanVsLevel
    oldest: tuple[ComplaintItem, ...]
    oldest_more: int
    due_soon: tuple[ComplaintItem, ...]
    due_soon_more: int
    alerts: tuple[DigestAlert, ...]
    alerts_more: int
    freshness: tuple[SourceFreshness, ...]
    freshness_more: int
    stale_after: timedelta
    subject: str | None  # the configured override


# --- periods (pure) ----------------------------------------------------------------------


def period_bounds(kind: str, as_of: datetime, tz: ZoneInfo) -> tuple[date, date]:
    """The previous complete day, ISO week or month in ``tz`` at ``as_of`` (first, last day)."""
    today = local_date(as_of, tz)
    if kind == "day":
        return today - _DAY, today - _DAY
    if kind == "week":
        start = today - timedelta(days=today.weekday() + 7)
        return start, start + timedelta(days=6)
    if kind == "month":
        end = today.replace(day=1) - _DAY
        return end.replace(day=1), end
    raise ValueError(f"not a digest period: {kind!r}")


def shift_period(kind: str, start: date, back: int) -> tuple[date, date]:
    """The period ``back`` periods before the one starting on ``start``."""
    if kind == "day":
        day = start - timedelta(days=back)
        return day, day
    if kind == "week":
        first = start - timedelta(weeks=back)
        return first, first + timedelta(days=6)
    if kind == "month":
        months = start.year * 12 + start.month - 1 - back
        first = date(months // 12, months % 12 + 1, 1)
        nxt = date((months + 1) // 12, (months + 1) % 12 + 1, 1)
        return first, nxt - _DAY
    raise ValueError(f"not a digest period: {kind!r}")


# --- deadlines within the next day (pure) --------------------------------------------------


def due_ranges(
    as_of: datetime,
    thresholds: Sequence[int],
    mode: DayMode,
    tz: ZoneInfo,
    calendar: WorkCalendar | None,
    window: timedelta = _DAY,
) -> list[list[tuple[int, int]]]:
    """Per threshold (in the order given), the half-open epoch ranges of creation instants whose
    deadline for that threshold falls in (as_of, as_of + window]. Calendar and working deadlines
    depend only on the local creation day, so their ranges are whole local days; elapsed ones
    are exact."""
    lo, hi = as_of, as_of + window
    out: list[list[tuple[int, int]]] = []
    for n in thresholds:
        ranges: list[tuple[int, int]] = []
        out.append(ranges)
        if mode is DayMode.ELAPSED:
            first = to_epoch(lo - timedelta(days=n)) + 1
            ranges.append((first, to_epoch(hi - timedelta(days=n)) + 1))
            continue
        today = local_date(as_of, tz)
        span = n + 3 if mode is DayMode.CALENDAR else 2 * n + 40
        for back in range(span, -1, -1):
            day = today - timedelta(days=back)
            dl = start_of_local_day(deadline_day(day, n, mode, calendar) + _DAY, tz)
            if lo < dl <= hi:
                start = to_epoch(start_of_local_day(day, tz))
                stop = to_epoch(start_of_local_day(day + _DAY, tz))
                if ranges and ranges[-1][1] == start:
                    ranges[-1] = (ranges[-1][0], stop)
                else:
                    ranges.append((start, stop))
    return out


def next_deadline(
    created_at: datetime,
    as_of: datetime,
    thresholds: Sequence[int],
    mode: DayMode,
    tz: ZoneInfo,
    calendar: WorkCalendar | None,
) -> tuple[int, datetime] | None:
    """The smallest threshold whose deadline is still ahead of ``as_of``, with that deadline."""
    for n in sorted(thresholds):
        dl = deadline(created_at, n, mode, tz, calendar)
        if dl > as_of:
            return n, dl
    return None


# --- ordering (pure) -----------------------------------------------------------------------


def worst_first(rows: Sequence[BreakdownRow]) -> list[BreakdownRow]:
    """Largest shortfall against a target first; rows with nothing judged last; then the
    larger segment first, then by name (stable across runs)."""

    def key(row: BreakdownRow) -> tuple[int, float, int, tuple[tuple[str, str], ...]]:
        gap = row.shortfall
        judged = sum(lv.matured for lv in row.levels)
        return (gap is None, -(gap or 0.0), -judged, row.segment)

    return sorted(rows, key=key)


def _figures(
    row: Row | None, thresholds: Sequence[int], targets: Mapping[int, float | None]
) -> tuple[LevelFigure, ...]:
    if row is None:
        return tuple(LevelFigure.empty(n, targets.get(n)) for n in thresholds)
    return tuple(LevelFigure.of(lv) for lv in row.levels)


# --- the one function that reads ------------------------------------------------------------


def build_context(
    engine: Engine,
    config: Config,
    name: str,
    as_of: datetime,
    *,
    alerts: Sequence[DigestAlert] = (),
    late: bool = False,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
) -> DigestContext:
    """Everything digest ``name`` shows as of ``as_of``: two report runs (trend and breakdown),
    two capped lists of open complaints, and the sources' state."""
    settings: DigestSettings = config.digest(name)
    sl = config.settings.service_level
    tz = settings.zone(sl.timezone)
    thresholds = sl.thresholds
    targets = {n: sl.target(n) for n in thresholds}
    scope = dict(settings.scope)
    kind = settings.period

    start, end = period_bounds(kind, as_of, tz)
    prev_start, prev_end = shift_period(kind, start, 1)
    trend_start, _ = shift_period(kind, start, settings.trend_periods - 1)

    trend_report = report_mod.run(
        engine,
        config,
        report_mod.make_request(
            as_of=as_of, tz=tz, since=trend_start, until=end, period=kind, filters=scope
        ),
    )
    by_label = {r.period: r for r in trend_report.rows}
    periods = [
        shift_period(kind, start, back) for back in range(settings.trend_periods - 1, -1, -1)
    ]
    labels = [period_label(first, Period(kind)) or "" for first, _ in periods]
    per_period = [_figures(by_label.get(label), thresholds, targets) for label in labels]

    trends = tuple(
        Trend(
            threshold=n,
            target=targets[n],
            points=tuple(
                TrendPoint(label, first, last, figures[i])
                for label, (first, last), figures in zip(labels, periods, per_period, strict=True)
            ),
        )
        for i, n in enumerate(thresholds)
    )
    headline = tuple(
        Headline(level=per_period[-1][i], previous=per_period[-2][i])
        for i in range(len(thresholds))
    )
    current = by_label.get(labels[-1])

    breakdown: list[BreakdownRow] = []
    if settings.by:
        seg_report = report_mod.run(
            engine,
            config,
            report_mod.make_request(
                as_of=as_of, tz=tz, since=start, until=end, by=settings.by, filters=scope
            ),
        )
        breakdown = worst_first(
            [
                BreakdownRow(
                    segment=tuple((f, r.segment[f]) for f in settings.by),
                    complaints=r.complaints,
                    open=r.open,
                    levels=_figures(r, thresholds, targets),
                )
                for r in seg_report.rows
                if r.complaints  # a segment of excluded complaints only has nothing to show
            ]
        )

    total = trend_report.total
    mean_n = MEAN_LINE_THRESHOLD if MEAN_LINE_THRESHOLD in thresholds else thresholds[0]
    mean_line = MeanVsLevel(
        since=trend_start,
        until=end,
        complaints=total.complaints,
        closed=total.complaints - total.open,
        mean_days=total.mean_days,
        median_days=total.median_days,
        p90_days=total.p90_days,
        level=LevelFigure.of(total.level(mean_n)),
    )

    calendar = config.settings.calendar.work_calendar()
    cohort_tz = sl.zone
    stamp = to_epoch(as_of)
    with engine.connect() as conn:
        oldest = queries.open_complaints(
            conn, as_of=stamp, closure=sl.closure, filters=scope, limit=settings.list_limit
        )
        due = queries.open_complaints(
            conn,
            as_of=stamp,
            closure=sl.closure,
            filters=scope,
            limit=settings.list_limit,
            created=due_ranges(as_of, sorted(thresholds), sl.day_mode, cohort_tz, calendar),
        )
        source_filter = [scope["source"]] if "source" in scope else None
        states = queries.source_states(conn, source_filter)

    def item(c: queries.OpenComplaint, with_deadline: bool) -> ComplaintItem:
        nxt = (
            next_deadline(c.created_at, as_of, thresholds, sl.day_mode, cohort_tz, calendar)
            if with_deadline
            else None
        )
        return ComplaintItem(
            source=c.source,
            external_id=c.external_id,
            subject=c.subject,
            queue=c.queue,
            url=c.url,
            created_at=c.created_at,
            age_days=max(0, (as_of - c.created_at) // _DAY),
            threshold=nxt[0] if nxt else None,
            deadline=nxt[1] if nxt else None,
        )

    # The SQL order: the smallest threshold first (the promise made first), then the oldest.
    due_items = [item(c, True) for c in due.items]
    freshness = []
    for s in states:
        imported = s.kind == queries.IMPORT_KIND
        last = s.last_import_at if imported and s.last_success_at is None else s.last_success_at
        freshness.append(
            SourceFreshness(
                name=s.name,
                kind=s.kind,
                last_success_at=last,
                imported=imported,
                stale=last is None or as_of - last > stale_after,
                last_error=s.last_error,
            )
        )
    # Stale sources first: they are the news.
    freshness.sort(key=lambda f: (not f.stale, f.name))

    return DigestContext(
        name=name,
        locale=settings.locale,
        timezone=str(tz.key),
        as_of=as_of,
        late=late,
        period=kind,
        period_start=start,
        period_end=end,
        previous_start=prev_start,
        previous_end=prev_end,
        scope=tuple(scope.items()),
        by=settings.by,
        thresholds=thresholds,
        day_mode=sl.day_mode,
        cohort_timezone=sl.timezone,
        complaints=current.complaints if current else 0,
        excluded=current.excluded if current else 0,
        headline=headline,
        trends=trends,
        breakdown=tuple(breakdown[:BREAKDOWN_ROWS]),
        breakdown_more=max(0, len(breakdown) - BREAKDOWN_ROWS),
        mean_vs_level=mean_line,
        oldest=tuple(item(c, False) for c in oldest.items),
        oldest_more=oldest.more,
        due_soon=tuple(due_items),
        due_soon_more=due.more,
        alerts=tuple(alerts[:ALERT_ROWS]),
        alerts_more=max(0, len(alerts) - ALERT_ROWS),
        freshness=tuple(freshness[:SOURCE_ROWS]),
        freshness_more=max(0, len(freshness) - SOURCE_ROWS),
        stale_after=stale_after,
        subject=settings.subject,
    )

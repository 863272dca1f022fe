"""Local creation days of a report, as the SQL counting joins them.

In calendar and working modes a deadline depends only on the local creation day and N
(SERVICE-LEVEL.md), so it is computed once per day here and joined to the complaints created
within the day's UTC bounds, rather than once per complaint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from slamon.domain import DayMode, Period
from slamon.instants import to_epoch
from slamon.servicelevel.deadlines import WorkCalendar, deadline_day, local_date, start_of_local_day

_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class CohortDay:
    day: date
    start: int  # epoch seconds of the first instant of the local day
    stop: int  # epoch seconds of the first instant of the next local day
    period: str | None
    #: Per threshold, the deadline instant (epoch seconds); empty in elapsed mode.
    deadlines: tuple[int, ...]


def period_label(day: date, period: Period) -> str | None:
    if period is Period.DAY:
        return day.isoformat()
    if period is Period.WEEK:
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if period is Period.MONTH:
        return f"{day.year}-{day.month:02d}"
    return None


def cohort_days(
    since: date,
    until: date,
    as_of: datetime,
    *,
    tz: ZoneInfo,
    period: Period,
    thresholds: Sequence[int],
    mode: DayMode,
    calendar: WorkCalendar | None,
) -> list[CohortDay]:
    """The local days from ``since`` to ``until`` (inclusive) that have begun by ``as_of``:
    complaints created after as_of do not exist yet."""
    last = min(until, local_date(as_of, tz))
    days: list[CohortDay] = []
    day = since
    start = start_of_local_day(day, tz)
    while day <= last:
        nxt = day + _DAY
        stop = start_of_local_day(nxt, tz)
        if mode is DayMode.ELAPSED:
            deadlines: tuple[int, ...] = ()
        else:
            deadlines = tuple(
                to_epoch(
                    start_of_local_day(deadline_day(day, n, mode, calendar) + timedelta(1), tz)
                )
                for n in thresholds
            )
        days.append(
            CohortDay(day, to_epoch(start), to_epoch(stop), period_label(day, period), deadlines)
        )
        day, start = nxt, stop
    return days

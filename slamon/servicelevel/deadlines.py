"""Deadlines in the three day modes of SERVICE-LEVEL.md.

calendar: the end of local day ``local_date(created_at) + N``.
working:  the end of the N-th working day after ``local_date(created_at)``; the creation day itself
          never counts. N = 0 means the end of the creation day.
elapsed:  exactly ``created_at + N x 24 h``.
"The end of local day D" is the first instant of local day D + 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from slamon.domain import DayMode

_ONE_DAY = timedelta(days=1)


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    """The local calendar day of an aware instant in ``tz``."""
    return instant.astimezone(tz).date()


def start_of_local_day(day: date, tz: ZoneInfo) -> datetime:
    """The first instant (UTC) whose local date in ``tz`` is ``day``.

    Usually local midnight. Where a daylight-saving gap swallows midnight, the day begins at the
    transition, which this finds by bisection over whole seconds.
    """
    guess = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    local = guess.astimezone(tz)
    if local.date() == day and local.time() == time(0):
        return guess
    # The instant local midnight maps to is not 00:00 of ``day``: a transition lies within a day
    # of it. The start of ``day`` is the smallest instant whose local date is >= day.
    lo, hi = guess - _ONE_DAY, guess + _ONE_DAY
    while local_date(lo, tz) >= day:
        lo -= _ONE_DAY
    while local_date(hi, tz) < day:
        hi += _ONE_DAY
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if local_date(datetime.fromtimestamp(mid, UTC), tz) >= day:
            hi_s = mid
        else:
            lo_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


class WorkCalendar:
    """Working days: Monday to Friday, minus the public holidays of ``country`` (the holidays
    package), minus ``extra_holidays``, plus ``extra_working_days`` (which win over both)."""

    def __init__(
        self,
        country: str | None = None,
        subdivision: str | None = None,
        extra_holidays: Iterable[date] = (),
        extra_working_days: Iterable[date] = (),
    ) -> None:
        self.country = country
        self.subdivision = subdivision
        self.extra_holidays = frozenset(extra_holidays)
        self.extra_working_days = frozenset(extra_working_days)
        self._public: holidays.HolidayBase | None = (
            holidays.country_holidays(country, subdiv=subdivision) if country else None
        )
        self._cache: dict[date, bool] = {}

    def is_working(self, day: date) -> bool:
        cached = self._cache.get(day)
        if cached is None:
            if day in self.extra_working_days:
                cached = True
            elif day.weekday() >= 5 or day in self.extra_holidays:
                cached = False
            else:
                cached = self._public is None or day not in self._public
            self._cache[day] = cached
        return cached

    def nth_working_day_after(self, day: date, n: int) -> date:
        """The N-th working day strictly after ``day`` (``day`` itself when n == 0)."""
        current = day
        remaining = n
        while remaining > 0:
            current += _ONE_DAY
            if self.is_working(current):
                remaining -= 1
        return current


def deadline_day(created_day: date, n: int, mode: DayMode, calendar: WorkCalendar | None) -> date:
    """The local day whose end is the deadline (calendar and working modes)."""
    if mode is DayMode.CALENDAR:
        return created_day + timedelta(days=n)
    if mode is DayMode.WORKING:
        return (calendar or _weekdays()).nth_working_day_after(created_day, n)
    raise ValueError("elapsed mode has no deadline day; use deadline()")


def deadline(
    created_at: datetime,
    n: int,
    mode: DayMode,
    tz: ZoneInfo,
    calendar: WorkCalendar | None = None,
) -> datetime:
    """The deadline instant (UTC) of a complaint created at ``created_at`` for threshold ``n``."""
    if mode is DayMode.ELAPSED:
        return (created_at + timedelta(days=n)).astimezone(UTC)
    day = deadline_day(local_date(created_at, tz), n, mode, calendar)
    return start_of_local_day(day + _ONE_DAY, tz)


@lru_cache(maxsize=1)
def _weekdays() -> WorkCalendar:
    return WorkCalendar()


def creations_due(
    at: datetime,
    within: timedelta,
    n: int,
    mode: DayMode,
    tz: ZoneInfo,
    calendar: WorkCalendar | None = None,
) -> tuple[datetime, datetime] | None:
    """The creation instants [start, stop) whose N-day deadline falls in (at, at + within]:
    the complaints that, open now, become late within ``within``. None when there are none.

    Deadlines never decrease as creation moves later, so the answer is one range."""
    if within <= timedelta(0):
        return None
    end = at + within
    if mode is DayMode.ELAPSED:
        second = timedelta(seconds=1)
        return (at - timedelta(days=n) + second, end - timedelta(days=n) + second)
    today = local_date(at, tz)
    first: date | None = None
    last: date | None = None
    # a deadline day is at least n days after creation, at most n working days plus holidays
    day = today - timedelta(days=3 * n + 40)
    while day <= local_date(end, tz):
        dl = start_of_local_day(deadline_day(day, n, mode, calendar) + _ONE_DAY, tz)
        if at < dl <= end:
            first = first or day
            last = day
        elif dl > end:
            break
        day += _ONE_DAY
    if first is None or last is None:
        return None
    return start_of_local_day(first, tz), start_of_local_day(last + _ONE_DAY, tz)

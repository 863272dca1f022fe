"""A brute-force oracle written from SERVICE-LEVEL.md, one complaint at a time, in plain Python.

It shares no code with slamon's engine: slamon computes deadline instants per creation day and
counts in SQL; the oracle walks dates (a closure is in time iff its local day is on or before the
deadline day; a deadline has passed iff as_of's local day is after the deadline day) and builds
its own working-day calendar. The two formulations agree for time zones whose local date never
goes backwards, which is every zone the tests use.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays


@dataclass(frozen=True)
class Case:
    """One complaint as the store holds it."""

    created_at: datetime
    closed_at: datetime | None
    first_closed_at: datetime | None
    queue: str = ""
    excluded_reason: str | None = None


@dataclass(frozen=True)
class Rules:
    tz: str
    mode: str  # calendar | working | elapsed
    closure: str  # final | first
    thresholds: tuple[int, ...]
    targets: dict[int, float]
    country: str | None = None
    extra_holidays: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()


def _working(day: date, rules: Rules, public: holidays.HolidayBase | None) -> bool:
    if day in rules.extra_working_days:
        return True
    if day in rules.extra_holidays:
        return False
    if day.isoweekday() in (6, 7):
        return False
    return not (public is not None and day in public)


def _deadline_day(
    created_day: date, n: int, rules: Rules, public: holidays.HolidayBase | None
) -> date:
    if rules.mode == "calendar":
        return created_day + timedelta(days=n)
    day, found = created_day, 0
    while found < n:
        day += timedelta(days=1)
        if _working(day, rules, public):
            found += 1
    return day


def _quantile(values: list[float], decile: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[decile - 1]


def _wilson(hits: int, n: int) -> tuple[float, float]:
    z = 1.959964
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * ((p * (1 - p) + z * z / (4 * n)) / n) ** 0.5
    denom = 1 + z * z / n
    return max(0.0, (centre - spread) / denom), min(1.0, (centre + spread) / denom)


def period_of(day: date, period: str) -> str | None:
    if period == "day":
        return day.isoformat()
    if period == "week":
        iso = day.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    if period == "month":
        return day.strftime("%Y-%m")
    return None


def report(
    cases: list[Case],
    rules: Rules,
    *,
    as_of: datetime,
    since: date,
    until: date,
    period: str,
    by_queue: bool,
    queue: str | None = None,
) -> dict[tuple[str | None, str | None], dict]:
    """{(period, queue or None): row} with the fields of slamon's JSON rows, and key
    ("total", None) for the total; ``queue``: only the complaints of that queue."""
    tz = ZoneInfo(rules.tz)
    public = holidays.country_holidays(rules.country) if rules.country else None
    groups: dict[tuple[str | None, str | None], list[Case]] = {}
    everything: list[Case] = []
    for case in cases:
        if case.created_at > as_of:
            continue  # does not exist yet
        cday = case.created_at.astimezone(tz).date()
        if not since <= cday <= until:
            continue
        if queue is not None and case.queue != queue:
            continue
        key = (period_of(cday, period), case.queue if by_queue else None)
        groups.setdefault(key, []).append(case)
        everything.append(case)
    out = {key: _row(members, rules, tz, public, as_of) for key, members in groups.items()}
    out[("total", None)] = _row(everything, rules, tz, public, as_of)
    return out


def _row(
    cases: list[Case],
    rules: Rules,
    tz: ZoneInfo,
    public: holidays.HolidayBase | None,
    as_of: datetime,
) -> dict:
    as_of_day = as_of.astimezone(tz).date()
    included, excluded = [], 0
    for case in cases:
        closure = case.closed_at if rules.closure == "final" else case.first_closed_at
        if case.excluded_reason is not None or (closure is not None and closure < case.created_at):
            excluded += 1
            continue
        # A closure recorded after as_of has not happened yet.
        if closure is not None and closure > as_of:
            closure = None
        included.append((case, closure))
    durations = sorted(
        (closure - case.created_at).total_seconds() / 86400
        for case, closure in included
        if closure is not None
    )
    levels = {}
    for n in rules.thresholds:
        hits = misses = pending = 0
        for case, closure in included:
            if rules.mode == "elapsed":
                deadline = case.created_at + timedelta(days=n)
                if deadline > as_of:
                    pending += 1
                elif closure is not None and closure < deadline:
                    hits += 1
                else:
                    misses += 1
                continue
            dday = _deadline_day(case.created_at.astimezone(tz).date(), n, rules, public)
            if as_of_day <= dday:
                pending += 1  # the deadline day has not ended yet
            elif closure is not None and closure.astimezone(tz).date() <= dday:
                hits += 1
            else:
                misses += 1
        matured = hits + misses
        share = hits / matured if matured else None
        low, high = _wilson(hits, matured) if matured else (None, None)
        target = rules.targets.get(n)
        levels[str(n)] = {
            "hits": hits,
            "misses": misses,
            "matured": matured,
            "pending": pending,
            "share": share,
            "ci_low": low,
            "ci_high": high,
            "target": target,
            "met": None if share is None or target is None else share >= target,
        }
    return {
        "complaints": len(included),
        "excluded": excluded,
        "open": sum(1 for _, closure in included if closure is None),
        "mean_days": statistics.fmean(durations) if durations else None,
        "median_days": _quantile(durations, 5) if durations else None,
        "p90_days": _quantile(durations, 9) if durations else None,
        "levels": levels,
    }


def curve(
    cases: list[Case], rules: Rules, *, as_of: datetime, since: date, until: date, days: int
) -> list[float | None]:
    """Kaplan-Meier share closed within d days for d = 0..days, complaint by complaint: at step d
    the complaints whose d-day deadline has passed and that were still open at the (d-1)-day
    deadline are at risk; those that closed before the d-day deadline are the events."""
    tz = ZoneInfo(rules.tz)
    public = holidays.country_holidays(rules.country) if rules.country else None
    as_of_day = as_of.astimezone(tz).date()
    members = []
    for case in cases:
        if case.created_at > as_of or not since <= case.created_at.astimezone(tz).date() <= until:
            continue
        closure = case.closed_at if rules.closure == "final" else case.first_closed_at
        if case.excluded_reason is not None or (closure is not None and closure < case.created_at):
            continue
        members.append((case, closure if closure is not None and closure <= as_of else None))

    def passed_and_in_time(case: Case, closure: datetime | None, n: int) -> tuple[bool, bool]:
        if rules.mode == "elapsed":
            deadline = case.created_at + timedelta(days=n)
            return deadline <= as_of, closure is not None and closure < deadline
        dday = _deadline_day(case.created_at.astimezone(tz).date(), n, rules, public)
        in_time = closure is not None and closure.astimezone(tz).date() <= dday
        return as_of_day > dday, in_time

    shares: list[float | None] = []
    survival: float | None = 1.0
    for d in range(days + 1):
        at_risk = events = 0
        for case, closure in members:
            passed, in_time = passed_and_in_time(case, closure, d)
            if not passed:
                continue
            if d > 0 and passed_and_in_time(case, closure, d - 1)[1]:
                continue  # closed in an earlier step
            at_risk += 1
            events += in_time
        if survival is None or at_risk == 0:
            survival = None
            shares.append(None)
            continue
        survival *= 1 - events / at_risk
        shares.append(1 - survival)
    return shares

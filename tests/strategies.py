"""Hypothesis strategies the property tests share: instants that land on the edges where
deadlines fall (a local midnight and the second before it)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

DAY = 86400


def local_midnight(base: datetime, tz: ZoneInfo, day_offset: int) -> datetime:
    """The local midnight ``day_offset`` days after ``base``'s local day, in UTC."""
    day = base.astimezone(tz).date() + timedelta(days=day_offset)
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


@st.composite
def instants(draw: st.DrawFn, base: datetime, tz: ZoneInfo, max_days: int) -> datetime:
    """Any second in the range, or a local midnight, or one second before one."""
    kind = draw(st.sampled_from(["any", "any", "midnight", "before-midnight"]))
    if kind == "any":
        return base + timedelta(seconds=draw(st.integers(0, max_days * DAY)))
    at = local_midnight(base, tz, draw(st.integers(0, max_days)))
    return at - timedelta(seconds=1) if kind == "before-midnight" else at

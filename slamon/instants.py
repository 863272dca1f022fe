"""Instants: aware UTC datetimes in code, epoch seconds in storage, local only at the edges."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def to_epoch(value: datetime) -> int:
    """Whole seconds since the epoch of an aware instant (sub-seconds truncated toward the past)."""
    if value.microsecond:
        value = value.replace(microsecond=0)
    return int(value.timestamp())


def from_epoch(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def parse_instant(value: str, tz: ZoneInfo) -> datetime:
    """An ISO 8601 time: with an offset or Z it is that instant; naive, it is local time in ``tz``
    (an ambiguous local time takes its first occurrence). Truncated to whole seconds, in UTC."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC).replace(microsecond=0)

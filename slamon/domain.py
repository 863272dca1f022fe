"""Plain values shared by every layer. No I/O, no SQLAlchemy, no httpx."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum


class DayMode(StrEnum):
    CALENDAR = "calendar"
    WORKING = "working"
    ELAPSED = "elapsed"


class Closure(StrEnum):
    FINAL = "final"
    FIRST = "first"


class Period(StrEnum):
    NONE = "none"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


#: The fields a report can group by, in the order segments are shown and sorted.
SEGMENT_FIELDS: tuple[str, ...] = ("source", "queue", "channel", "category", "priority")

#: Reasons a source gives for leaving a complaint out of every metric.
EXCLUSION_REASONS: frozenset[str] = frozenset({"deleted", "spam", "merged"})


@dataclass(frozen=True, slots=True)
class ComplaintRecord:
    """One complaint as a source reports it, normalized.

    Instants are timezone-aware UTC, whole seconds. Coming from a source, ``first_closed_at`` is
    the first closure if the source knows it, else None; as stored, it is the earliest closure
    slamon has seen (see merge()).
    ``excluded_reason`` is set when the source marks the complaint deleted, spam or merged.
    """

    external_id: str
    created_at: datetime
    closed_at: datetime | None = None
    first_closed_at: datetime | None = None
    status: str = ""
    queue: str = ""
    channel: str = ""
    category: str = ""
    priority: str = ""
    subject: str = ""
    url: str = ""
    source_updated_at: datetime | None = None
    excluded_reason: str | None = None


_RECORD_FIELDS = tuple(f.name for f in fields(ComplaintRecord))
_FIRST_CLOSED = _RECORD_FIELDS.index("first_closed_at")


def is_older(incoming: ComplaintRecord, stored: ComplaintRecord) -> bool:
    """True when the source's own updated times say ``incoming`` predates ``stored``."""
    return (
        stored.source_updated_at is not None
        and incoming.source_updated_at is not None
        and incoming.source_updated_at < stored.source_updated_at
    )


def merge(stored: ComplaintRecord | None, incoming: ComplaintRecord) -> ComplaintRecord | None:
    """What to store when ``incoming`` arrives for a complaint held as ``stored``.

    Returns None when nothing is to be written: the incoming version is older than the stored
    one by the source's own updated time, or identical to it. In the returned (and stored)
    record ``first_closed_at`` is the earliest closure ever seen: the source's own first closure
    when it gives one, else the earliest ``closed_at`` seen, so a reopened and re-closed complaint
    keeps its first closure under ``closure = "first"``.
    """
    first = incoming.first_closed_at or incoming.closed_at
    if stored is not None:
        if is_older(incoming, stored):
            return None
        if stored.first_closed_at is not None and (first is None or stored.first_closed_at < first):
            first = stored.first_closed_at
    merged = incoming if incoming.first_closed_at == first else _with_first(incoming, first)
    return None if merged == stored else merged


def _with_first(rec: ComplaintRecord, first: datetime | None) -> ComplaintRecord:
    # dataclasses.replace() costs 7 us; this 1 us, on every closed complaint an import brings.
    values = [getattr(rec, name) for name in _RECORD_FIELDS]
    values[_FIRST_CLOSED] = first
    return ComplaintRecord(*values)


def sync_failure(
    last_error: str | None, last_success_at: datetime | None, last_attempt_at: datetime | None
) -> str | None:
    """A source's sync error while it still stands: its latest attempt failed after its last
    success (or it never succeeded); None once a later sync succeeded."""
    if last_error is None:
        return None
    if last_success_at is None:
        return last_error
    if last_attempt_at is not None and last_attempt_at > last_success_at:
        return last_error
    return None

"""Hit, miss or pending for one complaint and one threshold, as of an instant."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum


class Verdict(StrEnum):
    HIT = "hit"
    MISS = "miss"
    PENDING = "pending"


def verdict(deadline_at: datetime, closed_at: datetime | None, as_of: datetime) -> Verdict:
    """SERVICE-LEVEL.md: pending while the deadline is ahead (closed or not); once it has passed,
    a hit if closed strictly before it, else a miss. A closure after ``as_of`` has not happened."""
    if deadline_at > as_of:
        return Verdict.PENDING
    if closed_at is not None and closed_at < deadline_at:
        return Verdict.HIT
    return Verdict.MISS

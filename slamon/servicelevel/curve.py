"""The closure curve: the share of a cohort closed within d days, d = 0, 1, 2, ..., as a
Kaplan-Meier estimate.

Young complaints whose d-day deadline is still ahead are censored, not dropped and not counted
as late: step d's risk set holds the complaints whose d-day deadline has passed and that had not
closed by their (d-1)-day deadline; its events are those of them that closed before the d-day
deadline. A cohort whose deadlines have all passed gives exactly SL(d) at every d.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CurvePoint:
    day: int
    closed_share: float | None  # None once no complaint is at risk any more
    at_risk: int
    closed: int


def kaplan_meier(
    matured: Sequence[int], hits: Sequence[int], carried: Sequence[int]
) -> list[CurvePoint]:
    """From per-day counts: matured[d] and hits[d] as for threshold d, and carried[d - 1] =
    complaints matured for d that had already closed before the (d-1)-day deadline."""
    points = []
    survival: float | None = 1.0
    for day, (m, h) in enumerate(zip(matured, hits, strict=True)):
        before = carried[day - 1] if day > 0 else 0
        at_risk, closed = m - before, h - before
        if survival is None or at_risk <= 0:
            survival = None
            points.append(CurvePoint(day, None, max(at_risk, 0), max(closed, 0)))
            continue
        survival *= 1 - closed / at_risk
        points.append(CurvePoint(day, 1 - survival, at_risk, closed))
    return points


def days_to(points: Sequence[CurvePoint], share: float) -> int | None:
    """The first day by which the estimated closed share reaches ``share``, if within the curve."""
    for point in points:
        if point.closed_share is not None and point.closed_share >= share - 1e-12:
            return point.day
    return None

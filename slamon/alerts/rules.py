"""The alert rules: pure judgements of measured figures (no I/O, no clock).

Each rule turns figures into an Observation for the state machine (slamon.alerts.state):

- level: the service level for a threshold over the rolling window against its target.
  ``significance = "wilson"`` breaches only when the whole 95 % Wilson interval lies below the
  target (a small queue with two late complaints pages nobody); ``"point"`` when the share is
  below it. Healthy again when the share reaches target + recovery_margin_points.
- trend: the level dropped by at least ``drop_points`` against the previous window; healthy again
  when the drop is at most half of that (so a drop hovering at the limit does not flap).
- warning: open complaints whose deadline falls within ``warn_within`` would take the level below
  its target if all of them were late, while it is still at or above it now.
- stale: a configured source without a successful sync for ``stale_after``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from slamon.alerts.state import Observation

#: float slack when comparing shares in percentage points (0.82 must count as 80 % + 2 points)
_EPS = 1e-9


class Rule(StrEnum):
    LEVEL = "level"
    TREND = "trend"
    WARNING = "warning"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class Segment:
    """The part of the complaints an alert judges: the total (field "") or one segment value."""

    field: str = ""
    value: str = ""

    @property
    def labels(self) -> dict[str, str]:
        return {self.field: self.value} if self.field else {}

    def __str__(self) -> str:
        return f"{self.field}={self.value}" if self.field else "total"


def alert_key(rule: Rule, segment: Segment, threshold: int | None = None) -> str:
    """The stable identity of an alert: one row of state per key."""
    n = "" if threshold is None else str(threshold)
    return f"{rule.value}:{n}:{segment}"


@dataclass(frozen=True, slots=True)
class Figures:
    """A level over one window: matured complaints, hits, and the Wilson interval."""

    matured: int
    hits: int
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def share(self) -> float | None:
        return self.hits / self.matured if self.matured else None


@dataclass(frozen=True, slots=True)
class Thresholds:
    min_matured: int
    significance: Literal["wilson", "point"]
    recovery_margin_points: float
    drop_points: float


def judge_level(fig: Figures, target: float, t: Thresholds) -> Observation:
    share = fig.share
    if share is None or fig.matured < t.min_matured:
        return Observation.NO_VERDICT
    if t.significance == "wilson":
        breach = fig.ci_high is not None and fig.ci_high < target
    else:
        breach = share < target
    if breach:
        return Observation.BREACH
    if share * 100 >= target * 100 + t.recovery_margin_points - _EPS:
        return Observation.HEALTHY
    return Observation.BETWEEN


def judge_trend(now: Figures, before: Figures, t: Thresholds) -> tuple[Observation, float | None]:
    """The observation and the drop in percentage points (positive: the level fell)."""
    if now.share is None or before.share is None:
        return Observation.NO_VERDICT, None
    if min(now.matured, before.matured) < t.min_matured:
        return Observation.NO_VERDICT, None
    drop = (before.share - now.share) * 100
    if drop >= t.drop_points - _EPS:
        return Observation.BREACH, drop
    if drop <= t.drop_points / 2:
        return Observation.HEALTHY, drop
    return Observation.BETWEEN, drop


def judge_warning(
    fig: Figures, at_risk: int, target: float, t: Thresholds
) -> tuple[Observation, float | None]:
    """The observation and the level the threshold falls to if every at-risk complaint is late."""
    if fig.matured + at_risk < t.min_matured or (fig.share is None and at_risk == 0):
        return Observation.NO_VERDICT, None
    projected = fig.hits / (fig.matured + at_risk)
    if fig.share is not None and fig.share < target:
        # already below target: the level rule speaks; the warning keeps its state
        return Observation.BETWEEN, projected
    if at_risk and projected < target:
        return Observation.BREACH, projected
    return Observation.HEALTHY, projected


def judge_stale(
    last_success_at: datetime | None, known_since: datetime, at: datetime, stale_after: timedelta
) -> Observation:
    """``known_since``: when slamon first knew the source (a source that never synced is stale
    once it has been known for stale_after)."""
    last = last_success_at or known_since
    return Observation.BREACH if at - last >= stale_after else Observation.HEALTHY

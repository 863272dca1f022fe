"""Digests: a scheduled summary of the service level for managers.

``build_context`` reads the store (report counts in SQL, capped lists of open complaints, the
sources' sync state) into a frozen DigestContext; ``render`` turns a context into a subject, a
plain-text part and an HTML part, in Russian or English. Sending is slamon.notify's business.
"""

from slamon.digest.context import (
    DEFAULT_STALE_AFTER,
    BreakdownRow,
    ComplaintItem,
    DigestAlert,
    DigestContext,
    Headline,
    LevelFigure,
    MeanVsLevel,
    SourceFreshness,
    Trend,
    TrendPoint,
    build_context,
    period_bounds,
)
from slamon.digest.render import RenderedDigest, render

__all__ = [
    "DEFAULT_STALE_AFTER",
    "BreakdownRow",
    "ComplaintItem",
    "DigestAlert",
    "DigestContext",
    "Headline",
    "LevelFigure",
    "MeanVsLevel",
    "RenderedDigest",
    "SourceFreshness",
    "Trend",
    "TrendPoint",
    "build_context",
    "period_bounds",
    "render",
]

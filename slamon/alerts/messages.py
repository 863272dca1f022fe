"""What an alert notification says: titles, the grouped email (text and HTML from templates/)
and the webhook bodies. No database, no sending."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from slamon.alerts.rules import Rule, Segment
from slamon.alerts.state import Notice

__all__ = ["Item", "Notice", "render_email", "subject", "title", "webhook_body"]
from slamon.notify import webhooks
from slamon.notify.email import one_line
from slamon.store.atrisk import OpenComplaint
from slamon.templating import environment


@dataclass(frozen=True, slots=True)
class Item:
    """One alert's notice in a message."""

    key: str
    rule: Rule
    notice: Notice
    threshold: int | None
    segment: Segment
    since: datetime
    episode_id: int
    reminder: int
    share: float | None = None
    target: float | None = None
    matured: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    complaints: tuple[OpenComplaint, ...] = ()


def pct(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.1f} %"


def _where(segment: Segment) -> str:
    return "all complaints" if not segment.field else f"{segment.field} {segment.value}"


def span(d: timedelta) -> str:
    hours = int(d.total_seconds() // 3600)
    if hours >= 48:
        return f"{hours // 24} days"
    if hours >= 1:
        return f"{hours} h"
    return f"{int(d.total_seconds() // 60)} min"


def title(item: Item, tz: ZoneInfo) -> str:
    """One line that says what is wrong (or was), with the figures."""
    n, where, d = item.threshold, _where(item.segment), item.detail
    if item.rule is Rule.LEVEL:
        text = f"{n}-day level of {where}: {pct(item.share)}, target {pct(item.target)}"
        if d.get("ci_low") is not None:
            text += f" (95 % CI {pct(d['ci_low'])}–{pct(d['ci_high'])}, {item.matured} matured)"
        return text
    if item.rule is Rule.TREND:
        return (
            f"{n}-day level of {where} fell {d.get('drop', 0):.1f} points:"
            f" {pct(d.get('previous'))} -> {pct(item.share)}"
        )
    if item.rule is Rule.WARNING:
        return (
            f"{where}: {d.get('at_risk', 0)} open complaints reach their {n}-day deadline"
            f" within {d.get('within', '')}; if all are late the level falls to"
            f" {pct(d.get('projected'))} (target {pct(item.target)}, now {pct(item.share)})"
        )
    last = d.get("last_success_at")
    when = (
        "never synced successfully"
        if last is None
        else f"last synced {datetime.fromisoformat(last).astimezone(tz):%Y-%m-%d %H:%M %Z}"
    )
    error = f"; last error: {d['last_error']}" if d.get("last_error") else ""
    return f"source {item.segment.value} is stale: {when}{error}"


_WORD = {Notice.FIRING: "FIRING", Notice.REMINDER: "STILL FIRING", Notice.RESOLVED: "RESOLVED"}


def subject(items: Sequence[Item], tz: ZoneInfo) -> str:
    if len(items) == 1:
        return one_line(f"[slamon] {_WORD[items[0].notice]}: {title(items[0], tz)}", 250)
    counts: dict[Notice, int] = {}
    for item in items:
        counts[item.notice] = counts.get(item.notice, 0) + 1
    parts = [f"{c} {_WORD[n].lower()}" for n, c in counts.items()]
    return one_line(f"[slamon] {', '.join(parts)}: {title(items[0], tz)}", 250)


def _context(items: Sequence[Item], tz: ZoneInfo, at: datetime) -> dict[str, Any]:
    rows = []
    for item in items:
        rows.append(
            {
                "word": _WORD[item.notice],
                "notice": item.notice.value,
                "title": title(item, tz),
                "since": item.since.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z"),
                "for": span(at - item.since),
                "silence": (
                    f"slamon alerts silence --match {item.segment.field}={item.segment.value}"
                    if item.segment.field
                    else "slamon alerts silence --all"
                ),
                "complaints": [
                    {
                        "id": c.external_id,
                        "age_days": (at - c.created_at).total_seconds() / 86400,
                        "queue": c.queue,
                        "subject": one_line(c.subject, 120),
                        "url": c.url if c.url.startswith(("https://", "http://")) else "",
                    }
                    for c in item.complaints
                ],
                "more": max(int(item.detail.get("at_risk", 0)) - len(item.complaints), 0),
            }
        )
    return {"items": rows, "at": at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")}


def render_email(items: Sequence[Item], tz: ZoneInfo, at: datetime) -> tuple[str, str, str]:
    """(subject, text, html) of one grouped message."""
    env = environment()
    ctx = _context(items, tz, at)
    text = env.get_template("alert.txt.j2").render(ctx)
    html = env.get_template("alert.html.j2").render(ctx)
    return subject(items, tz), text, html


def webhook_body(kind: str, items: Sequence[Item], tz: ZoneInfo, at: datetime) -> dict[str, Any]:
    subj, text, _ = render_email(items, tz, at)
    data = {
        "kind": "alert",
        "at": at.isoformat(),
        "alerts": [
            {
                "key": i.key,
                "rule": i.rule.value,
                "status": i.notice.value,
                "threshold": i.threshold,
                "segment": i.segment.labels,
                "share": i.share,
                "target": i.target,
                "matured": i.matured,
                "since": i.since.isoformat(),
                "episode": i.episode_id,
                "title": title(i, tz),
                "detail": i.detail,
                "complaints": [
                    {
                        "source": c.source,
                        "id": c.external_id,
                        "created_at": c.created_at.isoformat(),
                        "queue": c.queue,
                        "subject": c.subject,
                        "url": c.url,
                    }
                    for c in i.complaints
                ],
            }
            for i in items
        ],
    }
    return webhooks.payload(kind, subj, text, data)

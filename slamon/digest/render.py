"""A DigestContext as a message: subject, plain text and HTML (CSS inlined), no I/O.

The templates are Jinja2 files (templates/ in a checkout, slamon/_templates in the wheel):
autoescaped HTML, strict about undefined names, and every expression they print passes through
``_finalize`` first, so text from the ticket systems (subjects, queue names) cannot break a line
of the plain text or smuggle a control or bidi character into either part; only http(s) URLs
become links. The trend is drawn with
table cells (Outlook and Gmail show them; no images, no scripts, no web fonts).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import css_inline

from slamon.digest.context import (
    ALERT_ROWS,
    BREAKDOWN_ROWS,
    LIST_ROWS,
    SOURCE_ROWS,
    BreakdownRow,
    ComplaintItem,
    DigestAlert,
    DigestContext,
    Headline,
    LevelFigure,
    TrendPoint,
)
from slamon.digest.i18n import DASH, Messages
from slamon.domain import SEGMENT_FIELDS
from slamon.templating import UNSAFE, environment

HTML_TEMPLATE = "digest.html.j2"
TEXT_TEMPLATE = "digest.txt.j2"

#: Pixel height of a full (100 %) trend bar, and of the target mark across it.
BAR_HEIGHT = 56
MARK_HEIGHT = 2
COLOURS = {
    "met": "#1a7f37",
    "missed": "#c62828",
    "none": "#8c959f",
    "empty": "#eaeef2",
    "mark": "#24292f",
}
#: The alert rules the catalogues name.
ALERT_RULES = ("level", "trend", "warning", "stale")
#: Subjects of complaints are cut to this many characters in the lists.
SUBJECT_CHARS = 120


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    subject: str
    text: str
    html: str
    #: Inline images by Content-ID; the trend is drawn in HTML, so none today.
    images: dict[str, bytes] = field(default_factory=dict)


def inert(value: str) -> str:
    """One line of text: control characters and line breaks become single spaces."""
    return re.sub(r" {2,}", " ", UNSAFE.sub(" ", value)).strip(" ")


@cache
def _inliner() -> css_inline.CSSInliner:
    # @media rules stay in a <style> block for the clients that honour them (phones).
    return css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


class View:
    """What the templates ask of a context: words, figures and bar geometry, per locale."""

    def __init__(self, ctx: DigestContext) -> None:
        self.ctx = ctx
        self.m = Messages(ctx.locale)
        self.zone = ZoneInfo(ctx.timezone)

    # --- periods ---

    def period_title(self, start: date | None = None, end: date | None = None) -> str:
        start = start or self.ctx.period_start
        end = end or self.ctx.period_end
        kind = self.ctx.period
        if kind == "month":
            return self.m.t("period.month", month=self.m.month(start))
        if kind == "week":
            return self.m.t("period.week", range=self.m.date_range(start, end))
        return self.m.t("period.day", day=self.m.date_range(start, end))

    def point_label(self, point: TrendPoint) -> str:
        if self.ctx.period == "month":
            return self.m.day(point.start, "MMM")
        return self.m.day(point.start, "Md")

    # --- levels ---

    def within(self, n: int) -> str:
        return self.m.plural("level.within", n)

    def short(self, n: int) -> str:
        return self.m.t("level.short", n=n)

    @staticmethod
    def status(level: LevelFigure) -> str:
        if level.met is None:
            return "none"
        return "met" if level.met else "missed"

    def symbol(self, level: LevelFigure) -> str:
        return {"met": "✔", "missed": "✘", "none": ""}[self.status(level)]

    def verdict(self, level: LevelFigure) -> str:
        """Met / missed in words, with the target; never colour alone."""
        if level.share is None:
            return self.m.t("verdict.not_judged")
        if level.target is None:
            return self.m.t("verdict.no_target")
        key = "verdict.met" if level.met else "verdict.missed"
        return self.m.t(key, target=self.m.target(level.target))

    def figure(self, level: LevelFigure) -> str:
        """The share with its symbol: "✘ 54,2 %"."""
        if level.share is None:
            return DASH
        symbol = self.symbol(level)
        return f"{symbol} {self.m.pct(level.share)}" if symbol else self.m.pct(level.share)

    def counts(self, level: LevelFigure) -> str:
        return self.m.t(
            "level.counts",
            judged=self.m.number(level.matured),
            pending=self.m.number(level.pending),
        )

    def interval(self, level: LevelFigure) -> str:
        """The Wilson 95 % interval, shown when the sample is small ("" otherwise)."""
        if not level.small or level.ci_low is None or level.ci_high is None:
            return ""
        return self.m.t(
            "level.interval",
            confidence=self.m.pct(0.95, 0),
            low=self.m.pct(level.ci_low, 0),
            high=self.m.pct(level.ci_high, 0),
        )

    def change(self, headline: Headline) -> str:
        points = headline.change_points
        if points is None:
            return self.m.t("change.none")
        previous = self.m.t(f"change.previous.{self.ctx.period}")
        rounded = round(points, 1)
        arrow = "▲" if rounded > 0 else ("▼" if rounded < 0 else "▬")
        return self.m.t(
            "change.points", arrow=arrow, points=self.m.points(points), previous=previous
        )

    # --- trend bars ---

    def bar(self, level: LevelFigure) -> list[tuple[int, str]]:
        """Cells of one vertical bar, top to bottom, as (pixel height, colour): the empty part,
        the share, and a dark mark at the target's height."""
        h = BAR_HEIGHT
        fill = COLOURS[self.status(level)] if level.share is not None else COLOURS["empty"]
        filled = round((level.share or 0.0) * h)
        if level.target is None or level.share is None:
            cells = [(h - filled, COLOURS["empty"]), (filled, fill)]
        else:
            mark_top = max(0, min(h - MARK_HEIGHT, round((1 - level.target) * h)))
            fill_top = h - filled
            cells = []
            for top, bottom, colour in (
                (0, mark_top, None),
                (mark_top, mark_top + MARK_HEIGHT, COLOURS["mark"]),
                (mark_top + MARK_HEIGHT, h, None),
            ):
                if colour is not None:
                    cells.append((bottom - top, colour))
                    continue
                # Split the stretch at the top of the fill.
                split = min(max(fill_top, top), bottom)
                cells.append((split - top, COLOURS["empty"]))
                cells.append((bottom - split, fill))
        return [(height, colour) for height, colour in cells if height > 0]

    def bar_label(self, level: LevelFigure) -> str:
        """Above a bar: the symbol and the share in percent without its sign ("✘69,4"); the
        legend says the bars are percentages. Narrow enough for ten bars on a phone."""
        if level.share is None:
            return DASH
        return f"{self.symbol(level)}{self.m.decimal(level.share * 100)}"

    def bar_text(self, level: LevelFigure, width: int = 20) -> str:
        """A text bar: █ for the share, ░ for the rest, │ at the target."""
        if level.share is None:
            return "·" * width
        filled = round(level.share * width)
        chars = ["█"] * filled + ["░"] * (width - filled)
        if level.target is not None:
            at = min(width - 1, max(0, round(level.target * width) - 1))
            chars[at] = "│"
        return "".join(chars)

    def trend_line(self, point: TrendPoint) -> str:
        label = self.point_label(point)
        share = self.m.pct(point.level.share)
        line = f"  {label:>6}  {self.bar_text(point.level)}  {share:>7} {self.symbol(point.level)}"
        return line.rstrip()

    # --- segments, complaints, alerts, sources ---

    def field_name(self, name: str) -> str:
        return self.m.t(f"field.{name}")

    def value(self, value: str) -> str:
        return value if value else self.m.t("segment.empty")

    def segment(self, row: BreakdownRow) -> str:
        return " · ".join(self.value(v) for _, v in row.segment)

    def scope(self) -> str:
        return ", ".join(f"{self.field_name(k)}: {self.value(v)}" for k, v in self.ctx.scope)

    def by(self) -> str:
        return ", ".join(self.field_name(f) for f in self.ctx.by)

    def subject_of(self, item: ComplaintItem) -> str:
        text = inert(item.subject) or self.m.t("complaint.no_subject")
        if len(text) > SUBJECT_CHARS:
            text = text[: SUBJECT_CHARS - 1].rstrip() + "…"
        return text

    @staticmethod
    def link(url: str) -> str | None:
        """Only web links become links."""
        url = url.strip()
        return url if re.match(r"https?://[^\s<>\"']+$", url, flags=re.I) else None

    def age(self, item: ComplaintItem) -> str:
        return self.m.plural("unit.days", item.age_days)

    def due(self, item: ComplaintItem) -> str:
        if item.deadline is None or item.threshold is None:
            return DASH
        hours = max(0, int((item.deadline - self.ctx.as_of).total_seconds() // 3600))
        return self.m.t("due.when", hours=self.m.number(hours), short=self.short(item.threshold))

    def due_at(self, item: ComplaintItem) -> str:
        if item.deadline is None:
            return ""
        return self.m.t("due.at", moment=self.m.moment(item.deadline, self.zone))

    def tail(self) -> str:
        return self.m.pct(0.1, 0)

    def alert_title(self, alert: DigestAlert) -> str:
        if alert.rule in ALERT_RULES:
            return self.m.t(f"alerts.rule.{alert.rule}")
        return alert.title

    def alert_segment(self, alert: DigestAlert) -> str:
        if not alert.segment:
            return self.m.t("alerts.everything")
        return ", ".join(
            f"{self.field_name(k) if k in SEGMENT_FIELDS else k}: {self.value(v)}"
            for k, v in alert.segment.items()
        )

    def alert_level(self, alert: DigestAlert) -> str:
        if alert.threshold is None:
            return ""
        share = self.m.pct(alert.share)
        if alert.target is None:
            return self.m.t("alerts.level", short=self.short(alert.threshold), share=share)
        return self.m.t(
            "alerts.level_target",
            short=self.short(alert.threshold),
            share=share,
            target=self.m.target(alert.target),
        )

    def moment(self, instant: datetime) -> str:
        return self.m.moment(instant, self.zone)

    def more(self, count: int) -> str:
        return self.m.plural("list.more", count)

    def stale_hours(self) -> int:
        return int(self.ctx.stale_after.total_seconds() // 3600)

    def source_state(self, name: str, last: datetime | None, imported: bool, stale: bool) -> str:
        if last is None:
            key = "sources.never_imported" if imported else "sources.never"
            return self.m.t(key)
        key = "sources.imported" if imported else "sources.synced"
        return self.m.t(key, moment=self.moment(last))


def subject(view: View) -> str:
    ctx, m = view.ctx, view.m
    prefix = m.t("subject.late") + " " if ctx.late else ""
    if ctx.subject is not None:
        return inert(prefix + ctx.subject)
    where = f" ({', '.join(view.value(v) for _, v in ctx.scope)})" if ctx.scope else ""
    judged = [h.level for h in ctx.headline if h.level.share is not None]
    if not judged:
        figure = m.t("subject.nothing_judged")
    else:
        # The worst shortfall against a target leads; else the first judged threshold.
        missed = [lv for lv in judged if lv.shortfall is not None and lv.shortfall > 0]
        lead = max(missed, key=lambda lv: lv.shortfall or 0.0) if missed else judged[0]
        figure = m.t(
            "subject.figure",
            symbol=view.symbol(lead),
            share=m.pct(lead.share),
            within=view.within(lead.threshold),
        ).strip()
        if lead.target is not None:
            figure = m.t("subject.with_target", figure=figure, target=m.target(lead.target))
    return inert(
        prefix + m.t("subject.default", where=where, period=view.period_title(), figure=figure)
    )


#: The HTML part must stay under Gmail's clipping point (about 102 KB); this leaves headroom.
HTML_BUDGET = 96 * 1024
_LISTS = ("breakdown", "oldest", "due_soon", "alerts", "freshness")


def _cut(ctx: DigestContext, caps: dict[str, int]) -> DigestContext:
    """The context with each list cut to its cap, what is cut counted in its "N more"."""
    changes: dict[str, Any] = {}
    for name, cap in caps.items():
        items = getattr(ctx, name)
        if len(items) > cap:
            changes[name] = items[:cap]
            changes[f"{name}_more"] = getattr(ctx, f"{name}_more") + len(items) - cap
    return replace(ctx, **changes) if changes else ctx


def capped(ctx: DigestContext) -> DigestContext:
    """Every list within its cap (build_context keeps to them; a context built by hand may
    not)."""
    return _cut(
        ctx,
        {
            "breakdown": BREAKDOWN_ROWS,
            "oldest": LIST_ROWS,
            "due_soon": LIST_ROWS,
            "alerts": ALERT_ROWS,
            "freshness": SOURCE_ROWS,
        },
    )


def _shorter(ctx: DigestContext) -> Iterator[DigestContext]:
    """Ever shorter versions of a digest whose HTML is over budget (many thresholds, long
    names): the lists shrink first, then the trend keeps its last 8 periods."""
    for cap in (8, 5, 3, 1):
        yield _cut(ctx, dict.fromkeys(_LISTS, cap))
    trends = tuple(replace(t, points=t.points[-8:]) for t in ctx.trends)
    yield replace(_cut(ctx, dict.fromkeys(_LISTS, 0)), trends=trends)


def _html(view: View, title: str) -> str:
    values = {"ctx": view.ctx, "v": view, "m": view.m, "subject": title}
    return str(_inliner().inline(environment().get_template(HTML_TEMPLATE).render(values)))


def render(context: DigestContext) -> RenderedDigest:
    """The digest as subject, plain text and HTML (CSS inlined). Every list is capped; should
    the HTML still exceed HTML_BUDGET, the lists are shortened until it fits (the text part
    shows the same)."""
    view = View(capped(context))
    title = subject(view)
    html = _html(view, title)
    for shorter in _shorter(view.ctx):
        if len(html.encode("utf-8")) <= HTML_BUDGET:
            break
        view = View(shorter)
        html = _html(view, title)
    values = {"ctx": view.ctx, "v": view, "m": view.m, "subject": title}
    text = environment().get_template(TEXT_TEMPLATE).render(values)
    return RenderedDigest(subject=title, text=text, html=html, images={})

"""The digest's content: periods, deadlines due soon, ordering (pure), and build_context over a
small hand-made store on both engines, every figure worked out by hand below."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from html import unescape
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, update

from helpers import make_config
from slamon.digest import DigestAlert, build_context, render
from slamon.digest.context import (
    BreakdownRow,
    LevelFigure,
    due_ranges,
    next_deadline,
    period_bounds,
    shift_period,
    worst_first,
)
from slamon.domain import ComplaintRecord, DayMode
from slamon.instants import to_epoch
from slamon.servicelevel.deadlines import WorkCalendar
from slamon.store.complaints import apply_batch, ensure_source
from slamon.store.engine import write_transaction
from slamon.store.models import sources

UTC_ZONE = ZoneInfo("UTC")
MSK = ZoneInfo("Europe/Moscow")


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- periods ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "as_of", "expected"),
    [
        ("day", "2026-03-23T08:00:00", (date(2026, 3, 22), date(2026, 3, 22))),
        ("week", "2026-03-23T08:00:00", (date(2026, 3, 16), date(2026, 3, 22))),
        ("week", "2026-03-22T23:59:59", (date(2026, 3, 9), date(2026, 3, 15))),
        ("month", "2026-03-01T00:00:00", (date(2026, 2, 1), date(2026, 2, 28))),
        ("month", "2026-01-15T12:00:00", (date(2025, 12, 1), date(2025, 12, 31))),
    ],
)
def test_previous_complete_period(kind: str, as_of: str, expected: tuple[date, date]) -> None:
    assert period_bounds(kind, t(as_of), UTC_ZONE) == expected


def test_the_period_is_read_in_the_digest_timezone() -> None:
    # Sunday 22:00 UTC is already Monday 01:00 in Moscow: last week there is complete.
    assert period_bounds("week", t("2026-03-22T22:00:00"), MSK) == (
        date(2026, 3, 16),
        date(2026, 3, 22),
    )
    assert period_bounds("week", t("2026-03-22T22:00:00"), UTC_ZONE)[0] == date(2026, 3, 9)


def test_shift_period() -> None:
    assert shift_period("month", date(2026, 2, 1), 2) == (date(2025, 12, 1), date(2025, 12, 31))
    assert shift_period("month", date(2024, 3, 1), 1) == (date(2024, 2, 1), date(2024, 2, 29))
    assert shift_period("week", date(2026, 3, 16), 9) == (date(2026, 1, 12), date(2026, 1, 18))
    assert shift_period("day", date(2026, 3, 1), 1) == (date(2026, 2, 28), date(2026, 2, 28))


# --- deadlines within the next day -----------------------------------------------------------


def test_due_ranges_calendar() -> None:
    # As of Mon 08:00, the next 24 h hold one midnight (Tue 00:00): the 3-day deadline of
    # complaints created on Fri 03-20, the 5-day one of those created on Wed 03-18.
    ranges = due_ranges(t("2026-03-23T08:00:00"), [3, 5], DayMode.CALENDAR, UTC_ZONE, None)
    assert ranges == [
        [(to_epoch(t("2026-03-20T00:00:00")), to_epoch(t("2026-03-21T00:00:00")))],
        [(to_epoch(t("2026-03-18T00:00:00")), to_epoch(t("2026-03-19T00:00:00")))],
    ]


def test_due_ranges_working_days_gather_the_weekend() -> None:
    # As of Wed 08:00 the next midnight ends Wed: the 3rd working day after Fri, Sat and Sun.
    ranges = due_ranges(t("2026-03-25T08:00:00"), [3], DayMode.WORKING, UTC_ZONE, WorkCalendar())
    assert ranges == [[(to_epoch(t("2026-03-20T00:00:00")), to_epoch(t("2026-03-23T00:00:00")))]]


def test_due_ranges_elapsed_are_exact() -> None:
    as_of = t("2026-03-23T08:00:00")
    [[(lo, hi)]] = due_ranges(as_of, [3], DayMode.ELAPSED, UTC_ZONE, None)
    # created_at + 3 x 24 h in (as_of, as_of + 24 h]
    assert (lo, hi) == (to_epoch(t("2026-03-20T08:00:01")), to_epoch(t("2026-03-21T08:00:01")))


def test_next_deadline_is_the_first_still_ahead() -> None:
    created, as_of = t("2026-03-18T12:00:00"), t("2026-03-23T08:00:00")
    assert next_deadline(created, as_of, [3, 5], DayMode.CALENDAR, UTC_ZONE, None) == (
        5,
        t("2026-03-24T00:00:00"),
    )
    assert next_deadline(created, as_of, [3], DayMode.CALENDAR, UTC_ZONE, None) is None


def _row(name: str, *levels: tuple[float | None, float | None, int]) -> BreakdownRow:
    figures = tuple(
        LevelFigure(n, share, target, None, matured, 0, None, None)
        for n, (share, target, matured) in zip((3, 5), levels, strict=False)
    )
    return BreakdownRow((("queue", name),), 10, 0, figures)


def test_worst_first_by_the_largest_shortfall() -> None:
    rows = [
        _row("fine", (0.9, 0.7, 50), (0.95, 0.8, 50)),
        _row("nothing-judged", (None, 0.7, 0), (None, 0.8, 0)),
        _row("slow-at-5", (0.72, 0.7, 50), (0.5, 0.8, 50)),  # short by 30 points at 5 days
        _row("slow-at-3", (0.5, 0.7, 50), (0.79, 0.8, 50)),  # short by 20 points at 3 days
        _row("no-target", (0.1, None, 50), (0.1, None, 50)),
        _row("small-tie", (0.5, 0.7, 5), (0.79, 0.8, 5)),
    ]
    order = [dict(r.segment)["queue"] for r in worst_first(rows)]
    # Without a shortfall to compare: the segment with more judged complaints first.
    assert order == ["slow-at-5", "slow-at-3", "small-tie", "fine", "no-target", "nothing-judged"]


# --- build_context over a store ----------------------------------------------------------------

AS_OF = t("2026-03-23T08:00:00")  # a Monday: the digest covers the week 03-16 .. 03-22


def rec(ext: str, created: str, closed: str | None = None, **fields: Any) -> ComplaintRecord:
    return ComplaintRecord(
        external_id=ext,
        created_at=t(created),
        closed_at=t(closed) if closed else None,
        subject=f"Complaint {ext}",
        url=f"https://desk.example/{ext}",
        **fields,
    )


#: The current week (03-16 .. 03-22), as of Monday 03-23 08:00 UTC, thresholds 3 and 5:
#:   a billing  created 03-16, closed next day        3: hit   5: hit
#:   b billing  created 03-16, closed after 5 days    3: miss  5: hit (deadline 03-22 00:00)
#:   c delivery created 03-17, open                   3: miss  5: miss (deadline 03-23 00:00)
#:   i delivery created 03-18, open                   3: miss  5: pending (due 03-24 00:00)
#:   d delivery created 03-20, open                   3: pending (due 03-24 00:00)
#:   e billing  created 03-21, closed in an hour      3: pending  5: pending
#:   x billing  spam: excluded
#: 3 days: 1 / 4 = 25 %, 2 pending; 5 days: 2 / 3 = 66.7 %, 3 pending.
#: The week before: f and g closed next day: 100 % for both.
#: h returns, created 2026-01-05 and still open: the oldest, outside the trend window.
CURRENT = [
    rec("a", "2026-03-16T10:00:00", "2026-03-17T10:00:00", queue="billing", channel="phone"),
    rec("b", "2026-03-16T12:00:00", "2026-03-21T12:00:00", queue="billing", channel="email"),
    rec("c", "2026-03-17T09:00:00", queue="delivery", channel="phone"),
    rec("i", "2026-03-18T12:00:00", queue="delivery", channel="chat"),
    rec("d", "2026-03-20T09:00:00", queue="delivery", channel="phone"),
    rec("e", "2026-03-21T09:00:00", "2026-03-21T10:00:00", queue="billing", channel="phone"),
    rec("x", "2026-03-18T09:00:00", queue="billing", excluded_reason="spam"),
]
BEFORE = [
    rec("f", "2026-03-10T10:00:00", "2026-03-11T10:00:00", queue="billing", channel="phone"),
    rec("g", "2026-03-11T10:00:00", "2026-03-12T10:00:00", queue="delivery", channel="chat"),
    rec("h", "2026-01-05T10:00:00", queue="returns", channel="phone"),
]


def store(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        ensure_source(conn, "crm", "redmine", t("2026-01-01T00:00:00"))
        ensure_source(conn, "jira", "jira", t("2026-01-01T00:00:00"))
        apply_batch(conn, "crm", [*CURRENT, *BEFORE], t("2026-03-23T07:30:00"))
        conn.execute(
            update(sources)
            .where(sources.c.name == "crm")
            .values(last_success_at=t("2026-03-23T07:00:00"))
        )
        conn.execute(
            update(sources)
            .where(sources.c.name == "jira")
            .values(last_success_at=t("2026-03-22T00:00:00"), last_error="HTTP 401")
        )
        ensure_source(conn, "files", "import", t("2026-01-01T00:00:00"))
        apply_batch(
            conn,
            "files",
            [rec("z", "2025-06-01T00:00:00", "2025-06-02T00:00:00")],
            t("2026-03-23T06:00:00"),
        )


def config(url: str, **digest: Any) -> Any:
    return make_config(
        url,
        service_level={"thresholds": [3, 5], "targets": {"3": 0.7, "5": 0.8}},
        digests={
            "weekly": {
                "schedule": "0 8 * * mon",
                "recipients": ["head@example.com"],
                "trend_periods": 8,
                "list_limit": 2,
                **digest,
            }
        },
    )


def test_build_context_figures(engine: Engine, db_url: str) -> None:
    store(engine)
    alert = DigestAlert("3-day level low", {"queue": "delivery"}, 3, 0.0, 0.7, AS_OF)
    ctx = build_context(engine, config(db_url), "weekly", AS_OF, alerts=[alert], late=True)

    assert (ctx.period_start, ctx.period_end) == (date(2026, 3, 16), date(2026, 3, 22))
    assert (ctx.previous_start, ctx.previous_end) == (date(2026, 3, 9), date(2026, 3, 15))
    assert (ctx.complaints, ctx.excluded, ctx.late, ctx.alerts) == (6, 1, True, (alert,))

    three, five = ctx.headline
    assert (three.level.matured, three.level.pending, three.level.share) == (4, 2, 0.25)
    assert (three.level.met, three.level.target, three.previous.share) == (False, 0.7, 1.0)
    assert three.change_points == pytest.approx(-75.0)
    assert (five.level.matured, five.level.pending) == (3, 3)
    assert five.level.share == pytest.approx(2 / 3)
    assert five.change_points == pytest.approx((2 / 3 - 1) * 100)

    # The trend: 8 weeks, the last two as above, the six before empty.
    [trend3, _] = ctx.trends
    assert [p.label for p in trend3.points][-2:] == ["2026-W11", "2026-W12"]
    assert trend3.points[0].start == date(2026, 1, 26)
    assert [p.level.share for p in trend3.points] == [None] * 6 + [1.0, 0.25]

    # Breakdown by queue: delivery (0 of 2 in time) before billing (1 of 2).
    assert [dict(r.segment) for r in ctx.breakdown] == [{"queue": "delivery"}, {"queue": "billing"}]
    delivery = ctx.breakdown[0]
    assert (delivery.complaints, delivery.open, delivery.levels[0].share) == (3, 3, 0.0)
    assert delivery.levels[0].small and delivery.levels[0].ci_high is not None
    assert ctx.breakdown_more == 0

    # Mean vs level: over the 8 weeks (h is older): 3 days hit by a, f, g of a b c i f g.
    mv = ctx.mean_vs_level
    assert (mv.since, mv.until, mv.complaints) == (date(2026, 1, 26), date(2026, 3, 22), 8)
    assert (mv.level.threshold, mv.level.share) == (3, 0.5)
    closed_days = [1, 5, 1 / 24, 1, 1]  # a, b, e, f, g
    assert mv.mean_days == pytest.approx(sum(closed_days) / 5)

    # Open complaints, oldest first, capped at list_limit = 2: h, c; then i and d.
    assert [c.external_id for c in ctx.oldest] == ["h", "c"]
    assert ctx.oldest_more == 2
    assert ctx.oldest[0].age_days == 76 and ctx.oldest[0].queue == "returns"
    assert ctx.oldest[0].url == "https://desk.example/h"
    # Due within 24 h: d (3-day deadline) before i (5-day deadline), both at 03-24 00:00.
    assert [(c.external_id, c.threshold) for c in ctx.due_soon] == [("d", 3), ("i", 5)]
    assert {c.deadline for c in ctx.due_soon} == {t("2026-03-24T00:00:00")}
    assert ctx.due_soon_more == 0

    # Freshness: stale first; the imported source counts its last import.
    fresh = {f.name: f for f in ctx.freshness}
    assert [f.name for f in ctx.freshness] == ["jira", "crm", "files"]
    assert fresh["jira"].stale and fresh["jira"].last_error == "HTTP 401"
    assert not fresh["crm"].stale and fresh["crm"].last_success_at == t("2026-03-23T07:00:00")
    assert fresh["files"].imported and not fresh["files"].stale
    assert fresh["files"].last_success_at == t("2026-03-23T06:00:00")

    rendered = render(ctx)
    assert rendered.subject == (
        "[late] Service level, week of Mar 16\u2009–\u200922, 2026:"
        " ✘ 25.0% closed within 3 days, target 70%"
    )
    for text in (rendered.text, unescape(rendered.html)):
        assert "−75.0 pts vs the week before" in text
        assert "66.7%" in text and "Complaint h" in text and "3-day level low" in text


def test_scope_shows_one_queue_only(engine: Engine, db_url: str) -> None:
    store(engine)
    cfg = config(db_url, scope={"queue": "billing"}, by=["channel"], list_limit=5)
    ctx = build_context(engine, cfg, "weekly", AS_OF)
    assert ctx.scope == (("queue", "billing"),)
    assert ctx.complaints == 3  # a, b, e (x is excluded)
    assert ctx.headline[0].level.share == 0.5
    assert [dict(r.segment)["channel"] for r in ctx.breakdown] == ["email", "phone"]
    assert ctx.oldest == () and ctx.due_soon == ()
    assert {f.name for f in ctx.freshness} == {"crm", "jira", "files"}


def test_scope_by_source_limits_freshness(engine: Engine, db_url: str) -> None:
    store(engine)
    ctx = build_context(engine, config(db_url, scope={"source": "crm"}), "weekly", AS_OF)
    assert [f.name for f in ctx.freshness] == ["crm"]


def test_stale_after_is_a_parameter(engine: Engine, db_url: str) -> None:
    store(engine)
    ctx = build_context(engine, config(db_url), "weekly", AS_OF, stale_after=timedelta(days=2))
    assert not any(f.stale for f in ctx.freshness)


def test_an_empty_store_still_makes_a_digest(engine: Engine, db_url: str) -> None:
    ctx = build_context(engine, config(db_url, period="month"), "weekly", AS_OF)
    assert ctx.complaints == 0 and ctx.breakdown == () and ctx.freshness == ()
    assert all(h.level.share is None for h in ctx.headline)
    for locale in ("en", "ru"):
        rendered = render(ctx.__class__(**{**_fields(ctx), "locale": locale}))
        assert ("nothing judged yet" if locale == "en" else "оценивать пока нечего") in (
            rendered.subject
        )


def _fields(ctx: Any) -> dict[str, Any]:
    return {name: getattr(ctx, name) for name in ctx.__dataclass_fields__}

"""The maintained roll-up against raw rows and the brute-force oracle, on SQLite and PostgreSQL.

Random complaints go through apply_batch in random sequences of batches (closed, reopened,
re-closed later, moved between queues and channels, excluded, deleted at the source, new ones,
an id repeated within a batch), in a DST time zone or not, under either closure rule; then:

- the maintained roll-up equals a rebuild from the raw rows, row for row (and the complaints'
  rl_day, rl_week and rl_dur equal what a rebuild writes);
- the report answered from the roll-up equals, field by field, the report from raw rows and
  the oracle of SERVICE-LEVEL.md (tests/oracle.py), in calendar and working modes with holidays
  and extra working days, for as_of at random instants, at a local midnight and one second
  before one; so does the Kaplan-Meier curve.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from strategies import DAY, instants, local_midnight

import oracle
from helpers import make_config
from slamon import report
from slamon.domain import Closure, ComplaintRecord
from slamon.store import rollup
from slamon.store.complaints import apply_batch, ensure_source
from slamon.store.engine import write_transaction
from slamon.store.models import complaints, sources

EXAMPLES = int(os.environ.get("SLAMON_ROLLUP_EXAMPLES", "30"))
SOURCE = "crm"
NOW = datetime(2030, 1, 1, tzinfo=UTC)

# (zone, base instant, holiday country): starts a few days before DST changes
# (US 2026-03-08, US 2025-11-02, EU 2026-03-29) and a zone without DST.
SETTINGS = (
    ("America/New_York", datetime(2026, 3, 4, 15, tzinfo=UTC), "US"),
    ("America/New_York", datetime(2025, 10, 29, 15, tzinfo=UTC), "US"),
    ("Europe/Berlin", datetime(2026, 3, 24, 9, tzinfo=UTC), "DE"),
    ("Europe/Moscow", datetime(2026, 4, 28, 9, tzinfo=UTC), "RU"),
)
QUEUES = ("billing", "delivery", "")
CHANNELS = ("phone", "email")


@st.composite
def versions(draw: st.DrawFn, ext_id: str, created: datetime, tz: ZoneInfo) -> ComplaintRecord:
    """One version of a complaint as a source would send it."""
    shape = draw(
        st.sampled_from(["open", "closed", "closed", "closed", "before", "spam", "deleted"])
    )
    closed = first = None
    if shape in ("closed", "spam", "deleted") and draw(st.booleans()):
        closed = draw(instants(created, tz, 12))
        if draw(st.booleans()):  # the source gives its own first closure, earlier
            first = created + (closed - created) * draw(st.floats(0, 1))
            first = first.replace(microsecond=0)
    elif shape == "before":
        closed = created - timedelta(seconds=draw(st.integers(1, 2 * DAY)))
    return ComplaintRecord(
        external_id=ext_id,
        created_at=created,
        closed_at=closed,
        first_closed_at=first,
        queue=draw(st.sampled_from(QUEUES)),
        channel=draw(st.sampled_from(CHANNELS)),
        priority=draw(st.sampled_from(["high", "normal"])),
        excluded_reason=shape if shape in ("spam", "deleted") else None,
    )


@st.composite
def histories(draw: st.DrawFn) -> dict[str, Any]:
    zone, base, country = draw(st.sampled_from(SETTINGS))
    tz = ZoneInfo(zone)
    n = draw(st.integers(1, 25))
    created = {str(i): draw(instants(base, tz, 20)) for i in range(n)}
    batches: list[list[ComplaintRecord]] = [[draw(versions(i, created[i], tz)) for i in created]]
    for _ in range(draw(st.integers(1, 4))):
        ids = draw(st.lists(st.sampled_from(sorted(created)), max_size=n + 3))
        new = [str(n + k) for k in range(draw(st.integers(0, 3)))]
        for i in new:
            created[i] = draw(instants(base, tz, 20))
        batches.append([draw(versions(i, created[i], tz)) for i in [*ids, *new]])
    start = base.astimezone(tz).date()
    extra = st.lists(st.integers(0, 40).map(lambda k: start + timedelta(days=k)), max_size=3)
    holidays = frozenset(draw(extra))
    # Weekend days worked: the extra working days that change a deadline.
    saturdays = [
        start + timedelta(days=k) for k in range(40) if (start + timedelta(k)).weekday() == 5
    ]
    working = frozenset(draw(st.lists(st.sampled_from(saturdays), max_size=2))) - holidays
    return {
        "tz": zone,
        "base": base,
        "batches": batches,
        "one_transaction": draw(st.booleans()),
        "closure": draw(st.sampled_from(["final", "first"])),
        "dimensions": draw(
            st.sampled_from([("queue",), ("queue", "channel", "priority"), ("queue", "source")])
        ),
        "country": draw(st.sampled_from([None, country])),
        "extra_holidays": holidays,
        "extra_working_days": working,
        "thresholds": tuple(
            sorted(draw(st.sets(st.sampled_from([0, 1, 2, 3, 5, 10]), min_size=1, max_size=3)))
        ),
    }


@st.composite
def questions(draw: st.DrawFn, h: dict[str, Any]) -> dict[str, Any]:
    tz = ZoneInfo(h["tz"])
    start = h["base"].astimezone(tz).date()
    since = start - timedelta(days=draw(st.integers(0, 2)))
    return {
        "as_of": draw(instants(h["base"], tz, 40)),
        "since": since,
        "until": since + timedelta(days=draw(st.integers(0, 40))),
        "period": draw(st.sampled_from(["none", "day", "week", "month"])),
        "mode": draw(st.sampled_from(["calendar", "working"])),
        "by_queue": draw(st.booleans()),
        "queue": draw(st.sampled_from([None, None, "billing", ""])),
    }


def basis(h: dict[str, Any]) -> rollup.Basis:
    return rollup.Basis(h["tz"], Closure(h["closure"]), h["dimensions"])


def reset(engine: Engine, h: dict[str, Any]) -> None:
    """An empty store whose (empty) roll-up is built under the history's settings."""
    with write_transaction(engine) as conn:
        conn.execute(complaints.delete())
        conn.execute(sources.delete())
        rollup.rebuild(conn, basis(h), NOW)


def store(engine: Engine, h: dict[str, Any]) -> None:
    reset(engine, h)
    if h["one_transaction"]:  # as an import: every batch in one transaction
        with write_transaction(engine) as conn:
            ensure_source(conn, SOURCE, "import", NOW)
            for batch in h["batches"]:
                apply_batch(conn, SOURCE, batch, NOW)
        return
    for batch in h["batches"]:  # as a sync: a transaction per page
        with write_transaction(engine) as conn:
            ensure_source(conn, SOURCE, "import", NOW)
            apply_batch(conn, SOURCE, batch, NOW)


def rl_columns(conn: Any) -> list[tuple[Any, ...]]:
    c = complaints.c
    query = select(c.external_id, c.rl_day, c.rl_week, c.rl_dur)
    return [tuple(r) for r in conn.execute(query.order_by(complaints.c.external_id))]


def assert_equals_rebuild(engine: Engine, b: rollup.Basis) -> None:
    """The maintained roll-up and the complaints' rl columns equal what a rebuild writes (the
    rebuild runs in a transaction that is rolled back)."""
    with engine.connect() as conn, conn.begin() as tx:
        kept, columns = rollup.contents(conn), rl_columns(conn)
        assert kept[0], "the roll-up holds the complaints"
        rollup.rebuild(conn, b, NOW, rewrite_columns=True)
        assert rollup.contents(conn) == kept
        assert rl_columns(conn) == columns
        tx.rollback()


def config_for(h: dict[str, Any], q: dict[str, Any], url: str) -> Any:
    return make_config(
        url,
        service_level={
            "thresholds": list(h["thresholds"]),
            "day_mode": q["mode"],
            "timezone": h["tz"],
            "closure": h["closure"],
        },
        calendar={
            "country": h["country"],
            "extra_holidays": sorted(h["extra_holidays"]),
            "extra_working_days": sorted(h["extra_working_days"]),
        },
        rollup={"dimensions": list(h["dimensions"])},
    )


def stored_cases(engine: Engine) -> list[oracle.Case]:
    c = complaints.c
    query = select(c.created_at, c.closed_at, c.first_closed_at, c.queue, c.excluded_reason)
    with engine.connect() as conn:
        return [oracle.Case(*row) for row in conn.execute(query)]


def assert_close(got: Any, want: Any, where: str) -> None:
    if isinstance(want, dict):
        assert set(got) == set(want), where
        for key, value in want.items():
            assert_close(got[key], value, f"{where}.{key}")
    elif isinstance(want, float) and isinstance(got, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), where
    else:
        assert got == want, where


def ask(
    engine: Engine,
    h: dict[str, Any],
    q: dict[str, Any],
    cases: list[oracle.Case],
    *,
    curve: bool = True,
) -> None:
    cfg = config_for(h, q, str(engine.url))
    filters = {} if q["queue"] is None else {"queue": q["queue"]}
    request = report.make_request(
        as_of=q["as_of"],
        tz=ZoneInfo(h["tz"]),
        since=q["since"],
        until=q["until"],
        period=q["period"],
        by=["queue"] if q["by_queue"] else [],
        filters=filters,
    )
    plans: list[tuple[str, bool]] = []
    got = report._run(engine, cfg, request, on_plan=lambda *p: plans.append(p)).as_json()
    assert plans == [("rollup", True)], "the roll-up answers, median/p90 through the indexes"
    raw = report._run(engine, cfg, request, use_rollup=False).as_json()
    assert got == raw, "the roll-up and raw rows give the same report, field by field"
    rules = oracle.Rules(
        tz=h["tz"],
        mode=q["mode"],
        closure=h["closure"],
        thresholds=h["thresholds"],
        targets={n: t for n in h["thresholds"] if (t := cfg.settings.service_level.target(n))},
        country=h["country"],
        extra_holidays=h["extra_holidays"],
        extra_working_days=h["extra_working_days"],
    )
    want = oracle.report(
        cases,
        rules,
        as_of=q["as_of"],
        since=q["since"],
        until=q["until"],
        period=q["period"],
        by_queue=q["by_queue"],
        queue=q["queue"],
    )
    total = want.pop(("total", None))
    rows = {(r["period"], r["segment"].get("queue")): r for r in got["rows"]}
    assert set(rows) == set(want), "groups"
    for key, expected in want.items():
        row = {k: v for k, v in rows[key].items() if k not in ("period", "segment")}
        assert_close(row, expected, f"row {key}")
    assert_close(got["total"], total, "total")
    if curve:  # the curve's counts (31 thresholds, carried closures) on both paths
        points = report._run_curve(engine, cfg, request).as_json()
        assert points == report._run_curve(engine, cfg, request, use_rollup=False).as_json()


PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY
@given(data=st.data(), h=histories())
def test_rollup_equals_rebuild_raw_rows_and_the_oracle(
    engine: Engine, data: st.DataObject, h: dict[str, Any]
) -> None:
    store(engine, h)
    assert_equals_rebuild(engine, basis(h))
    cases = stored_cases(engine)
    for i in range(3):
        ask(engine, h, data.draw(questions(h)), cases, curve=i == 0)


def test_midnight_and_one_second_before_it_with_closures_after_as_of(engine: Engine) -> None:
    """A fixed case through both raw corrections: closures on as_of's local day after as_of,
    and complaints created on that day after it, at a New York midnight after the DST change."""
    tz = ZoneInfo("America/New_York")
    h: dict[str, Any] = {
        "tz": "America/New_York",
        "base": datetime(2026, 3, 4, 15, tzinfo=UTC),
        "closure": "final",
        "dimensions": ("queue",),
        "country": "US",
        "extra_holidays": frozenset(),
        "extra_working_days": frozenset({date(2026, 3, 7)}),
        "thresholds": (0, 1, 3),
        "one_transaction": False,
    }
    midnight_9th = local_midnight(h["base"], tz, 5)  # 2026-03-09 00:00 EDT
    recs = [
        ComplaintRecord("a", midnight_9th - timedelta(days=2), midnight_9th + timedelta(hours=5)),
        ComplaintRecord("b", midnight_9th - timedelta(seconds=1), midnight_9th),
        ComplaintRecord("c", midnight_9th + timedelta(hours=1), midnight_9th + timedelta(hours=2)),
        ComplaintRecord("d", midnight_9th + timedelta(hours=3), None, queue="delivery"),
        ComplaintRecord("e", midnight_9th - timedelta(days=4), midnight_9th - timedelta(days=1)),
    ]
    h["batches"] = [recs, [replace(recs[4], closed_at=None)]]  # e reopened
    store(engine, h)
    assert_equals_rebuild(engine, basis(h))
    cases = stored_cases(engine)
    for as_of in (
        midnight_9th - timedelta(seconds=1),
        midnight_9th,
        midnight_9th + timedelta(hours=1, minutes=30),
        midnight_9th + timedelta(days=3),
    ):
        for mode in ("calendar", "working"):
            for period, by_queue in (("none", False), ("day", True)):
                q = {
                    "as_of": as_of,
                    "since": date(2026, 3, 1),
                    "until": date(2026, 3, 12),
                    "period": period,
                    "mode": mode,
                    "by_queue": by_queue,
                    "queue": None,
                }
                ask(engine, h, q, cases)

"""slamon's report against the brute-force oracle of SERVICE-LEVEL.md (SQLite and PostgreSQL),
on random complaints with traps at local midnights, DST changes, holidays and bad rows."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete
from strategies import DAY, instants, local_midnight

import oracle
from helpers import make_config
from slamon import report
from slamon.domain import ComplaintRecord
from slamon.store.complaints import apply_batch, ensure_source
from slamon.store.engine import write_transaction
from slamon.store.models import complaints

ZONES = ("Europe/Sofia", "America/New_York", "Europe/Moscow")
# Starts near DST changes (US 2026-03-08, EU 2026-03-29, EU 2025-10-26, US 2025-11-02).
BASES = (
    datetime(2026, 3, 4, tzinfo=UTC),
    datetime(2026, 3, 24, tzinfo=UTC),
    datetime(2025, 10, 22, tzinfo=UTC),
    datetime(2025, 10, 29, tzinfo=UTC),
    datetime(2026, 4, 28, tzinfo=UTC),  # RU May holidays
)
EXAMPLES = int(os.environ.get("SLAMON_PROPERTY_EXAMPLES", "150"))


@st.composite
def closure_after(draw: st.DrawFn, created: datetime, tz: ZoneInfo) -> datetime:
    """A closure some time after creation, often exactly at or just before a local midnight
    (where deadlines fall)."""
    kind = draw(st.sampled_from(["any", "any", "midnight", "before-midnight"]))
    if kind == "any":
        return created + timedelta(seconds=draw(st.integers(0, 14 * DAY)))
    at = local_midnight(created, tz, draw(st.integers(1, 14)))
    return at - timedelta(seconds=1) if kind == "before-midnight" else at


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    tz_name = draw(st.sampled_from(ZONES))
    tz = ZoneInfo(tz_name)
    base = draw(st.sampled_from(BASES))
    cases = []
    for _ in range(draw(st.integers(0, 30))):
        created = draw(instants(base, tz, 25))
        shape = draw(st.sampled_from(["open", "closed", "closed", "closed", "reopened", "before"]))
        closed = first = None
        if shape == "closed":
            closed = draw(closure_after(created, tz))
            if draw(st.booleans()):
                first = created + (closed - created) * draw(st.floats(0, 1))
                first = first.replace(microsecond=0)
        elif shape == "reopened":
            first = draw(closure_after(created, tz))
        elif shape == "before":
            closed = created - timedelta(seconds=draw(st.integers(1, 2 * DAY)))
        cases.append(
            oracle.Case(
                created_at=created,
                closed_at=closed,
                # What the store keeps: the source's first closure, else the closure seen.
                first_closed_at=first or closed,
                queue=draw(st.sampled_from(["billing", "delivery", ""])),
                excluded_reason=draw(st.sampled_from([None] * 8 + ["spam", "deleted"])),
            )
        )
    start_day = base.astimezone(tz).date()
    extra_days = st.lists(
        st.integers(0, 45).map(lambda k: start_day + timedelta(days=k)), max_size=3
    )
    extra_holidays = frozenset(draw(extra_days))
    extra_working = frozenset(draw(extra_days)) - extra_holidays
    thresholds = tuple(
        sorted(draw(st.sets(st.sampled_from([0, 1, 2, 3, 5, 7, 10]), min_size=1, max_size=4)))
    )
    since = start_day - timedelta(days=draw(st.integers(0, 3)))
    return {
        "cases": cases,
        "rules": oracle.Rules(
            tz=tz_name,
            mode=draw(st.sampled_from(["calendar", "working", "elapsed"])),
            closure=draw(st.sampled_from(["final", "first"])),
            thresholds=thresholds,
            targets={n: draw(st.sampled_from([0.5, 0.7, 0.9])) for n in thresholds},
            country=draw(st.sampled_from([None, "RU", "US", "BG"])),
            extra_holidays=extra_holidays,
            extra_working_days=extra_working,
        ),
        "as_of": draw(instants(base, tz, 40)),
        "since": since,
        "until": since + timedelta(days=draw(st.integers(0, 40))),
        "period": draw(st.sampled_from(["none", "day", "week", "month"])),
        "by_queue": draw(st.booleans()),
    }


def config_for(rules: oracle.Rules, url: str):
    return make_config(
        url,
        service_level={
            "thresholds": list(rules.thresholds),
            "targets": {str(n): t for n, t in rules.targets.items()},
            "day_mode": rules.mode,
            "timezone": rules.tz,
            "closure": rules.closure,
        },
        calendar={
            "country": rules.country,
            "extra_holidays": sorted(rules.extra_holidays),
            "extra_working_days": sorted(rules.extra_working_days),
        },
    )


def load(engine: Engine, cases: list[oracle.Case]) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    with write_transaction(engine) as conn:
        conn.execute(delete(complaints))
        ensure_source(conn, "test", "import", now)
        apply_batch(
            conn,
            "test",
            [
                ComplaintRecord(
                    external_id=str(i),
                    created_at=c.created_at,
                    closed_at=c.closed_at,
                    first_closed_at=c.first_closed_at,
                    queue=c.queue,
                    excluded_reason=c.excluded_reason,
                )
                for i, c in enumerate(cases)
            ],
            now,
        )


def slamon_report(engine: Engine, sc: dict) -> dict:
    cfg = config_for(sc["rules"], str(engine.url))
    request = report.make_request(
        as_of=sc["as_of"],
        tz=ZoneInfo(sc["rules"].tz),
        since=sc["since"],
        until=sc["until"],
        period=sc["period"],
        by=["queue"] if sc["by_queue"] else [],
    )
    return report.run(engine, cfg, request).as_json()


def assert_same(got: dict, want: dict, where: str) -> None:
    assert set(got) == set(want), where
    for key, value in want.items():
        if key == "levels":
            assert set(got["levels"]) == set(value), where
            for n, level in value.items():
                assert_same(got["levels"][n], level, f"{where} N={n}")
        elif isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), f"{where} {key}"
        else:
            assert got[key] == value, f"{where} {key}"


def check(engine: Engine, sc: dict) -> None:
    load(engine, sc["cases"])
    got = slamon_report(engine, sc)
    want = oracle.report(
        sc["cases"],
        sc["rules"],
        as_of=sc["as_of"],
        since=sc["since"],
        until=sc["until"],
        period=sc["period"],
        by_queue=sc["by_queue"],
    )
    want_total = want.pop(("total", None))
    rows = {(r["period"], r["segment"].get("queue")): r for r in got["rows"]}
    assert set(rows) == set(want), "groups differ"
    for key, expected in want.items():
        row = dict(rows[key])
        row.pop("period")
        row.pop("segment")
        assert_same(row, expected, f"row {key}")
    assert_same(got["total"], want_total, "total")
    keys = [(r["period"] or "", tuple(r["segment"].values())) for r in got["rows"]]
    assert keys == sorted(keys), "rows are sorted by period, then segment"


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sc=scenarios())
def test_report_equals_oracle(engine: Engine, sc: dict) -> None:
    check(engine, sc)


@settings(
    max_examples=max(20, EXAMPLES // 3),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sc=scenarios(), mode=st.sampled_from(["calendar", "working", "elapsed"]))
def test_levels_grow_with_threshold_once_matured(engine: Engine, sc: dict, mode: str) -> None:
    """On a cohort whose every complaint has matured, SL(3) <= SL(5) <= SL(10)."""
    rules = oracle.Rules(
        **{**sc["rules"].__dict__, "mode": mode, "thresholds": (3, 5, 10), "targets": {}}
    )
    sc = {**sc, "rules": rules, "as_of": datetime(2027, 6, 1, tzinfo=UTC), "period": "none"}
    load(engine, sc["cases"])
    got = slamon_report(engine, sc)
    levels = got["total"]["levels"]
    assert all(levels[n]["pending"] == 0 for n in ("3", "5", "10"))
    shares = [levels[n]["share"] for n in ("3", "5", "10")]
    if shares[0] is not None:
        assert shares[0] <= shares[1] <= shares[2]


WORKED = [
    # complaint, created, closed, verdict
    ("a", "2026-03-02T10:00:00Z", "2026-03-04T09:00:00Z", "hit"),
    ("b", "2026-03-02T23:30:00Z", "2026-03-05T23:59:00Z", "hit"),
    ("c", "2026-03-03T08:00:00Z", "2026-03-06T00:00:00Z", "hit"),
    ("d", "2026-03-03T08:00:00Z", "2026-03-07T00:00:00Z", "miss"),
    ("e", "2026-03-05T12:00:00Z", None, "miss"),
    ("f", "2026-03-18T12:00:00Z", "2026-03-18T13:00:00Z", "pending"),
    ("g", "2026-03-19T12:00:00Z", None, "pending"),
]


def test_worked_example_of_service_level_md(engine: Engine) -> None:
    """SERVICE-LEVEL.md's worked example: calendar mode, UTC, N = 3, as_of 2026-03-20T00:00Z."""
    now = datetime(2026, 3, 20, tzinfo=UTC)
    with write_transaction(engine) as conn:
        ensure_source(conn, "crm", "import", now)
        apply_batch(
            conn,
            "crm",
            [
                ComplaintRecord(
                    external_id=name,
                    created_at=datetime.fromisoformat(created),
                    closed_at=datetime.fromisoformat(closed) if closed else None,
                )
                for name, created, closed, _ in WORKED
            ],
            now,
        )
    cfg = make_config(str(engine.url), service_level={"thresholds": [3], "targets": {"3": 0.7}})
    request = report.make_request(
        as_of=now, tz=ZoneInfo("UTC"), since=date(2026, 3, 1), until=date(2026, 3, 31)
    )
    total = report.run(engine, cfg, request).as_json()["total"]
    level = total["levels"]["3"]
    assert total["complaints"] == 7
    assert (level["hits"], level["misses"], level["pending"], level["matured"]) == (3, 2, 2, 5)
    assert level["share"] == pytest.approx(0.60)
    assert level["met"] is False
    assert total["open"] == 2
    closed_days = [
        (datetime.fromisoformat(c) - datetime.fromisoformat(o)).total_seconds() / DAY
        for _, o, c, _ in WORKED
        if c
    ]
    assert len(closed_days) == 5  # a, b, c, d, f
    assert total["mean_days"] == pytest.approx(sum(closed_days) / 5)


@settings(
    max_examples=max(20, EXAMPLES // 3),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sc=scenarios())
def test_curve_equals_oracle_kaplan_meier(engine: Engine, sc: dict) -> None:
    load(engine, sc["cases"])
    cfg = config_for(sc["rules"], str(engine.url))
    request = report.make_request(
        as_of=sc["as_of"], tz=ZoneInfo(sc["rules"].tz), since=sc["since"], until=sc["until"]
    )
    got = report.run_curve(engine, cfg, request).as_json()["total"]["points"]
    want = oracle.curve(
        sc["cases"],
        sc["rules"],
        as_of=sc["as_of"],
        since=sc["since"],
        until=sc["until"],
        days=report.CURVE_DAYS,
    )
    assert [p["day"] for p in got] == list(range(report.CURVE_DAYS + 1))
    for point, expected in zip(got, want, strict=True):
        if expected is None:
            assert point["closed_share"] is None, point
        else:
            assert point["closed_share"] == pytest.approx(expected, abs=1e-12), point


def test_curve_of_a_matured_cohort_is_the_service_level(engine: Engine) -> None:
    """With every deadline passed nothing is censored: the curve at d is SL(d), calendar mode."""
    created = datetime(2026, 3, 2, 10, tzinfo=UTC)
    cases = [
        oracle.Case(created, created + timedelta(hours=h), created + timedelta(hours=h))
        for h in (1, 20, 30, 50, 70, 100, 200, 400)
    ] + [oracle.Case(created, None, None)]
    load(engine, cases)
    rules = oracle.Rules("UTC", "calendar", "final", (1, 2, 3, 5, 10), {})
    cfg = config_for(rules, str(engine.url))
    as_of = datetime(2026, 6, 1, tzinfo=UTC)
    request = report.make_request(
        as_of=as_of, tz=ZoneInfo("UTC"), since=date(2026, 3, 1), until=date(2026, 3, 31)
    )
    points = report.run_curve(engine, cfg, request).as_json()["total"]["points"]
    levels = report.run(engine, cfg, request).as_json()["total"]["levels"]
    for n in (1, 2, 3, 5, 10):
        assert points[n]["closed_share"] == pytest.approx(levels[str(n)]["share"])
    assert points[0]["closed_share"] == pytest.approx(1 / 9)  # closed on the creation day

"""Sync from Freshdesk, against a fake Freshdesk API served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from fakes.clock import Sleeper
from fakes.freshdesk import FakeFreshdesk
from helpers import make_config
from slamon import sources as sources_mod
from slamon import sync as sync_mod
from slamon.connectors import freshdesk as freshdesk_mod
from slamon.connectors.base import SyncWindow
from slamon.store.models import complaints
from slamon.store.models import sources as sources_table

KEY = "fd-s3cret-key"
T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)  # tickets are created from here on
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # the connector's "now" (excluded-listing sweeps)


@pytest.fixture
def fd() -> Iterator[FakeFreshdesk]:
    api = FakeFreshdesk(api_key=KEY).start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FD_KEY", KEY)
    monkeypatch.setenv("FD_BAD_KEY", "wrong-key")


def config(engine: Engine, api: FakeFreshdesk, **extra: Any):
    source = {
        "kind": "freshdesk",
        "url": api.url,
        "api_key_env": "FD_KEY",
        "groups": {str(k): v for k, v in api.groups.items()},
        **extra,
    }
    return make_config(str(engine.url), sources={"fd": source})


def held(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(complaints).where(complaints.c.source == "fd"))
        return {
            r.external_id: {
                "created_at": r.created_at,
                "closed_at": r.closed_at,
                "queue": r.queue,
                "status": r.status,
                "source_updated_at": r.source_updated_at,
                "excluded_reason": r.excluded_reason,
            }
            for r in rows
        }


def rows(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        found = conn.execute(select(complaints).where(complaints.c.source == "fd"))
        return {r.external_id: r for r in found}


def run_sync(engine: Engine, cfg, sleep: Sleeper | None = None, on_page=None, now=NOW):
    sleep = sleep or Sleeper()
    kind, connector, http = sources_mod.open_connector(
        cfg, "fd", now=now, sleep=sleep, monotonic=sleep.monotonic
    )
    with http:
        return sync_mod.sync(engine, "fd", kind, connector, lambda: datetime.now(UTC), on_page)


def seed(api: FakeFreshdesk, n: int, start: int = 1) -> None:
    rng = random.Random(n + start)
    for i in range(start, start + n):
        api.create(
            i,
            T0 + timedelta(minutes=17 * i),
            group_id=rng.choice([7001, 7002]),
            status=rng.choice([2, 3, 4, 5]),
        )


def cursor_of(engine: Engine) -> dict | None:
    with engine.connect() as conn:
        raw = conn.execute(
            select(sources_table.c.cursor).where(sources_table.c.name == "fd")
        ).scalar()
    return json.loads(raw) if raw else None


def listings(api: FakeFreshdesk, kind: str | None = None) -> list[dict[str, str]]:
    return [q for q in api.listed if q.get("filter") == kind]


@pytest.mark.parametrize("inclusive", [True, False], ids=["since>=", "since>"])
def test_full_sync_then_changes_converge_to_the_source(engine: Engine, inclusive: bool):
    api = FakeFreshdesk(api_key=KEY, since_inclusive=inclusive).start()
    try:
        seed(api, 250)
        cfg = config(engine, api)
        first = run_sync(engine, cfg)
        assert first.ok, first.error
        assert first.counts.new == 250
        assert held(engine) == api.truth()
        main = listings(api)
        assert len(main) == 3
        for query in main:  # the documented incremental listing, never the 30-day default
            assert query["updated_since"].endswith("Z")
            assert query["order_by"] == "updated_at" and query["order_type"] == "asc"
            assert query["include"] == "stats" and query["per_page"] == "100"
        assert len(listings(api, "spam")) == 1 and len(listings(api, "deleted")) == 1

        api.set_status(3, 4)  # resolved
        closed_before = [i for i, t in api.tickets.items() if t["status"] in (4, 5) and i != 3]
        for ticket_id in closed_before[:2]:
            api.set_status(ticket_id, 2)  # reopened: Freshdesk keeps the old resolved_at
        api.move(10, 7003)
        seed(api, 5, start=1000)
        api.delete(20)  # neither touches updated_at
        api.mark_spam(21)
        second = run_sync(engine, cfg, now=NOW + timedelta(hours=25))
        assert second.ok, second.error
        assert second.counts.new == 5
        assert held(engine) == api.truth()
        for ticket_id in closed_before[:2]:
            assert held(engine)[str(ticket_id)]["closed_at"] is None
            assert api.tickets[ticket_id]["stats"]["resolved_at"] is not None
        assert held(engine)["10"]["queue"] == "VIP"
        assert held(engine)["20"]["excluded_reason"] == "deleted"
        assert held(engine)["21"]["excluded_reason"] == "spam"
    finally:
        api.stop()


def test_excluded_listings_are_swept_in_full_every_excluded_pass_hours(
    engine: Engine, fd: FakeFreshdesk
):
    seed(fd, 40)
    cfg = config(engine, fd, page_size=10, max_retries=0, overlap_minutes=0)
    assert run_sync(engine, cfg).ok
    for ticket_id in range(1, 26):
        fd.delete(ticket_id)  # old tickets deleted now: their updated_at does not move
    fd.mark_spam(30)
    fd.raw[30] = {"spam": None}  # the listing says so even where a ticket lacks the flag
    fd.listed.clear()
    assert run_sync(engine, cfg, now=NOW + timedelta(hours=1)).ok
    assert listings(fd, "deleted") == [] and listings(fd, "spam") == []  # not due yet
    assert held(engine)["1"]["excluded_reason"] is None

    # Due: the sweep starts from the beginning (not from a watermark) and is cut short by a
    # failing server after its first page of deleted tickets.
    later = NOW + timedelta(hours=25)
    fd.fail_next("ok")  # the main listing (empty)
    fd.fail_next("ok")  # spam
    fd.fail_next("ok")  # deleted, page 1
    fd.fail_next("500")
    cut = run_sync(engine, cfg, now=later)
    assert not cut.ok and "HTTP 500" in cut.error
    assert listings(fd, "deleted")[0]["updated_since"] == "1970-01-01T00:00:00Z"
    assert held(engine)["30"]["excluded_reason"] == "spam"
    assert sum(1 for v in held(engine).values() if v["excluded_reason"] == "deleted") == 10
    assert cursor_of(engine)["sweep"]["listing"] == "deleted"

    fd.listed.clear()
    resumed = run_sync(engine, cfg, now=later)  # an interrupted sweep resumes, due or not
    assert resumed.ok, resumed.error
    assert listings(fd, "spam") == []
    assert listings(fd, "deleted")[0]["updated_since"] != "1970-01-01T00:00:00Z"
    assert held(engine) == fd.truth()
    assert "sweep" not in cursor_of(engine)
    assert cursor_of(engine)["swept_at"] == later.isoformat()


@pytest.mark.parametrize("inclusive", [True, False], ids=["since>=", "since>"])
def test_many_tickets_in_one_second_are_neither_skipped_nor_looped(engine: Engine, inclusive: bool):
    api = FakeFreshdesk(api_key=KEY, since_inclusive=inclusive).start()
    try:
        for i in range(1, 231):
            api.create(i, T0)
        same = api.clock = api.clock + timedelta(hours=1)
        for i in range(1, 231):
            api.tickets[i]["updated_at"] = same
        api.create(231, T0)  # one later ticket, after the crowd
        result = run_sync(engine, config(engine, api))
        assert result.ok, result.error
        assert result.counts.new == 231
        assert held(engine) == api.truth()
        pages = [int(q["page"]) for q in listings(api)]
        assert max(pages) == 3 and len(pages) <= 5
    finally:
        api.stop()


def test_a_ticket_changed_during_the_sync_shows_up_twice_and_the_newest_wins(
    engine: Engine, fd: FakeFreshdesk
):
    seed(fd, 250)
    cfg = config(engine, fd)
    touched = []

    def change_a_first_page_ticket(result: sync_mod.SyncResult, page) -> None:
        if result.pages == 1:
            ticket_id = int(page.records[0].external_id)
            fd.set_status(ticket_id, 5)
            touched.append(ticket_id)

    result = run_sync(engine, cfg, on_page=change_a_first_page_ticket)
    assert result.ok and touched
    assert result.counts.new == 250 and result.counts.changed == 1  # seen on two pages
    assert held(engine) == fd.truth()
    assert held(engine)[str(touched[0])]["status"] == "Closed"


def test_rate_limit_and_server_errors_are_retried(engine: Engine, fd: FakeFreshdesk):
    seed(fd, 120)
    fd.fail_next("429", 7)
    fd.fail_next("500")
    sleeper = Sleeper()
    result = run_sync(engine, config(engine, fd), sleep=sleeper)
    assert result.ok and result.counts.new == 120
    assert 7.0 in sleeper.calls  # waited as long as Retry-After said
    assert len(fd.requests) == 2 + 2 + 2  # 429, 500, two pages, the spam and deleted sweeps
    assert held(engine) == fd.truth()


def test_the_default_budget_stays_under_the_tickets_list_limit(engine: Engine, fd: FakeFreshdesk):
    settings = freshdesk_mod.FreshdeskSettings(url=fd.url)
    # Growth: Tickets List 20 calls a minute; a list call with include=stats costs 3 credits,
    # and the trial limit is 50 credits a minute.
    assert settings.rate_limit <= 20 and settings.rate_limit * 3 <= 50
    seed(fd, 250)
    sleeper = Sleeper()
    assert run_sync(engine, config(engine, fd), sleep=sleeper).ok
    # Five requests (three pages, two sweeps) at 10 a minute: each after the first waits 6 s.
    assert sleeper.calls == [6.0] * 4


def test_a_malformed_page_never_advances_the_cursor(engine: Engine, fd: FakeFreshdesk):
    seed(fd, 150)
    cfg = config(engine, fd)
    assert run_sync(engine, cfg).ok
    before = cursor_of(engine)
    seed(fd, 10, start=500)
    fd.fail_next("malformed")
    failed = run_sync(engine, cfg, now=NOW + timedelta(hours=1))
    assert not failed.ok and not failed.permanent
    assert "not JSON" in failed.error and "/api/v2/tickets?updated_since=" in failed.error
    assert KEY not in failed.error
    assert cursor_of(engine) == before
    assert len(held(engine)) == 150
    assert run_sync(engine, cfg, now=NOW + timedelta(hours=1)).ok
    assert held(engine) == fd.truth()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("created_at", None, "ticket 2: created_at is missing"),
        ("updated_at", "yesterday", "ticket 2: updated_at: cannot read 'yesterday' as a time"),
        ("status", None, "ticket 2: status is missing"),
    ],
)
def test_a_bad_field_names_the_ticket_the_field_and_the_url(
    engine: Engine, fd: FakeFreshdesk, field: str, value: Any, message: str
):
    seed(fd, 3)
    fd.raw[2] = {field: value}
    result = run_sync(engine, config(engine, fd))
    assert not result.ok and not result.permanent
    assert message in result.error and "/api/v2/tickets?" in result.error
    assert held(engine) == {} and cursor_of(engine) is None


def test_stats_missing_on_a_closed_ticket_is_malformed(engine: Engine, fd: FakeFreshdesk):
    seed(fd, 3)
    fd.set_status(2, 5)
    fd.raw[2] = {"stats": None}
    result = run_sync(engine, config(engine, fd))
    assert not result.ok and "ticket 2: stats is missing" in result.error


@pytest.mark.parametrize("key_env", ["FD_BAD_KEY", None])
def test_bad_credentials_are_permanent(engine: Engine, fd: FakeFreshdesk, key_env: str | None):
    seed(fd, 5)
    cfg = config(engine, fd, api_key_env=key_env)
    result = run_sync(engine, cfg)
    assert not result.ok and result.permanent
    assert "HTTP 401" in result.error and "credentials" in result.error
    assert "wrong-key" not in result.error and KEY not in result.error
    assert held(engine) == {}
    assert len(fd.requests) == 1  # no retry of a refused key


def test_backfill_is_resumable_and_leaves_the_cursor_alone(engine: Engine, fd: FakeFreshdesk):
    seed(fd, 330)
    fd.delete(5)
    cfg = config(engine, fd, max_retries=2)
    window = SyncWindow(T0, T0 + timedelta(days=3))  # tickets created within: 1..254

    def backfill():
        kind, connector, http = sources_mod.open_connector(cfg, "fd", now=NOW, sleep=Sleeper())
        with http:
            return sync_mod.backfill(engine, "fd", kind, connector, window, lambda: NOW)

    fd.fail_next("ok")  # the first page comes through, then the server is down
    for _ in range(3):
        fd.fail_next("500")
    first = backfill()
    assert not first.ok and not first.permanent and first.pages == 1
    assert "HTTP 500" in first.error and "gave up after 3 tries" in first.error
    assert len(held(engine)) == 100
    assert listings(fd)[0]["updated_since"] == "2026-02-01T09:00:00Z"
    fd.listed.clear()
    second = backfill()
    assert second.ok, second.error
    resumed = listings(fd)[0]
    assert resumed["updated_since"] > "2026-03-01" and resumed["page"] == "1"
    truth = {k: v for k, v in fd.truth().items() if T0 <= v["created_at"] <= window.until}
    assert len(truth) == 254
    assert held(engine) == truth
    assert held(engine)["5"]["excluded_reason"] == "deleted"
    assert second.skipped > 0  # tickets created after the window were read and left out
    assert cursor_of(engine) is None  # the incremental cursor was never moved


def test_the_page_ceiling_is_never_crossed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, fd: FakeFreshdesk
):
    monkeypatch.setattr(freshdesk_mod, "PAGE_CEILING", 3)
    fd.page_cap = 3
    refused = httpx.get(f"{fd.url}/api/v2/tickets?page=4", auth=(KEY, "X"))
    assert refused.status_code == 400 and "beyond the 3th page" in refused.text

    seed(fd, 95)  # 10 pages of 10 with a fixed updated_since would hit the ceiling
    cfg = config(engine, fd, page_size=10, excluded_listings=[])
    first = run_sync(engine, cfg)
    assert first.ok, first.error
    assert held(engine) == fd.truth()
    assert {q["page"] for q in fd.listed} == {"1"}

    crowd = fd.tick(3600)  # 25 tickets in one second: pages 1..3 of that second
    for i in range(200, 225):
        fd.create(i, T0)
        fd.tickets[i]["updated_at"] = crowd
    fd.listed.clear()
    second = run_sync(engine, cfg)
    assert second.ok, second.error
    assert held(engine) == fd.truth()
    assert max(int(q["page"]) for q in fd.listed) == 3

    crowd = fd.tick(3600)  # 35 in one second cannot be listed under a 3-page ceiling
    for i in range(300, 335):
        fd.create(i, T0)
        fd.tickets[i]["updated_at"] = crowd
    fd.listed.clear()
    third = run_sync(engine, cfg)
    assert not third.ok and "no page past 3" in third.error
    assert max(int(q["page"]) for q in fd.listed) == 3  # stopped, neither refused nor looping


def test_each_run_rereads_overlap_minutes_before_the_cursor(engine: Engine, fd: FakeFreshdesk):
    seed(fd, 30)
    cfg = config(engine, fd, overlap_minutes=5)
    assert run_sync(engine, cfg).ok
    since = datetime.fromisoformat(cursor_of(engine)["since"])
    fd.listed.clear()
    assert run_sync(engine, cfg).ok
    expected = (since - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert listings(fd)[0]["updated_since"] == expected


def test_segments_closure_field_and_complaint_types(engine: Engine, fd: FakeFreshdesk):
    fd.create(1, T0, group_id=7002, source=7, priority=4, status=4)
    fd.create(2, T0, group_id=None, source=3, priority=1, status=2)
    fd.set_status(2, 4)
    fd.set_status(2, 5, at=fd.clock + timedelta(days=2))
    fd.create(3, T0, source=42, type_="Question")
    fd.create(4, T0, source=10, status=5)
    cfg = config(
        engine,
        fd,
        closed_field="closed",
        closed_statuses=[5],
        types=["Complaint"],
        source_names={"42": "WhatsApp"},
        map={"category": "cf:cf_region", "priority": "priority"},
    )
    result = run_sync(engine, cfg)
    assert result.ok, result.error
    assert result.skipped == 1  # the Question
    got = rows(engine)
    assert sorted(got) == ["1", "2", "4"]
    assert got["1"].queue == "Delivery" and got["1"].channel == "Chat"
    assert got["1"].priority == "Urgent" and got["1"].category == "EU"
    assert got["1"].status == "Resolved" and got["1"].closed_at is None  # resolved, not closed
    stats = fd.tickets[2]["stats"]
    assert stats["closed_at"] != stats["resolved_at"]
    assert got["2"].closed_at == stats["closed_at"] and got["2"].queue == ""
    assert got["4"].channel == "Outbound email"
    assert got["1"].url == f"{fd.url}/a/tickets/1"

    fd.create(5, T0, source=42)
    assert run_sync(engine, cfg).ok
    assert rows(engine)["5"].channel == "WhatsApp"


def test_an_unknown_segment_field_is_a_config_error(fd: FakeFreshdesk):
    from slamon.errors import ConfigError

    with pytest.raises(ConfigError, match=r"map\.queue"):
        make_config(
            "sqlite:///x.db",
            sources={"fd": {"kind": "freshdesk", "url": fd.url, "map": {"queue": "team"}}},
        )

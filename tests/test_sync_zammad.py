"""Sync from Zammad, against a fake Zammad API served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import Engine, select

from fakes.clock import Sleeper
from fakes.zammad import FakeZammad
from helpers import make_config
from slamon import sources as sources_mod
from slamon import sync as sync_mod
from slamon.config import Config
from slamon.connectors import zammad as zammad_mod
from slamon.connectors.base import SyncWindow
from slamon.errors import ConfigError
from slamon.store.models import complaints
from slamon.store.models import sources as sources_table

TOKEN = "zammad-s3cret"
T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
SPAM = {"spam": "spam"}


@pytest.fixture
def zammad() -> Iterator[FakeZammad]:
    api = FakeZammad(token=TOKEN).start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZD_TOKEN", TOKEN)
    monkeypatch.setenv("ZD_BAD_TOKEN", "wrong-token")


def config(engine: Engine, zammad: FakeZammad, **extra: Any) -> Config:
    source = {
        "kind": "zammad",
        "url": zammad.url,
        "token_env": "ZD_TOKEN",
        "excluded_states": SPAM,
        **extra,
    }
    return make_config(str(engine.url), sources={"zd": source})


def held(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(complaints).where(complaints.c.source == "zd"))
        return {
            r.external_id: {
                "created_at": r.created_at,
                "closed_at": r.closed_at,
                "first_closed_at": r.first_closed_at,
                "status": r.status,
                "queue": r.queue,
                "channel": r.channel,
                "priority": r.priority,
                "excluded_reason": r.excluded_reason,
                "source_updated_at": r.source_updated_at,
            }
            for r in rows
        }


def run_sync(
    engine: Engine,
    cfg: Config,
    zammad: FakeZammad,
    sleep: Sleeper | None = None,
    on_page: Any = None,
) -> sync_mod.SyncResult:
    """One sync run, started (by the source's clock) one second after its latest change."""
    sleep = sleep or Sleeper()
    now = zammad.clock + timedelta(seconds=1)
    kind, connector, http = sources_mod.open_connector(
        cfg, "zd", now=now, sleep=sleep, monotonic=sleep.monotonic
    )
    with http:
        return sync_mod.sync(engine, "zd", kind, connector, lambda: now, on_page)


def seed(zammad: FakeZammad, n: int, start: int = 1) -> None:
    rng = random.Random(n + start)
    for i in range(start, start + n):
        zammad.create(
            i,
            T0 + timedelta(minutes=17 * i),
            group=rng.choice(["Billing", "Delivery"]),
            channel=rng.choice([1, 5, 11]),
            state=rng.choice(["new", "open", "closed"]),
            priority=rng.choice([1, 2, 3]),
        )


def cursor_of(engine: Engine) -> dict[str, Any] | None:
    with engine.connect() as conn:
        raw = conn.execute(
            select(sources_table.c.cursor).where(sources_table.c.name == "zd")
        ).scalar()
    return json.loads(raw) if raw else None


def searches(zammad: FakeZammad) -> list[dict[str, str]]:
    return [
        dict(parse_qsl(urlsplit(path).query))
        for _, path, _ in zammad.requests
        if path.startswith("/api/v1/tickets/search")
    ]


def test_full_sync_then_changes_converge_to_the_source(engine: Engine, zammad: FakeZammad):
    seed(zammad, 450)
    cfg = config(engine, zammad)
    first = run_sync(engine, cfg, zammad)
    assert first.ok, first.error
    assert first.counts.new == 450 and first.pages == 3
    assert held(engine) == zammad.truth(SPAM)
    for params in searches(zammad):
        assert params["expand"] == "true" and params["per_page"] == "200"
        assert params["sort_by"] == "updated_at" and params["order_by"] == "asc"
        assert params["query"].startswith("updated_at:[") and "*" not in params["query"]
    assert all(h["authorization"] == f"Token token={TOKEN}" for _, _, h in zammad.requests)

    closed = [i for i, t in zammad.tickets.items() if t["state_id"] == 4][:3]
    zammad.set_state(closed[0], "open")  # reopened: close_at and last_close_at are kept
    zammad.set_state(closed[1], "open")
    zammad.set_state(closed[1], "closed")  # closed again: last_close_at moves
    zammad.set_state(3, "closed")
    zammad.move(10, "VIP")
    zammad.set_state(11, "merged")
    zammad.set_state(12, "spam")
    zammad.set_state(13, "removed")
    zammad.set_state(14, "pending close")
    zammad.delete(15)
    seed(zammad, 5, start=1000)
    second = run_sync(engine, cfg, zammad)
    assert second.ok, second.error
    assert second.counts.new == 5
    now = held(engine)
    assert now.pop("15")["status"]  # deleted in Zammad: kept as last seen, no tombstone
    assert now == zammad.truth(SPAM)
    reopened, reclosed = now[str(closed[0])], now[str(closed[1])]
    assert reopened["closed_at"] is None
    assert reopened["first_closed_at"] == zammad.tickets[closed[0]]["close_at"].replace(
        microsecond=0
    )
    assert reclosed["closed_at"] > reclosed["first_closed_at"]
    assert [now[str(i)]["excluded_reason"] for i in (11, 12, 13)] == ["merged", "spam", "deleted"]
    assert now["14"]["closed_at"] is None  # pending close is not closed yet


def test_many_tickets_sharing_one_instant_are_neither_skipped_nor_looped(
    engine: Engine, zammad: FakeZammad
):
    for i in range(1, 431):
        zammad.create(i, T0)
    same = zammad.clock - timedelta(hours=1)
    for i in range(1, 431):
        zammad.tickets[i]["updated_at"] = same
    zammad.reindex()
    seed(zammad, 30, start=500)
    result = run_sync(engine, config(engine, zammad), zammad)
    assert result.ok, result.error
    assert result.counts.new == 460
    assert held(engine) == zammad.truth(SPAM)
    pages = [int(p["page"]) for p in searches(zammad)]
    assert max(pages) == 3 and len(pages) < 10


def test_a_stale_index_never_makes_the_watermark_jump(engine: Engine, zammad: FakeZammad):
    """Hits are ordered by the index but rendered from the database: a ticket changed after it
    was indexed shows its new time at its old place. Taken as the watermark, that time would
    jump over every ticket after it."""
    seed(zammad, 450)
    zammad.indexing = False
    by_update = sorted(zammad.tickets, key=lambda i: zammad.tickets[i]["updated_at"])
    zammad.set_state(by_update[199], "closed")  # the last ticket of page 1, not reindexed yet
    zammad.create(9000, zammad.clock)  # not in the index yet either
    cfg = config(engine, zammad)
    first = run_sync(engine, cfg, zammad)
    assert first.ok, first.error
    got = held(engine)
    assert len(got) == 450 and "9000" not in got
    zammad.reindex()
    zammad.tick(120)
    second = run_sync(engine, cfg, zammad)
    assert second.ok, second.error
    assert held(engine) == zammad.truth(SPAM)


def test_a_ticket_changed_during_the_sync_shows_up_twice_and_the_newest_wins(
    engine: Engine, zammad: FakeZammad
):
    seed(zammad, 450)
    touched: list[int] = []

    def close_a_first_page_ticket(result: sync_mod.SyncResult, page: Any) -> None:
        if result.pages == 1:
            ticket_id = next(
                int(r.external_id) for r in page.records if r.status in ("new", "open")
            )
            zammad.set_state(ticket_id, "closed")
            touched.append(ticket_id)

    result = run_sync(engine, config(engine, zammad), zammad, on_page=close_a_first_page_ticket)
    assert result.ok, result.error
    assert result.counts.new == 450 and result.counts.changed == 1  # seen on two pages
    assert held(engine) == zammad.truth(SPAM)
    assert held(engine)[str(touched[0])]["status"] == "closed"


def test_rate_limit_server_errors_and_the_budget(engine: Engine, zammad: FakeZammad):
    seed(zammad, 250)
    zammad.fail_next("ok")  # ticket states
    zammad.fail_next("429", 7)
    zammad.fail_next("500")
    sleeper = Sleeper()
    result = run_sync(engine, config(engine, zammad), zammad, sleep=sleeper)
    assert result.ok, result.error
    assert result.counts.new == 250
    assert 7.0 in sleeper.calls  # waited as long as Retry-After said
    assert 0.5 in sleeper.calls  # 120 requests a minute by default
    assert held(engine) == zammad.truth(SPAM)


def test_a_malformed_page_never_advances_the_cursor(engine: Engine, zammad: FakeZammad):
    seed(zammad, 250)
    cfg = config(engine, zammad)
    assert run_sync(engine, cfg, zammad).ok
    before = cursor_of(engine)
    assert before is not None
    seed(zammad, 10, start=500)
    zammad.fail_next("ok")  # ticket states
    zammad.fail_next("malformed")
    failed = run_sync(engine, cfg, zammad)
    assert not failed.ok and not failed.permanent
    assert failed.error is not None
    assert "not JSON" in failed.error and "/api/v1/tickets/search" in failed.error
    assert TOKEN not in failed.error
    assert cursor_of(engine) == before
    assert len(held(engine)) == 250
    assert run_sync(engine, cfg, zammad).ok
    assert held(engine) == zammad.truth(SPAM)


def test_a_bad_field_names_the_ticket_and_the_field(engine: Engine, zammad: FakeZammad):
    seed(zammad, 3)
    zammad.tickets[2]["created_at"] = "yesterday"
    result = run_sync(engine, config(engine, zammad), zammad)
    assert not result.ok and not result.permanent
    assert result.error is not None
    assert "ticket 2: created_at: cannot read 'yesterday' as a time" in result.error
    assert "/api/v1/tickets/search" in result.error
    assert held(engine) == {}
    assert cursor_of(engine) is None


def test_a_bad_token_is_permanent_and_never_shown(engine: Engine, zammad: FakeZammad):
    seed(zammad, 5)
    result = run_sync(engine, config(engine, zammad, token_env="ZD_BAD_TOKEN"), zammad)
    assert not result.ok and result.permanent
    assert result.error is not None
    assert "HTTP 401" in result.error and "wrong-token" not in result.error
    assert held(engine) == {}


def test_settings_errors_name_the_key(zammad: FakeZammad):
    with pytest.raises(ConfigError, match=r"sources\.zd\.token_env: give token_env or token_file"):
        make_config(sources={"zd": {"kind": "zammad", "url": zammad.url}})
    with pytest.raises(ConfigError, match=r"sources\.zd\.page_size: .*200"):
        make_config(
            sources={
                "zd": {"kind": "zammad", "url": zammad.url, "token_env": "X", "page_size": 500}
            }
        )
    with pytest.raises(ConfigError, match=r"sources\.zd\.excluded_states\.junk"):
        make_config(
            sources={
                "zd": {
                    "kind": "zammad",
                    "url": zammad.url,
                    "token_env": "X",
                    "excluded_states": {"junk": "trash"},
                }
            }
        )


def test_the_filter_narrows_the_search(engine: Engine, zammad: FakeZammad):
    seed(zammad, 40)
    result = run_sync(engine, config(engine, zammad, filter='group.name:"Billing"'), zammad)
    assert result.ok, result.error
    truth = {k: v for k, v in zammad.truth(SPAM).items() if v["queue"] == "Billing"}
    assert 0 < len(truth) < 40
    assert held(engine) == truth


def test_the_result_window_is_never_exceeded(
    engine: Engine, zammad: FakeZammad, monkeypatch: pytest.MonkeyPatch
):
    """Past Elasticsearch's result window Zammad answers an empty list: plain paging would stop
    there silently. The keyset walk asks from the watermark again instead."""
    monkeypatch.setattr(zammad_mod, "MAX_RESULT_WINDOW", 60)
    zammad.result_window = 60
    seed(zammad, 300)
    result = run_sync(engine, config(engine, zammad, page_size=20), zammad)
    assert result.ok, result.error
    assert held(engine) == zammad.truth(SPAM)
    assert all(int(p["page"]) * int(p["per_page"]) <= 60 for p in searches(zammad))


def test_more_ties_than_the_result_window_fail_loudly(
    engine: Engine, zammad: FakeZammad, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(zammad_mod, "MAX_RESULT_WINDOW", 60)
    zammad.result_window = 60
    for i in range(1, 81):
        zammad.create(i, T0)
    same = zammad.clock - timedelta(hours=1)
    for ticket in zammad.tickets.values():
        ticket["updated_at"] = same
    zammad.reindex()
    result = run_sync(engine, config(engine, zammad, page_size=20), zammad)
    assert not result.ok and result.error is not None
    assert "more than 60 tickets share updated_at" in result.error
    assert len(held(engine)) == 60


def test_backfill_is_resumable_and_leaves_the_cursor_alone(engine: Engine, zammad: FakeZammad):
    seed(zammad, 330)
    cfg = config(engine, zammad, max_retries=2)
    window = SyncWindow(T0, T0 + timedelta(days=3))  # tickets created within: 1..254

    def backfill() -> sync_mod.SyncResult:
        kind, connector, http = sources_mod.open_connector(cfg, "zd", now=T0, sleep=Sleeper())
        with http:
            return sync_mod.backfill(engine, "zd", kind, connector, window, lambda: T0)

    zammad.fail_next("ok")  # ticket states
    zammad.fail_next("ok")  # the first page comes through, then the server is down
    for _ in range(3):
        zammad.fail_next("500")
    first = backfill()
    assert not first.ok and not first.permanent and first.pages == 1
    assert first.error is not None and "HTTP 500" in first.error
    assert len(held(engine)) == 200
    zammad.requests.clear()
    second = backfill()
    assert second.ok, second.error
    resumed = searches(zammad)[0]
    assert resumed["sort_by"] == "created_at" and resumed["page"] == "1"
    assert not resumed["query"].startswith(f"created_at:[{T0:%Y-%m-%d}T09:00:00.000Z")
    truth = {k: v for k, v in zammad.truth(SPAM).items() if T0 <= v["created_at"] <= window.until}
    assert len(truth) == 254
    assert held(engine) == truth
    assert cursor_of(engine) is None

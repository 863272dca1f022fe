"""Sync from Zendesk Support, against a fake incremental ticket export served over real HTTP."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Engine, select

import slamon.connectors.zendesk  # noqa: F401  (registers the kind)
from fakes.clock import Sleeper
from fakes.zendesk import GROUPS, FakeZendesk
from helpers import make_config
from slamon import sources as sources_mod
from slamon import sync as sync_mod
from slamon.config import Config
from slamon.connectors.base import SyncWindow
from slamon.connectors.zendesk import ZendeskSettings
from slamon.errors import ConfigError
from slamon.store.models import complaints
from slamon.store.models import sources as sources_table

EMAIL = "admin@acme.test"
TOKEN = "zd-s3cret-token"
OAUTH = "zd-oauth-access"
AGENT = "zd-agent-token"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NAMES = {str(k): v for k, v in GROUPS.items()}


@pytest.fixture(scope="module")
def zd_server() -> Iterator[FakeZendesk]:
    """One server for the module (stopping one takes half a second), emptied for each test."""
    api = FakeZendesk(email=EMAIL, token=TOKEN, oauth_token=OAUTH, agent_token=AGENT)
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def zd(zd_server: FakeZendesk) -> FakeZendesk:
    zd_server.reset()
    return zd_server


@pytest.fixture(autouse=True)
def _tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZD_TOKEN", TOKEN)
    monkeypatch.setenv("ZD_OAUTH", OAUTH)
    monkeypatch.setenv("ZD_AGENT", AGENT)
    monkeypatch.setenv("ZD_BAD", "wrong-token")


def config(engine: Engine, zd: FakeZendesk, **extra: Any) -> Config:
    source: dict[str, Any] = {"kind": "zendesk", "url": zd.url, "group_names": NAMES}
    if "oauth_token_env" not in extra:
        source.update(email=EMAIL, token_env="ZD_TOKEN")
    source.update(extra)
    return make_config(str(engine.url), sources={"zd": source})


def run_sync(
    engine: Engine,
    cfg: Config,
    zd: FakeZendesk,
    sleep: Sleeper | None = None,
    on_page: Any = None,
) -> sync_mod.SyncResult:
    sleep = sleep or Sleeper()
    kind, connector, http = sources_mod.open_connector(
        cfg, "zd", now=zd.now, sleep=sleep, monotonic=sleep.monotonic
    )
    with http:
        return sync_mod.sync(engine, "zd", kind, connector, lambda: datetime.now(UTC), on_page)


def held(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(complaints).where(complaints.c.source == "zd"))
        return {
            r.external_id: {
                "created_at": r.created_at,
                "closed_at": r.closed_at,
                "queue": r.queue,
                "status": r.status,
                "excluded_reason": r.excluded_reason,
                "source_updated_at": r.source_updated_at,
            }
            for r in rows
        }


def row(engine: Engine, external_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(complaints).where(
                complaints.c.source == "zd", complaints.c.external_id == external_id
            )
        ).one()


def cursor_of(engine: Engine) -> dict[str, Any] | None:
    with engine.connect() as conn:
        raw = conn.execute(
            select(sources_table.c.cursor).where(sources_table.c.name == "zd")
        ).scalar()
    return json.loads(raw) if raw else None


def queries(zd: FakeZendesk) -> list[dict[str, list[str]]]:
    return [parse_qs(urlsplit(path).query) for _, path, _ in zd.requests]


def seed(zd: FakeZendesk, n: int, start: int = 1) -> None:
    rng = random.Random(n + start)
    for i in range(start, start + n):
        zd.create(
            i,
            T0 + timedelta(minutes=17 * i),
            group=rng.choice([360001, 360002]),
            status=rng.choice(["new", "open", "pending", "solved", "closed"]),
        )


def test_full_sync_then_changes_converge_to_the_source(engine: Engine, zd: FakeZendesk) -> None:
    seed(zd, 250)
    cfg = config(engine, zd, page_size=100)
    first = run_sync(engine, cfg, zd)
    assert first.ok and first.counts.new == 250 and first.pages == 3
    assert held(engine) == zd.truth()
    asked = queries(zd)
    assert asked[0]["start_time"] == ["0"] and "cursor" not in asked[0]
    assert all("start_time" not in q and q["cursor"] for q in asked[1:])
    assert all(q["include"] == ["metric_sets"] and q["per_page"] == ["100"] for q in asked)
    assert all("exclude_deleted" not in q for q in asked)  # deleted tickets are wanted

    status = {i: t["status"] for i, t in zd.tickets.items()}
    opened = [i for i, s in status.items() if s in ("new", "open")]
    solved = [i for i, s in status.items() if s == "solved"]
    zd.set_status(opened[0], "solved")
    zd.set_status(opened[1], "closed")
    for ticket_id in solved[:2]:
        zd.set_status(ticket_id, "open")  # reopened: Zendesk keeps solved_at
    zd.move(opened[2], 360003)
    zd.delete(opened[3])
    zd.merge_away(opened[4])
    zd.system_update(opened[5])
    seed(zd, 5, start=1000)
    zd.requests.clear()
    second = run_sync(engine, cfg, zd)
    assert second.ok and second.counts.new == 5 and second.pages == 1
    assert held(engine) == zd.truth()
    now = held(engine)
    for ticket_id in solved[:2]:
        assert now[str(ticket_id)]["closed_at"] is None
        assert zd.tickets[ticket_id]["solved_at"] is not None
    assert now[str(opened[2])]["queue"] == "VIP"
    assert now[str(opened[3])]["excluded_reason"] == "deleted"
    assert now[str(opened[4])]["excluded_reason"] == "merged"
    system = zd.tickets[opened[5]]
    assert now[str(opened[5])]["source_updated_at"] > system["updated_at"]


def test_a_later_run_resumes_from_the_stored_cursor(engine: Engine, zd: FakeZendesk) -> None:
    seed(zd, 30)
    cfg = config(engine, zd)
    assert run_sync(engine, cfg, zd).ok
    stored = cursor_of(engine)
    assert stored is not None and set(stored) == {"after_cursor"}
    zd.requests.clear()
    quiet = run_sync(engine, cfg, zd)
    assert quiet.ok and quiet.pages == 0
    assert queries(zd) == [
        {"cursor": [stored["after_cursor"]], "include": ["metric_sets"], "per_page": ["1000"]}
    ]
    assert cursor_of(engine) == stored


def test_many_tickets_sharing_one_timestamp_are_neither_skipped_nor_looped(
    engine: Engine, zd: FakeZendesk
) -> None:
    for i in range(1, 231):
        zd.create(i, T0)
    for ticket in zd.tickets.values():
        ticket["generated"] = int(zd.clock.timestamp())
    result = run_sync(engine, config(engine, zd, page_size=100), zd)
    assert result.ok and result.counts.new == 230 and result.pages == 3
    assert held(engine) == zd.truth()


def test_a_ticket_changed_during_the_sync_shows_up_twice_and_the_newest_wins(
    engine: Engine, zd: FakeZendesk
) -> None:
    seed(zd, 250)
    cfg = config(engine, zd, page_size=100)
    touched: list[int] = []

    def solve_a_first_page_ticket(result: sync_mod.SyncResult, page: Any) -> None:
        if result.pages == 1:
            ticket_id = next(
                int(r.external_id) for r in page.records if r.status in ("new", "open")
            )
            zd.set_status(ticket_id, "solved")
            touched.append(ticket_id)

    result = run_sync(engine, cfg, zd, on_page=solve_a_first_page_ticket)
    assert result.ok and touched
    assert result.counts.new == 250 and result.counts.changed == 1  # seen on two pages
    assert held(engine) == zd.truth()
    assert held(engine)[str(touched[0])]["closed_at"] == zd.tickets[touched[0]]["solved_at"]


def test_the_last_minute_is_held_back_and_read_on_the_next_run(
    engine: Engine, zd: FakeZendesk
) -> None:
    seed(zd, 20)
    cfg = config(engine, zd)
    zd.present = zd.clock + timedelta(seconds=30)  # the last change is 30 s old
    first = run_sync(engine, cfg, zd)
    assert first.ok and len(held(engine)) == 19
    zd.present = zd.clock + timedelta(minutes=2)
    second = run_sync(engine, cfg, zd)
    assert second.ok and second.counts.new == 1
    assert held(engine) == zd.truth()


def test_a_start_time_in_the_last_minute_is_moved_back(engine: Engine, zd: FakeZendesk) -> None:
    seed(zd, 3)
    zd.present = zd.clock + timedelta(minutes=10)
    cfg = config(engine, zd, initial_since=zd.present.isoformat())
    result = run_sync(engine, cfg, zd)
    assert result.ok  # the fake answers 400 to a start_time within the last minute
    start = int(queries(zd)[0]["start_time"][0])
    assert start <= int((zd.present - timedelta(minutes=1)).timestamp())


def test_initial_since_starts_the_first_export(engine: Engine, zd: FakeZendesk) -> None:
    seed(zd, 200)  # created every 17 minutes from T0
    result = run_sync(engine, config(engine, zd, initial_since="2026-03-02"), zd)
    since = datetime(2026, 3, 2, tzinfo=UTC)
    assert result.ok
    assert queries(zd)[0]["start_time"] == [str(int(since.timestamp()))]
    assert held(engine) == {k: v for k, v in zd.truth().items() if v["created_at"] >= since}


def test_rate_limit_and_server_errors_are_retried(engine: Engine, zd: FakeZendesk) -> None:
    seed(zd, 120)
    zd.fail_next("429", 7)
    zd.fail_next("500")
    sleeper = Sleeper()
    result = run_sync(engine, config(engine, zd, page_size=50), zd, sleep=sleeper)
    assert result.ok and result.counts.new == 120
    assert 7.0 in sleeper.calls  # waited as long as Retry-After said
    assert held(engine) == zd.truth()


def test_the_budget_stays_under_the_export_limit_and_pages_are_capped(
    engine: Engine, zd: FakeZendesk
) -> None:
    settings = ZendeskSettings(url="https://acme.zendesk.com", email=EMAIL, token_env="ZD_TOKEN")
    assert settings.rate_limit <= 10  # Zendesk: 10 requests a minute on the export
    assert settings.page_size == 1000
    with pytest.raises(ConfigError, match="page_size"):
        config(engine, zd, page_size=1001)
    seed(zd, 2100)
    sleeper = Sleeper()
    result = run_sync(engine, config(engine, zd), zd, sleep=sleeper)
    assert result.ok and result.counts.new == 2100 and result.pages == 3
    assert [q["per_page"] for q in queries(zd)] == [["1000"]] * 3
    # Three requests at the default 8 a minute: the second and third each wait 7.5 s.
    assert sleeper.calls == [7.5, 7.5]


def test_a_malformed_page_never_advances_the_cursor(engine: Engine, zd: FakeZendesk) -> None:
    seed(zd, 150)
    cfg = config(engine, zd, page_size=100)
    assert run_sync(engine, cfg, zd).ok
    before = cursor_of(engine)
    seed(zd, 10, start=500)
    zd.fail_next("malformed")
    failed = run_sync(engine, cfg, zd)
    assert not failed.ok and not failed.permanent
    assert failed.error is not None
    assert "not JSON" in failed.error and "/api/v2/incremental/tickets/cursor.json" in failed.error
    assert TOKEN not in failed.error
    assert cursor_of(engine) == before
    assert len(held(engine)) == 150
    assert run_sync(engine, cfg, zd).ok
    assert held(engine) == zd.truth()


def test_a_bad_field_names_the_ticket_and_the_field(engine: Engine, zd: FakeZendesk) -> None:
    seed(zd, 3)
    zd.tickets[2]["created_at"] = "yesterday"
    result = run_sync(engine, config(engine, zd), zd)
    assert not result.ok and not result.permanent and result.error is not None
    assert (
        "zd: " in result.error and "ticket 2: created_at: cannot read 'yesterday'" in result.error
    )
    assert "/api/v2/incremental/tickets/cursor.json" in result.error
    assert TOKEN not in result.error
    assert held(engine) == {} and cursor_of(engine) is None


@pytest.mark.parametrize(
    ("env", "status"), [("ZD_BAD", "HTTP 401"), ("ZD_AGENT", "HTTP 403")], ids=["401", "403"]
)
def test_refused_credentials_are_permanent(
    engine: Engine, zd: FakeZendesk, env: str, status: str
) -> None:
    seed(zd, 5)
    result = run_sync(engine, config(engine, zd, token_env=env), zd)
    assert not result.ok and result.permanent and result.error is not None
    assert status in result.error
    assert TOKEN not in result.error and AGENT not in result.error
    assert "wrong-token" not in result.error
    assert len(zd.requests) == 1  # not retried
    assert held(engine) == {}


def test_an_oauth_token_is_sent_as_bearer(engine: Engine, zd: FakeZendesk) -> None:
    seed(zd, 12)
    result = run_sync(engine, config(engine, zd, oauth_token_env="ZD_OAUTH"), zd)
    assert result.ok and result.counts.new == 12
    assert zd.requests[0][2]["authorization"] == f"Bearer {OAUTH}"
    assert held(engine) == zd.truth()


def test_credentials_are_one_of_token_or_oauth(engine: Engine, zd: FakeZendesk) -> None:
    url = str(engine.url)
    base = {"kind": "zendesk", "url": zd.url}
    with pytest.raises(ConfigError, match="oauth_token_env"):
        make_config(url, sources={"zd": base})
    with pytest.raises(ConfigError, match="oauth_token_env"):
        make_config(
            url,
            sources={"zd": {**base, "email": EMAIL, "token_env": "A", "oauth_token_env": "B"}},
        )
    with pytest.raises(ConfigError, match="email is required"):
        make_config(url, sources={"zd": {**base, "token_env": "ZD_TOKEN"}})


def test_backfill_is_resumable_and_keeps_tickets_changed_after_the_window(
    engine: Engine, zd: FakeZendesk
) -> None:
    seed(zd, 330)  # created every 17 minutes from T0
    window = SyncWindow(T0 + timedelta(days=1), T0 + timedelta(days=3))
    inside = [i for i, t in zd.tickets.items() if window.since <= t["created_at"] < window.until]
    early = next(i for i in zd.tickets if i not in inside)
    late = next(i for i in inside if zd.tickets[i]["status"] in ("new", "open", "pending"))
    zd.set_status(late, "solved")  # created in the window, changed after it ends
    zd.move(early, 360003)  # created before the window, changed since
    cfg = config(engine, zd, page_size=100, max_retries=2)

    def backfill() -> sync_mod.SyncResult:
        kind, connector, http = sources_mod.open_connector(cfg, "zd", now=zd.now, sleep=Sleeper())
        with http:
            return sync_mod.backfill(engine, "zd", kind, connector, window, lambda: T0)

    zd.fail_next("ok")  # the first page comes through, then the server is down
    for _ in range(3):
        zd.fail_next("500")
    first = backfill()
    assert not first.ok and not first.permanent and first.pages == 1
    assert first.error is not None and "HTTP 500" in first.error
    zd.requests.clear()
    second = backfill()
    assert second.ok
    resumed = queries(zd)[0]
    assert "start_time" not in resumed and resumed["cursor"]  # from the checkpoint
    truth = {k: v for k, v in zd.truth().items() if int(k) in inside}
    assert len(truth) == len(inside) > 100
    assert held(engine) == truth
    assert held(engine)[str(late)]["closed_at"] is not None
    assert cursor_of(engine) is None  # the incremental cursor was never moved


def test_closure_can_be_the_closed_status(engine: Engine, zd: FakeZendesk) -> None:
    seed(zd, 60)
    solved = [i for i, t in zd.tickets.items() if t["status"] == "solved"][:5]
    for ticket_id in solved:
        zd.tick(3600)
        zd.set_status(ticket_id, "closed")  # Zendesk closes solved tickets days later
    result = run_sync(engine, config(engine, zd, closed_at_from="closed"), zd)
    assert result.ok
    assert held(engine) == zd.truth(closed_from="closed")
    for ticket_id in solved:
        ticket = zd.tickets[ticket_id]
        assert held(engine)[str(ticket_id)]["closed_at"] == ticket["status_updated_at"]
        assert ticket["status_updated_at"] > ticket["solved_at"]
    statuses = {v["status"] for v in held(engine).values() if v["closed_at"] is None}
    assert "solved" in statuses


def test_metric_sets_sideloaded_at_the_top_are_read_too(engine: Engine, zd: FakeZendesk) -> None:
    seed(zd, 40)
    for ticket_id, ticket in zd.tickets.items():
        if ticket["status"] in ("solved", "closed"):
            zd.move(ticket_id, 360003)  # a change after the solve: updated_at is not solved_at
    zd.metric_layout = "top"
    result = run_sync(engine, config(engine, zd), zd)
    assert result.ok and held(engine) == zd.truth()
    assert any(v["closed_at"] for v in held(engine).values())


def test_a_reopened_and_resolved_ticket_keeps_its_first_solve(
    engine: Engine, zd: FakeZendesk
) -> None:
    zd.create(1, T0, status="open")
    zd.tick(3600)
    zd.set_status(1, "solved")
    first_solve = zd.tickets[1]["solved_at"]
    zd.tick(3600)
    zd.set_status(1, "open")
    zd.tick(3600)
    zd.set_status(1, "solved")
    assert run_sync(engine, config(engine, zd), zd).ok
    stored = row(engine, "1")
    assert stored.closed_at == zd.tickets[1]["solved_at"] > first_solve
    assert first_solve - timedelta(minutes=1) < stored.first_closed_at <= first_solve


def test_a_server_that_never_ends_the_stream_does_not_loop(engine: Engine, zd: FakeZendesk) -> None:
    seed(zd, 10)
    zd.stuck = True
    result = run_sync(engine, config(engine, zd), zd)
    assert result.ok and len(zd.requests) == 2
    assert held(engine) == zd.truth()


def test_filter_and_segments(engine: Engine, zd: FakeZendesk) -> None:
    zd.create(1, T0, kind="incident", channel="web", priority="high")
    zd.create(2, T0, kind="question")
    zd.create(3, T0, kind="incident", group=424242, priority=None)
    cfg = config(engine, zd, filter={"type": "incident"}, map={"category": "cf:900"})
    result = run_sync(engine, cfg, zd)
    assert result.ok and result.skipped == 1 and result.counts.new == 2
    one, three = row(engine, "1"), row(engine, "3")
    assert (one.queue, one.channel, one.category, one.priority) == (
        "Billing",
        "web",
        "product-1",
        "high",
    )
    assert one.url == f"{zd.url}/agent/tickets/1" and one.subject == "Complaint 1"
    assert (three.queue, three.priority) == ("424242", "")

"""Sync from Jira Cloud and Jira Data Center, against a fake Jira served over real HTTP."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, select

import slamon.connectors.jira  # noqa: F401  (registers the "jira" kind)
from fakes.clock import Sleeper
from fakes.jira import EMAIL, PAT, TOKEN, FakeJira
from helpers import make_config
from slamon import sources as sources_mod
from slamon import sync as sync_mod
from slamon.connectors.base import SyncWindow
from slamon.connectors.jira import JiraConnector, JiraSettings, ceil_wall, floor_wall
from slamon.store.models import complaints
from slamon.store.models import sources as sources_table

T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
BASE_JQL = "project in (SUP, VIP) AND issuetype = Complaint"
FLAVORS = pytest.mark.parametrize("flavor", ["cloud", "datacenter"])


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, FakeJira]]:
    """One fake per flavor for the whole module (stopping a server costs half a second)."""
    started = {flavor: FakeJira(flavor) for flavor in ("cloud", "datacenter")}
    for api in started.values():
        api.start()
    try:
        yield started
    finally:
        for api in started.values():
            api.stop()


@pytest.fixture
def make_jira(servers: dict[str, FakeJira]) -> Callable[..., FakeJira]:
    def make(flavor: str = "cloud", **options: Any) -> FakeJira:
        api = servers[flavor]
        api.reset(**options)
        return api

    return make


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_TOKEN", TOKEN)
    monkeypatch.setenv("JIRA_PAT", PAT)
    monkeypatch.setenv("JIRA_WRONG", "not-the-t0ken")


def config(engine: Engine, api: FakeJira, **extra: Any):
    source: dict[str, Any] = {
        "kind": "jira",
        "url": api.url,
        "flavor": api.flavor,
        "jql": BASE_JQL,
        "excluded_statuses": {"Spam": "spam"},
        "map": {"channel": "customfield_10050"},
    }
    if api.flavor == "cloud":
        source.update(email=EMAIL, token_env="JIRA_TOKEN")
    else:
        source.update(pat_env="JIRA_PAT")
    source.update(extra)
    return make_config(str(engine.url), sources={"jr": source})


def run_sync(engine: Engine, cfg, sleep: Sleeper | None = None, on_page=None, now=None):
    sleep = sleep or Sleeper()
    kind, connector, http = sources_mod.open_connector(
        cfg, "jr", now=now or datetime.now(UTC), sleep=sleep, monotonic=sleep.monotonic
    )
    with http:
        return sync_mod.sync(engine, "jr", kind, connector, lambda: datetime.now(UTC), on_page)


def held(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(complaints).where(complaints.c.source == "jr"))
        return {
            r.external_id: {
                "created_at": r.created_at,
                "closed_at": r.closed_at,
                "queue": r.queue,
                "channel": r.channel,
                "category": r.category,
                "priority": r.priority,
                "status": r.status,
                "excluded_reason": r.excluded_reason,
                "source_updated_at": r.source_updated_at,
            }
            for r in rows
        }


def wanted(api: FakeJira) -> dict[str, dict[str, Any]]:
    """The fake's truth, limited to what BASE_JQL selects."""
    return {
        k: v
        for k, v in api.truth().items()
        if v["queue"] in ("SUP", "VIP") and v["category"] == "Complaint"
    }


def cursor_of(engine: Engine) -> dict | None:
    with engine.connect() as conn:
        raw = conn.execute(
            select(sources_table.c.cursor).where(sources_table.c.name == "jr")
        ).scalar()
    return json.loads(raw) if raw else None


def seed(api: FakeJira, n: int, *, outsiders: bool = True) -> list[int]:
    rng = random.Random(n)
    ids = []
    for i in range(n):
        status = rng.choice(["Open", "In Progress", "Resolved", "Closed"])
        ids.append(
            api.create(
                T0 + timedelta(minutes=17 * i),
                project=rng.choice(["SUP", "VIP"]),
                channel=rng.choice(["Email", "Phone", "Portal"]),
                priority=rng.choice(["High", "Medium", "Low"]),
                status=status,
                resolution="Fixed" if status in ("Resolved", "Closed") else None,
            )
        )
        if outsiders and i % 25 == 0:  # not complaints, or another project: left out by the jql
            api.create(T0 + timedelta(minutes=17 * i), issuetype="Task")
            api.create(T0 + timedelta(minutes=17 * i), project="OPS")
    return ids


def same_minute(api: FakeJira, ids: list[int]) -> datetime:
    """Give all ``ids`` one updated time, as a bulk edit does."""
    at = api.tick(3600)
    for i in ids:
        api.issues[i]["updated"] = at
    return at


def searched(api: FakeJira) -> list[str]:
    return [q.get("jql", "") for q in api.searches]


# --- convergence ----------------------------------------------------------------------------


@FLAVORS
def test_full_sync_then_changes_converge_to_the_source(
    engine: Engine, make_jira: Callable[..., FakeJira], flavor: str
):
    api = make_jira(flavor)
    ids = seed(api, 250)
    cfg = config(engine, api)
    first = run_sync(engine, cfg)
    assert first.ok, first.error
    assert first.counts.new == 250
    assert first.counts.unchanged == 0  # the minutes read again are not delivered twice
    assert held(engine) == wanted(api)
    assert all(j.endswith("ORDER BY updated ASC, key ASC") for j in searched(api))
    assert all(j.startswith(f"({BASE_JQL}) AND updated >= ") for j in searched(api))
    assert all("resolutiondate" in q["fields"].split(",") for q in api.searches)

    open_ = [i for i in ids if api.issues[i]["status"] == "Open"]
    resolved = [i for i in ids if api.issues[i]["status"] == "Resolved"]
    api.transition(open_[0], "Resolved", "Fixed")  # closed
    api.transition(resolved[0], "In Progress")  # reopened: the workflow clears the resolution
    api.transition(resolved[1], "Open", clear=False)  # reopened, resolution (and date) kept
    api.transition(open_[1], "Closed")  # done without a resolution: the workflow forgot it
    api.transition(open_[2], "Closed", "Duplicate")  # merged
    api.transition(open_[3], "Spam")  # spam
    moved = next(i for i in ids if api.issues[i]["project"] == "SUP")
    old_key = api.key(moved)
    api.move(moved, "VIP")  # a new key, the same id
    gone = open_[4]
    before = held(engine)[str(gone)]
    api.delete(gone)  # vanishes from search, no tombstone
    new = [api.create(api.clock - timedelta(minutes=3)) for _ in range(5)]

    second = run_sync(engine, cfg)
    assert second.ok, second.error
    assert second.counts.new == 5
    now_held = held(engine)
    assert now_held.pop(str(gone)) == before  # kept as last seen
    assert now_held == wanted(api)
    assert now_held[str(resolved[0])]["closed_at"] is None
    assert now_held[str(resolved[1])]["closed_at"] is None
    assert api.issues[resolved[1]]["resolutiondate"] is not None
    assert now_held[str(open_[1])]["closed_at"] is not None
    assert now_held[str(open_[2])]["excluded_reason"] == "merged"
    assert now_held[str(open_[3])]["excluded_reason"] == "spam"
    assert now_held[str(moved)]["queue"] == "VIP" and api.key(moved) != old_key
    assert all(str(i) in now_held for i in new)


@FLAVORS
def test_many_issues_in_one_minute_are_neither_skipped_nor_looped(
    engine: Engine, make_jira: Callable[..., FakeJira], flavor: str
):
    api = make_jira(flavor)
    at = same_minute(api, seed(api, 230, outsiders=False))
    result = run_sync(engine, config(engine, api))
    assert result.ok, result.error
    assert result.counts.new == 230
    assert len(api.searches) == 3  # the dense minute is walked by the server's own paging
    assert held(engine) == wanted(api)
    # Nothing moved meanwhile: the cursor is not held back at the dense minute.
    assert cursor_of(engine) == {"since": at.replace(microsecond=0).isoformat()}


@FLAVORS
def test_a_ticket_changed_during_the_sync_shows_up_twice_and_the_newest_wins(
    engine: Engine, make_jira: Callable[..., FakeJira], flavor: str
):
    api = make_jira(flavor)
    seed(api, 250, outsiders=False)
    touched: list[int] = []

    def change_first_page_issue(result: sync_mod.SyncResult, page) -> None:
        if result.pages == 1:
            issue_id = int(page.records[3].external_id)
            api.transition(issue_id, "Closed", "Won't Do")
            touched.append(issue_id)

    result = run_sync(engine, config(engine, api), on_page=change_first_page_issue)
    assert result.ok and touched
    assert result.counts.new == 250 and result.counts.changed == 1  # seen on two pages
    assert held(engine) == wanted(api)
    assert held(engine)[str(touched[0])]["status"] == "Closed"


def test_cloud_a_shift_inside_a_dense_minute_holds_the_cursor_until_read(
    engine: Engine, make_jira: Callable[..., FakeJira]
):
    """Cloud's nextPageToken is followed through a minute holding more than a page; if an issue
    already read there changes, the token pages may shift past one (the fake's tokens are plain
    offsets, the least favourable reading): the cursor stays at that minute until it is read."""
    api = make_jira("cloud")
    ids = seed(api, 250, outsiders=False)
    dense_at = same_minute(api, ids)
    cfg = config(engine, api)
    order = sorted(ids, key=lambda i: (api.issues[i]["project"], api.issues[i]["number"]))
    victim = order[100]  # first of the second page: skipped when page one loses an issue

    def modify_on_first_page(result: sync_mod.SyncResult, page) -> None:
        if result.pages == 1:
            api.touch(order[5])

    first = run_sync(engine, cfg, on_page=modify_on_first_page)
    assert first.ok, first.error
    assert str(victim) not in held(engine)  # the shift happened...
    since = datetime.fromisoformat(cursor_of(engine)["since"])
    assert since <= dense_at.replace(second=0, microsecond=0)  # ...and the cursor was held
    second = run_sync(engine, cfg)
    assert second.ok
    assert held(engine) == wanted(api)


def test_cloud_an_interrupted_run_resumes_at_a_dense_minute_it_walked(
    engine: Engine, make_jira: Callable[..., FakeJira]
):
    """A changed issue of a dense minute only turns up at the end of the walk: a run that stops
    before then leaves the cursor at that minute, not at the last page stored."""
    api = make_jira("cloud")
    ids = seed(api, 250, outsiders=False)
    dense_at = same_minute(api, ids)
    later = []
    for _ in range(150):
        api.tick(10)
        later.append(api.create(T0))
    order = sorted(ids, key=lambda i: (api.issues[i]["project"], api.issues[i]["number"]))
    cfg = config(engine, api, max_retries=0)

    def modify_on_first_page(result: sync_mod.SyncResult, page) -> None:
        if result.pages == 1:
            api.touch(order[5])

    for _ in range(4):
        api.fail_next("ok")
    api.fail_next("500")
    first = run_sync(engine, cfg, on_page=modify_on_first_page)
    assert not first.ok and first.pages == 4
    assert str(later[60]) in held(engine)  # the run got well past the dense minute...
    since = datetime.fromisoformat(cursor_of(engine)["since"])
    assert since <= dense_at.replace(second=0, microsecond=0)  # ...but the cursor did not
    assert run_sync(engine, cfg).ok
    assert held(engine) == wanted(api)


def test_datacenter_checks_each_dense_page_still_follows_the_last(
    engine: Engine, make_jira: Callable[..., FakeJira]
):
    """Data Center pages a dense minute by startAt, re-reading the previous page's last issue:
    an issue deleted from an earlier page moves the list, and nothing is skipped."""
    api = make_jira("datacenter")
    ids = seed(api, 250, outsiders=False)
    dense_at = same_minute(api, ids)
    cfg = config(engine, api)
    gone: list[str] = []

    def delete_on_first_page(result: sync_mod.SyncResult, page) -> None:
        if result.pages == 1:
            gone.append(page.records[5].external_id)
            api.delete(int(gone[0]))

    result = run_sync(engine, cfg, on_page=delete_on_first_page)
    assert result.ok, result.error
    now_held = held(engine)
    assert now_held.pop(gone[0])
    assert now_held == wanted(api)
    since = datetime.fromisoformat(cursor_of(engine)["since"])
    assert since <= dense_at.replace(second=0, microsecond=0)  # read again next run
    # Each dense page starts one back, at the previous page's last issue.
    assert [int(q["startAt"]) for q in api.searches] == [0, 99, 199]


# --- faults ---------------------------------------------------------------------------------


@FLAVORS
def test_rate_limits_and_server_errors_are_retried(
    engine: Engine, make_jira: Callable[..., FakeJira], flavor: str
):
    api = make_jira(flavor)
    seed(api, 120, outsiders=False)
    api.fail_next("429", 7)
    api.fail_next("500")
    api.overloads.append(11)  # a 503 with Retry-After, which Jira sends when overloaded
    sleeper = Sleeper()
    result = run_sync(engine, config(engine, api), sleep=sleeper)
    assert result.ok, result.error
    assert 7.0 in sleeper.calls and 11.0 in sleeper.calls  # waited as long as Retry-After said
    assert held(engine) == wanted(api)


def test_the_default_budget_stays_under_two_requests_a_second(
    engine: Engine, make_jira: Callable[..., FakeJira]
):
    api = make_jira("cloud")
    seed(api, 250, outsiders=False)
    sleeper = Sleeper()
    assert run_sync(engine, config(engine, api), sleep=sleeper).ok
    assert len(api.searches) >= 3
    assert sleeper.calls == [0.5] * (len(api.searches) - 1)


@FLAVORS
def test_a_malformed_page_never_advances_the_cursor(
    engine: Engine, make_jira: Callable[..., FakeJira], flavor: str
):
    api = make_jira(flavor)
    seed(api, 150, outsiders=False)
    cfg = config(engine, api)
    assert run_sync(engine, cfg).ok
    before = cursor_of(engine)
    seed(api, 10, outsiders=False)
    api.fail_next("malformed")
    failed = run_sync(engine, cfg)
    assert not failed.ok and not failed.permanent
    path = "/rest/api/3/search/jql" if flavor == "cloud" else "/rest/api/2/search"
    assert "not JSON" in failed.error and path in failed.error and "jql=" in failed.error
    assert TOKEN not in failed.error and PAT not in failed.error
    assert cursor_of(engine) == before
    assert len(held(engine)) == 150
    assert run_sync(engine, cfg).ok
    assert held(engine) == wanted(api)


@FLAVORS
def test_a_missing_or_unreadable_field_names_the_issue_and_field(
    engine: Engine, make_jira: Callable[..., FakeJira], flavor: str
):
    api = make_jira(flavor)
    ids = seed(api, 3, outsiders=False)
    api.overrides[ids[1]] = {"created": None}
    cfg = config(engine, api)
    result = run_sync(engine, cfg)
    assert not result.ok and not result.permanent
    assert f"issue {api.key(ids[1])} (id {ids[1]}): fields.created is missing" in result.error
    assert "jr: " in result.error and "/rest/api/" in result.error
    assert held(engine) == {} and cursor_of(engine) is None

    api.overrides[ids[1]] = {"updated": "yesterday"}
    result = run_sync(engine, cfg)
    assert "fields.updated: cannot read 'yesterday' as a time" in result.error
    assert held(engine) == {} and cursor_of(engine) is None


@FLAVORS
def test_bad_credentials_are_permanent(
    engine: Engine, make_jira: Callable[..., FakeJira], flavor: str
):
    api = make_jira(flavor)
    seed(api, 5, outsiders=False)
    secret = {"token_env": "JIRA_WRONG"} if flavor == "cloud" else {"pat_env": "JIRA_WRONG"}
    result = run_sync(engine, config(engine, api, **secret))
    assert not result.ok and result.permanent
    assert "HTTP 401" in result.error and "credentials" in result.error
    assert "not-the-t0ken" not in result.error
    assert held(engine) == {}


def test_cloud_searches_the_enhanced_endpoint(engine: Engine, make_jira: Callable[..., FakeJira]):
    api = make_jira("cloud")
    seed(api, 5, outsiders=False)
    assert run_sync(engine, config(engine, api)).ok
    assert {path.split("?")[0] for _, path, _ in api.requests} == {"/rest/api/3/search/jql"}
    assert all(q["maxResults"] == "100" and "startAt" not in q for q in api.searches)


# --- backfill -------------------------------------------------------------------------------


@FLAVORS
def test_backfill_is_resumable_and_leaves_the_cursor_alone(
    engine: Engine, make_jira: Callable[..., FakeJira], flavor: str
):
    api = make_jira(flavor, profile_tz="Europe/Berlin")
    seed(api, 330)
    cfg = config(engine, api, max_retries=2, jql_timezone="Europe/Berlin")
    # Issue i is created at T0 + 17 i minutes: the window holds i = 19 .. 253.
    window = SyncWindow(
        T0 + timedelta(minutes=17 * 18, seconds=30), T0 + timedelta(minutes=17 * 254)
    )

    def backfill():
        kind, connector, http = sources_mod.open_connector(cfg, "jr", now=T0, sleep=Sleeper())
        with http:
            return sync_mod.backfill(engine, "jr", kind, connector, window, lambda: T0)

    api.fail_next("ok")  # the first page comes through, then the server is down
    for _ in range(3):
        api.fail_next("500")
    first = backfill()
    assert not first.ok and not first.permanent and first.pages == 1
    assert "HTTP 500" in first.error and "gave up after 3 tries" in first.error
    assert first.skipped == 1  # i = 18: the minute bound fetched it, the window leaves it out
    assert len(held(engine)) == 99
    last_created = max(v["created_at"] for v in held(engine).values())
    api.searches.clear()
    second = backfill()
    assert second.ok, second.error
    resumed = api.searches[0]["jql"]
    local = last_created.astimezone(ZoneInfo("Europe/Berlin")).strftime("%Y/%m/%d %H:%M")
    assert f'created >= "{local}"' in resumed  # from the checkpoint, in the profile zone
    assert 'created < "2026/02/04 09:58"' in resumed  # until (08:58 UTC), in Berlin time
    truth = {k: v for k, v in wanted(api).items() if window.since <= v["created_at"] < window.until}
    assert len(truth) == 235
    assert held(engine) == truth
    assert cursor_of(engine) is None  # the incremental cursor was never moved


# --- the vendor's limits --------------------------------------------------------------------


def test_datacenter_page_cap_and_result_window_are_honoured(
    engine: Engine, make_jira: Callable[..., FakeJira]
):
    api = make_jira("datacenter", page_cap=40, result_window=300)
    seed(api, 450, outsiders=False)
    cfg = config(engine, api, max_result_window=300)
    result = run_sync(engine, cfg)
    assert result.ok, result.error
    assert api.window_errors == 0
    assert all(int(q["startAt"]) + int(q["maxResults"]) <= 300 for q in api.searches)
    assert held(engine) == wanted(api)


def test_more_issues_in_one_minute_than_the_window_is_a_clear_error(
    engine: Engine, make_jira: Callable[..., FakeJira]
):
    api = make_jira("datacenter", result_window=300)
    same_minute(api, seed(api, 400, outsiders=False))
    result = run_sync(engine, config(engine, api, max_result_window=300))
    assert not result.ok and result.permanent
    assert "more than 300 issues" in result.error and "max_result_window" in result.error
    assert api.window_errors == 0 and len(api.searches) == 3  # no 500, no loop
    assert len(held(engine)) == 300  # three pages of 100 (the window holds 300)


def test_cloud_pages_smaller_than_asked_are_followed(
    engine: Engine, make_jira: Callable[..., FakeJira]
):
    api = make_jira("cloud", page_cap=60)
    same_minute(api, seed(api, 300, outsiders=False)[:200])
    result = run_sync(engine, config(engine, api, page_size=1000))
    assert result.ok, result.error
    assert all(q["maxResults"] == "1000" for q in api.searches)
    assert any("nextPageToken" in q for q in api.searches)
    assert held(engine) == wanted(api)


def test_a_jsm_request_type_can_be_the_queue(engine: Engine, make_jira: Callable[..., FakeJira]):
    api = make_jira("cloud")
    ids = seed(api, 3, outsiders=False)
    api.overrides[ids[0]] = {"customfield_10010": {"requestType": {"id": "7", "name": "Billing"}}}
    queue = "customfield_10010.requestType.name"
    assert run_sync(engine, config(engine, api, map={"queue": queue, "channel": ""})).ok
    assert "customfield_10010" in api.searches[0]["fields"].split(",")
    queues = {k: (v["queue"], v["channel"]) for k, v in held(engine).items()}
    assert queues == {str(ids[0]): ("Billing", ""), str(ids[1]): ("", ""), str(ids[2]): ("", "")}


def test_the_watermark_never_passes_the_start_of_the_run(
    engine: Engine, make_jira: Callable[..., FakeJira]
):
    """An issue changed just before the run but not searchable yet is found by the next run,
    even when later changes were read meanwhile."""
    api = make_jira("cloud")
    seed(api, 20, outsiders=False)
    lagging = api.create(T0)
    api.unindexed.add(lagging)
    started = api.tick(60)
    for _ in range(30):  # written while the run goes on
        api.tick(60)
        api.create(T0)
    cfg = config(engine, api)
    assert run_sync(engine, cfg, now=started).ok
    assert cursor_of(engine) == {"since": started.replace(microsecond=0).isoformat()}
    api.unindexed.clear()
    assert run_sync(engine, cfg).ok
    assert held(engine) == wanted(api)


# --- time zones -----------------------------------------------------------------------------


@FLAVORS
def test_jql_literals_are_written_in_the_api_users_timezone(
    engine: Engine, make_jira: Callable[..., FakeJira], flavor: str
):
    api = make_jira(flavor, profile_tz="America/New_York")
    seed(api, 40, outsiders=False)
    right = config(engine, api, jql_timezone="America/New_York")
    assert run_sync(engine, right).ok
    since = datetime.fromisoformat(cursor_of(engine)["since"]) - timedelta(minutes=5)
    api.searches.clear()
    changed = seed(api, 3, outsiders=False)
    assert run_sync(engine, right).ok
    local = since.astimezone(ZoneInfo("America/New_York")).strftime("%Y/%m/%d %H:%M")
    assert f'updated >= "{local}"' in api.searches[0]["jql"]
    assert held(engine) == wanted(api)

    # The same literal read as UTC (the pitfall): New York is 5 hours behind, so the search
    # starts 5 hours late and the latest change is not found.
    wrong = config(engine, api, jql_timezone="UTC")
    api.transition(changed[0], "Closed", "Fixed")
    assert run_sync(engine, wrong).ok
    assert held(engine) != wanted(api)
    assert run_sync(engine, right).ok
    assert held(engine) == wanted(api)


def test_literals_around_a_dst_fall_back_never_narrow_the_search():
    berlin = ZoneInfo("Europe/Berlin")  # 2026-10-25 01:00 UTC: 03:00 CEST becomes 02:00 CET
    first = datetime(2026, 10, 25, 0, 30, 45, tzinfo=UTC)  # 02:30:45 CEST
    second = datetime(2026, 10, 25, 1, 30, 45, tzinfo=UTC)  # 02:30:45 CET
    # "02:30" could mean 00:30 or 01:30 UTC: as a lower bound for the first it could cut it off.
    assert floor_wall(first, berlin) == datetime(2026, 10, 25, 1, 59)
    assert floor_wall(second, berlin) == datetime(2026, 10, 25, 2, 30)
    # As an upper bound, "02:31" could mean 00:31 UTC: too early for the second.
    assert ceil_wall(first, berlin) == datetime(2026, 10, 25, 2, 31)
    assert ceil_wall(second, berlin) == datetime(2026, 10, 25, 3, 0)
    utc = ZoneInfo("UTC")
    plain = datetime(2026, 3, 1, 8, 7, 0, tzinfo=UTC)
    assert floor_wall(plain, utc) == ceil_wall(plain, utc) == datetime(2026, 3, 1, 8, 7)


# --- settings -------------------------------------------------------------------------------


def test_settings_demand_what_each_flavor_needs():
    base = {"kind": "jira", "url": "https://x.atlassian.net", "jql": "project = SUP"}
    ok = JiraSettings.model_validate({**base, "email": EMAIL, "token_env": "T"})
    assert ok.flavor == "cloud" and ok.rate_limit == 120 and ok.merged_resolutions == ("Duplicate",)
    JiraSettings.model_validate({**base, "flavor": "datacenter", "pat_file": "pat.txt"})
    for bad, says in [
        ({"token_env": "T"}, "needs email"),
        ({"email": EMAIL}, "token_env or token_file"),
        ({"flavor": "datacenter"}, "pat_env or pat_file"),
        ({"email": EMAIL, "token_env": "T", "jql": "project = SUP ORDER BY key"}, "ORDER BY"),
        ({"email": EMAIL, "token_env": "T", "jql_timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"email": EMAIL, "token_env": "T", "page_size": 6000}, "less than or equal to 5000"),
        ({"email": EMAIL, "token": "inline"}, "Extra inputs are not permitted"),
        ({"email": EMAIL, "token_env": "T", "jql": "  "}, "the filter that selects complaints"),
    ]:
        with pytest.raises(ValidationError, match=says):
            JiraSettings.model_validate({**base, **bad})


def test_closed_statuses_replace_the_done_category():
    settings = JiraSettings.model_validate(
        {
            "kind": "jira",
            "url": "https://x.atlassian.net",
            "jql": "project = SUP",
            "email": EMAIL,
            "token_env": "T",
            "closed_statuses": ["Waiting for customer"],
        }
    )
    connector = JiraConnector("jr", settings, None, datetime.now(UTC))  # type: ignore[arg-type]

    def issue(status: str, category: str, resolved: str | None) -> dict[str, Any]:
        fields = {
            "created": "2026-03-01T09:00:00.000+0100",
            "updated": "2026-03-03T10:00:00.900+0100",
            "resolutiondate": resolved,
            "status": {"name": status, "statusCategory": {"key": category}},
        }
        return {"id": "10001", "key": "SUP-1", "fields": fields}

    waiting = connector.record(issue("Waiting for customer", "indeterminate", None), "u")
    assert waiting.closed_at == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)  # no date: updated
    resolved = connector.record(
        issue("Resolved", "done", "2026-03-02T10:00:00.000+0100"), "u"
    )  # done, but not one of closed_statuses
    assert resolved.closed_at is None
    assert resolved.created_at == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert resolved.url == "https://x.atlassian.net/browse/SUP-1"

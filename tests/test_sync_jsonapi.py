"""Sync from a homegrown JSON API through the generic connector, against a fake API served over
real HTTP on 127.0.0.1, in each paging style."""

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
from fakes.jsonapi import FakeHomegrown
from helpers import make_config
from slamon import sources as sources_mod
from slamon import sync as sync_mod
from slamon.config import Config
from slamon.connectors import jsonapi  # noqa: F401  (registers the "jsonapi" kind)
from slamon.connectors.base import SyncWindow
from slamon.errors import ConfigError
from slamon.store.models import complaints
from slamon.store.models import sources as sources_table

TOKEN = "crm-t0ken"
KEY = "crm-api-key-1"
PASSWORD = "crm-pa55word"
T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
SORTED = {"sort": "updated_at", "order": "asc"}

#: paging style -> (fake API options, source settings)
STYLES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # sorted, naive local times, bearer token
    "page": (
        {"paging": "page", "time_format": "iso_local", "zone": "Europe/Moscow"},
        {
            "paging": "page",
            "timezone": "Europe/Moscow",
            "since_format": "iso_naive",
            "sort": SORTED,
            "token_env": "CRM_TOKEN",
        },
    ),
    # unsorted, epoch milliseconds, API key header
    "cursor": (
        {"paging": "cursor", "time_format": "epoch_ms", "auth": ("api_key", KEY)},
        {
            "paging": "cursor",
            "next_cursor_path": "data.next",
            "time_format": "epoch_ms",
            "api_key_env": "CRM_KEY",
        },
    ),
    # sorted, UTC ISO, HTTP Basic
    "offset": (
        {"paging": "offset", "time_format": "iso", "auth": ("basic", f"slamon:{PASSWORD}")},
        {"paging": "offset", "sort": SORTED, "username": "slamon", "password_env": "CRM_PW"},
    ),
    # unsorted, Link header
    "link": (
        {"paging": "link", "time_format": "iso"},
        {"paging": "link", "token_env": "CRM_TOKEN"},
    ),
}


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_TOKEN", TOKEN)
    monkeypatch.setenv("CRM_KEY", KEY)
    monkeypatch.setenv("CRM_PW", PASSWORD)
    monkeypatch.setenv("CRM_BAD_PW", "not-the-password")


@pytest.fixture
def make_api() -> Iterator[Any]:
    started: list[FakeHomegrown] = []

    def make(style: str = "page", **options: Any) -> FakeHomegrown:
        api = FakeHomegrown(**{**STYLES[style][0], **options}).start()
        started.append(api)
        return api

    yield make
    for api in started:
        api.stop()


def source(api: FakeHomegrown, style: str = "page", **extra: Any) -> dict[str, Any]:
    url = f"{api.url}/api/v2/complaints"
    if style == "cursor":  # the static filter written into the URL rather than in params
        url, extra = url + "?type=complaint", {"params": {}, **extra}
    return {
        "kind": "jsonapi",
        "url": url,
        "items_path": "data.items",
        "total_path": "data.total",
        "page_size": 100,
        "since_param": "updated_since",
        "params": {"type": "complaint"},
        "closed_statuses": ["resolved", "closed"],
        "excluded_statuses": {"spam": "spam", "merged": "merged"},
        "fields": {
            "id": "ref",
            "created_at": "created",
            "updated_at": "meta.updated_at",
            "closed_at": "resolved_at",
            "status": "state.name",
            "queue": "team",
            "channel": "source",
            "category": "topics.0.title",
            "priority": "priority",
            "subject": "title",
            "excluded": "deleted_at",
        },
        **STYLES[style][1],
        **extra,
    }


def config(engine: Engine, api: FakeHomegrown, style: str = "page", **extra: Any) -> Config:
    return make_config(str(engine.url), sources={"crm": source(api, style, **extra)})


def held(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(complaints).where(complaints.c.source == "crm"))
        return {
            r.external_id: {
                "created_at": r.created_at,
                "closed_at": r.closed_at,
                "status": r.status,
                "queue": r.queue,
                "channel": r.channel,
                "category": r.category,
                "excluded_reason": r.excluded_reason,
                "source_updated_at": r.source_updated_at,
            }
            for r in rows
        }


def run_sync(
    engine: Engine,
    cfg: Config,
    api: FakeHomegrown,
    sleep: Sleeper | None = None,
    on_page: Any = None,
) -> sync_mod.SyncResult:
    sleep = sleep or Sleeper()
    now = api.clock + timedelta(seconds=1)
    kind, connector, http = sources_mod.open_connector(
        cfg, "crm", now=now, sleep=sleep, monotonic=sleep.monotonic
    )
    with http:
        return sync_mod.sync(engine, "crm", kind, connector, lambda: now, on_page)


def seed(api: FakeHomegrown, n: int, start: int = 1) -> None:
    rng = random.Random(n + start)
    for i in range(start, start + n):
        api.create(
            i,
            T0 + timedelta(minutes=17 * i),
            team=rng.choice(["Billing", "Delivery"]),
            channel=rng.choice(["email", "phone"]),
            status=rng.choice(["open", "open", "resolved"]),
            kind="question" if i % 12 == 0 else "complaint",
        )


def cursor_of(engine: Engine) -> dict[str, Any] | None:
    with engine.connect() as conn:
        raw = conn.execute(
            select(sources_table.c.cursor).where(sources_table.c.name == "crm")
        ).scalar()
    return json.loads(raw) if raw else None


def queries(api: FakeHomegrown) -> list[dict[str, str]]:
    return [dict(parse_qsl(urlsplit(path).query)) for _, path, _ in api.requests]


@pytest.mark.parametrize("style", sorted(STYLES))
def test_full_sync_then_changes_converge_to_the_source(engine: Engine, make_api: Any, style: str):
    api = make_api(style)
    seed(api, 260)
    cfg = config(engine, api, style)
    first = run_sync(engine, cfg, api)
    assert first.ok, first.error
    assert first.counts.new == len(api.truth()) == 239
    assert held(engine) == api.truth()
    assert all(q["type"] == "complaint" for q in queries(api) if "type" in q)

    resolved = [i for i, x in api.items.items() if x["status"] == "resolved"][:2]
    for item_id in resolved:
        api.set_status(item_id, "open")  # reopened: the API keeps resolved_at
    api.set_status(3, "closed")
    api.move(10, "VIP")
    api.soft_delete(11)
    api.set_status(13, "spam")
    api.set_status(14, "merged")
    seed(api, 5, start=1000)
    second = run_sync(engine, cfg, api)
    assert second.ok, second.error
    assert second.counts.new == 5
    got = held(engine)
    assert got == api.truth()
    assert [got[r]["excluded_reason"] for r in ("C-00011", "C-00013", "C-00014")] == [
        "deleted",
        "spam",
        "merged",
    ]
    for item_id in resolved:
        assert got[f"C-{item_id:05d}"]["closed_at"] is None
        assert api.items[item_id]["resolved"] is not None


def test_a_silent_page_cap_loses_nothing(engine: Engine, make_api: Any):
    """The API serves at most 100 items a page, whatever is asked: a short page is not the end."""
    api = make_api("page")
    seed(api, 260)
    result = run_sync(engine, config(engine, api, "page", page_size=250, sort={}), api)
    assert result.ok, result.error
    assert held(engine) == api.truth()
    assert {q["per_page"] for q in queries(api)} == {"250"}


def test_items_changing_while_paging_cannot_shift_others_out_of_reach(
    engine: Engine, make_api: Any
):
    """With page numbers over a listing sorted by change time, items changed during the sync
    move to its end and shift the rest back: plain paging would skip as many items."""
    api = make_api("page")
    seed(api, 330)

    def touch_five(result: sync_mod.SyncResult, page: Any) -> None:
        if result.pages == 1:
            for rec in page.records[:5]:
                api.move(int(rec.external_id[2:]), "Escalations")

    result = run_sync(engine, config(engine, api, "page"), api, on_page=touch_five)
    assert result.ok, result.error
    assert result.counts.changed == 5  # read again at their new place
    assert held(engine) == api.truth()


def test_ties_under_an_exclusive_filter_are_neither_skipped_nor_looped(
    engine: Engine, make_api: Any
):
    api = make_api("page", exclusive_since=True)
    seed(api, 250)
    same = api.clock - timedelta(hours=2)
    for item in api.items.values():
        item["updated"] = same
    seed(api, 10, start=500)
    result = run_sync(engine, config(engine, api, "page"), api)
    assert result.ok, result.error
    assert held(engine) == api.truth()
    assert len(api.requests) < 12


def test_an_unsorted_listing_resumes_where_it_stopped(engine: Engine, make_api: Any):
    api = make_api("cursor")
    seed(api, 260)
    cfg = config(engine, api, "cursor", max_retries=1)
    api.fail_next("ok")
    api.fail_next("500")
    api.fail_next("500")
    first = run_sync(engine, cfg, api)
    assert not first.ok and not first.permanent and first.pages == 1
    stored = cursor_of(engine)
    assert stored is not None and stored["since"].startswith("1970-01-01")  # not moved yet
    token = stored["listing"]["next"]["cursor"]
    api.requests.clear()
    second = run_sync(engine, cfg, api)
    assert second.ok, second.error
    assert queries(api)[0]["cursor"] == token  # resumed after the stored page
    assert held(engine) == api.truth()
    newest = max(x["updated"] for x in api.items.values() if x["type"] == "complaint")
    assert cursor_of(engine) == {"since": newest.isoformat()}


def test_an_unsorted_listing_never_moves_the_watermark_past_the_run_start(
    engine: Engine, make_api: Any
):
    """In id order, an item changed after its page was read is not read again in that run;
    a watermark at the newest change read (changed later still) would leave it behind."""
    api = make_api("cursor")
    seed(api, 260)
    cfg = config(engine, api, "cursor")

    def change_behind_and_ahead(result: sync_mod.SyncResult, page: Any) -> None:
        if result.pages == 1:
            api.set_status(1, "resolved")  # already read
            api.tick(600)
            api.move(259, "VIP")  # read later in this run, ten minutes newer

    first = run_sync(engine, cfg, api, on_page=change_behind_and_ahead)
    assert first.ok, first.error
    assert held(engine)["C-00001"]["status"] != "resolved"
    assert run_sync(engine, cfg, api).ok
    assert held(engine) == api.truth()


def test_a_next_link_to_another_host_is_refused(engine: Engine, make_api: Any):
    api = make_api("link")
    api.link_base = "http://elsewhere.example"
    seed(api, 150)
    result = run_sync(engine, config(engine, api, "link"), api)
    assert not result.ok and result.permanent and result.error is not None
    assert "another host" in result.error and TOKEN not in result.error
    assert len(api.requests) == 1


def test_rate_limit_and_server_errors_are_retried(engine: Engine, make_api: Any):
    api = make_api("cursor")
    seed(api, 150)
    api.fail_next("429", 3)
    api.fail_next("500")
    sleeper = Sleeper()
    result = run_sync(engine, config(engine, api, "cursor"), api, sleep=sleeper)
    assert result.ok, result.error
    assert 3.0 in sleeper.calls  # waited as long as Retry-After said
    assert held(engine) == api.truth()


def test_a_malformed_page_never_advances_the_cursor(engine: Engine, make_api: Any):
    api = make_api("page")
    seed(api, 150)
    cfg = config(engine, api, "page")
    assert run_sync(engine, cfg, api).ok
    before = cursor_of(engine)
    seed(api, 10, start=500)
    api.fail_next("malformed")
    failed = run_sync(engine, cfg, api)
    assert not failed.ok and not failed.permanent and failed.error is not None
    assert "not JSON" in failed.error and "/api/v2/complaints" in failed.error
    assert TOKEN not in failed.error
    assert cursor_of(engine) == before
    assert run_sync(engine, cfg, api).ok
    assert held(engine) == api.truth()


def test_a_bad_field_names_the_url_the_item_and_the_field(engine: Engine, make_api: Any):
    api = make_api("cursor")
    seed(api, 3)
    api.items[2]["created"] = "02.03.2026"
    result = run_sync(engine, config(engine, api, "cursor"), api)
    assert not result.ok and not result.permanent and result.error is not None
    assert "/api/v2/complaints" in result.error
    assert "item C-00002: fields.created_at (created): cannot read '02.03.2026'" in result.error
    assert KEY not in result.error
    assert held(engine) == {} and cursor_of(engine) is None


def test_bad_credentials_are_permanent_and_never_shown(engine: Engine, make_api: Any):
    api = make_api("offset")
    seed(api, 5)
    result = run_sync(engine, config(engine, api, "offset", password_env="CRM_BAD_PW"), api)
    assert not result.ok and result.permanent and result.error is not None
    assert "HTTP 401" in result.error and "not-the-password" not in result.error


def test_a_listing_not_sorted_as_configured_stops_the_sync(engine: Engine, make_api: Any):
    api = make_api("page", sortable=False)
    seed(api, 50)
    api.move(1, "VIP")  # id order is no longer change-time order
    result = run_sync(engine, config(engine, api, "page"), api)
    assert not result.ok and result.permanent and result.error is not None
    assert "not in ascending order" in result.error and "sources.crm.sort" in result.error


def test_an_api_that_ignores_the_page_parameter_cannot_loop(engine: Engine, make_api: Any):
    api = make_api("page")
    api.ignore_paging = True
    seed(api, 150)
    result = run_sync(engine, config(engine, api, "page", sort={}), api)
    assert not result.ok and result.permanent and result.error is not None
    assert "same page twice" in result.error and "sources.crm.page_param" in result.error
    assert len(api.requests) == 2


@pytest.mark.parametrize("server_side", [True, False], ids=["created-filter", "client-side"])
def test_backfill_is_resumable_and_leaves_the_cursor_alone(
    engine: Engine, make_api: Any, server_side: bool
):
    api = make_api("page")
    seed(api, 330)
    for item_id in (5, 100, 200):
        api.move(item_id, "Late")  # changed after the window: still found by creation
    extra: dict[str, Any] = {"max_retries": 1}
    if server_side:
        extra |= {"created_since_param": "created_from", "created_until_param": "created_to"}
    cfg = config(engine, api, "page", **extra)
    window = SyncWindow(T0 + timedelta(days=1), T0 + timedelta(days=3))  # created: 85..254

    def backfill() -> sync_mod.SyncResult:
        kind, connector, http = sources_mod.open_connector(
            cfg, "crm", now=api.clock, sleep=Sleeper()
        )
        with http:
            return sync_mod.backfill(engine, "crm", kind, connector, window, lambda: api.clock)

    api.fail_next("ok")
    api.fail_next("500")
    api.fail_next("500")
    first = backfill()
    assert not first.ok and first.pages == 1
    api.requests.clear()
    second = backfill()
    assert second.ok, second.error
    resumed = queries(api)[0]
    assert resumed["updated_since"] > window.since.astimezone(api.zone).strftime(
        "%Y-%m-%dT%H:%M:%S"
    )
    assert ("created_from" in resumed) is server_side
    truth = {
        k: v for k, v in api.truth().items() if window.since <= v["created_at"] <= window.until
    }
    assert len(truth) == 170 - 14
    assert held(engine) == truth
    assert (first.skipped + second.skipped > 0) is not server_side
    assert cursor_of(engine) is None


def test_settings_errors_name_the_key(make_api: Any):
    api = make_api("page")

    def settings(**changes: Any) -> None:
        table = source(api, "page")
        for key, value in changes.items():
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
        make_config(sources={"crm": table})

    fields = source(api)["fields"]
    cases = [
        (
            {"fields": {k: v for k, v in fields.items() if k != "created_at"}},
            "fields.created_at: is required",
        ),
        (
            {"fields": {**fields, "queue": "team..name"}},
            "fields.queue: 'team..name' is not a dotted",
        ),
        ({"fields": {**fields, "colour": "x"}}, "fields.colour: unknown key"),
        ({"since_param": None}, "since_param: is required"),
        ({"paging": "cursor"}, 'next_cursor_path: is required with paging = "cursor"'),
        ({"paging": "pages"}, "paging: must be one of"),
        ({"time_format": "rfc2822"}, "time_format: must be one of"),
        ({"timezone": "Moscow"}, "timezone: unknown time zone 'Moscow'"),
        ({"api_key_env": "CRM_KEY"}, "api_key_env: give one way to log in, not token and api_key"),
        ({"token_env": None, "username": "slamon"}, "password_env: HTTP Basic needs both"),
        ({"excluded_statuses": {"trash": "bin"}}, "excluded_statuses.trash: "),
    ]
    for changes, message in cases:
        with pytest.raises(ConfigError) as caught:
            settings(**changes)
        assert f"sources.crm.{message}" in str(caught.value), str(caught.value)

"""Sync from Redmine, against a fake Redmine API served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from fakes.clock import Sleeper
from fakes.redmine import FakeRedmine
from helpers import make_config
from slamon import sources as sources_mod
from slamon import sync as sync_mod
from slamon.connectors.base import SyncWindow
from slamon.store.models import complaints
from slamon.store.models import sources as sources_table

KEY = "s3cret-key"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def redmine() -> Iterator[FakeRedmine]:
    api = FakeRedmine(api_key=KEY).start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RM_KEY", KEY)
    monkeypatch.setenv("RM_BAD_KEY", "wrong")


def config(engine: Engine, redmine: FakeRedmine, **extra: Any):
    source = {"kind": "redmine", "url": redmine.url, "api_key_env": "RM_KEY", **extra}
    return make_config(str(engine.url), sources={"rm": source})


def held(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(complaints).where(complaints.c.source == "rm"))
        return {
            r.external_id: {
                "created_at": r.created_at,
                "closed_at": r.closed_at,
                "queue": r.queue,
                "status": r.status,
                "source_updated_at": r.source_updated_at,
            }
            for r in rows
        }


def run_sync(engine: Engine, cfg, sleep: Sleeper | None = None, on_page=None):
    sleep = sleep or Sleeper()
    kind, connector, http = sources_mod.open_connector(
        cfg, "rm", now=datetime.now(UTC), sleep=sleep, monotonic=sleep.monotonic
    )
    with http:
        return sync_mod.sync(engine, "rm", kind, connector, lambda: datetime.now(UTC), on_page)


def seed(redmine: FakeRedmine, n: int, start: int = 1) -> None:
    rng = random.Random(n)
    for i in range(start, start + n):
        redmine.create(
            i,
            T0 + timedelta(minutes=17 * i),
            project=rng.choice(["Billing", "Delivery"]),
            status=rng.choice([1, 2, 5]),
        )


def cursor_of(engine: Engine) -> dict | None:
    with engine.connect() as conn:
        raw = conn.execute(
            select(sources_table.c.cursor).where(sources_table.c.name == "rm")
        ).scalar()
    return json.loads(raw) if raw else None


def test_full_sync_then_changes_converge_to_the_source(engine: Engine, redmine: FakeRedmine):
    seed(redmine, 250)
    cfg = config(engine, redmine)
    first = run_sync(engine, cfg)
    assert first.ok and first.counts.new == 250 and first.pages == 3
    assert held(engine) == redmine.truth()
    # Closed issues are fetched too: the connector asks for status_id=*.
    assert all("status_id=%2A" in path for _, path, _ in redmine.requests)

    redmine.set_status(3, 5)  # closed
    closed_before = [i for i, x in redmine.issues.items() if x["status_id"] == 5][:2]
    for issue_id in closed_before:
        redmine.set_status(issue_id, 2)  # reopened: Redmine keeps closed_on
    redmine.move(10, "VIP")
    seed(redmine, 5, start=1000)
    second = run_sync(engine, cfg)
    assert second.ok
    assert second.counts.new == 5
    assert held(engine) == redmine.truth()
    for issue_id in closed_before:
        assert held(engine)[str(issue_id)]["closed_at"] is None
        assert redmine.issues[issue_id]["closed_on"] is not None


def test_many_issues_in_one_second_are_neither_skipped_nor_looped(
    engine: Engine, redmine: FakeRedmine
):
    for i in range(1, 231):
        redmine.create(i, T0)
    same = redmine.clock + timedelta(hours=1)
    for i in range(1, 231):
        redmine.issues[i]["updated_on"] = same
    result = run_sync(engine, config(engine, redmine))
    assert result.ok and result.counts.new == 230 and result.pages == 3
    assert held(engine) == redmine.truth()


def test_a_ticket_changed_during_the_sync_shows_up_twice_and_the_newest_wins(
    engine: Engine, redmine: FakeRedmine
):
    seed(redmine, 250)
    cfg = config(engine, redmine)
    touched = []

    def change_first_page_issue(result: sync_mod.SyncResult, page) -> None:
        if result.pages == 1:
            issue_id = int(page.records[0].external_id)
            redmine.set_status(issue_id, 6)
            touched.append(issue_id)

    result = run_sync(engine, cfg, on_page=change_first_page_issue)
    assert result.ok and touched
    assert result.counts.new == 250 and result.counts.changed == 1  # seen on two pages
    assert held(engine) == redmine.truth()
    assert held(engine)[str(touched[0])]["status"] == "Rejected"


def test_rate_limit_and_server_errors_are_retried(engine: Engine, redmine: FakeRedmine):
    seed(redmine, 120)
    redmine.fail_next("429", 7)
    redmine.fail_next("500")
    sleeper = Sleeper()
    result = run_sync(engine, config(engine, redmine), sleep=sleeper)
    assert result.ok and result.counts.new == 120
    assert 7.0 in sleeper.calls  # waited as long as Retry-After said
    assert held(engine) == redmine.truth()


def test_the_request_budget_spaces_requests(engine: Engine, redmine: FakeRedmine):
    seed(redmine, 250)
    sleeper = Sleeper()
    run_sync(engine, config(engine, redmine, rate_limit=6), sleep=sleeper)
    # Three requests at 6 per minute: the second and third each wait the full 10 s.
    assert sleeper.calls == [10.0, 10.0]


def test_a_malformed_page_never_advances_the_cursor(engine: Engine, redmine: FakeRedmine):
    seed(redmine, 150)
    cfg = config(engine, redmine)
    assert run_sync(engine, cfg).ok
    before = cursor_of(engine)
    seed(redmine, 10, start=500)
    redmine.fail_next("malformed")
    failed = run_sync(engine, cfg)
    assert not failed.ok and not failed.permanent
    assert "not JSON" in failed.error and "/issues.json" in failed.error
    assert KEY not in failed.error
    assert cursor_of(engine) == before
    assert len(held(engine)) == 150
    assert run_sync(engine, cfg).ok
    assert held(engine) == redmine.truth()


def test_a_missing_field_names_the_issue_and_field(engine: Engine, redmine: FakeRedmine):
    seed(redmine, 3)
    redmine.issues[2]["created_on"] = None
    result = run_sync(engine, config(engine, redmine))
    assert not result.ok
    assert "issue 2: created_on is missing" in result.error
    assert held(engine) == {}


def test_bad_credentials_are_permanent_and_other_sources_go_on(
    engine: Engine, redmine: FakeRedmine, tmp_path: Path
):
    seed(redmine, 20)
    conf = tmp_path / "slamon.toml"
    conf.write_text(
        f'[database]\nurl = "{engine.url.render_as_string(hide_password=False)}"\n'
        f'[sources.bad]\nkind = "redmine"\nurl = "{redmine.url}"\napi_key_env = "RM_BAD_KEY"\n'
        f'[sources.rm]\nkind = "redmine"\nurl = "{redmine.url}"\napi_key_env = "RM_KEY"\n',
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "slamon", "--config", str(conf), "sync"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert proc.returncode == 1
    assert "bad:" in proc.stderr and "HTTP 401" in proc.stderr and "permanent" in proc.stderr
    assert "wrong" not in proc.stderr and KEY not in proc.stdout + proc.stderr
    assert "rm: 1 pages, 20 complaints (20 new" in proc.stdout
    assert held(engine) == redmine.truth()
    listing = subprocess.run(
        [sys.executable, "-m", "slamon", "--config", str(conf), "sources", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    by_name = {s["name"]: s for s in json.loads(listing.stdout)}
    assert "HTTP 401" in by_name["bad"]["last_error"] and by_name["bad"]["last_success_at"] is None
    assert by_name["rm"]["last_error"] is None and by_name["rm"]["complaints"] == 20


def test_backfill_is_resumable_and_leaves_the_cursor_alone(engine: Engine, redmine: FakeRedmine):
    seed(redmine, 330)
    cfg = config(engine, redmine, max_retries=2)
    window = SyncWindow(T0, T0 + timedelta(days=3))  # issues created within: 1..254

    def backfill():
        kind, connector, http = sources_mod.open_connector(cfg, "rm", now=T0, sleep=Sleeper())
        with http:
            return sync_mod.backfill(engine, "rm", kind, connector, window, lambda: T0)

    redmine.fail_next("ok")  # the first page comes through, then the server is down
    for _ in range(3):
        redmine.fail_next("500")
    first = backfill()
    assert not first.ok and not first.permanent and first.pages == 1
    assert "HTTP 500" in first.error and "gave up after 3 tries" in first.error
    assert len(held(engine)) == 100
    redmine.requests.clear()
    second = backfill()
    assert second.ok
    assert "offset=100" in redmine.requests[0][1]  # resumed from the checkpoint
    truth = {k: v for k, v in redmine.truth().items() if T0 <= v["created_at"] <= window.until}
    assert len(truth) == 254
    assert held(engine) == truth
    assert cursor_of(engine) is None  # the incremental cursor was never moved


def test_sync_killed_at_random_moments_converges(
    engine: Engine, redmine: FakeRedmine, tmp_path: Path
):
    """SIGKILL a real `slamon sync` again and again; after a clean run the database equals the
    source exactly."""
    seed(redmine, 1500)
    conf = tmp_path / "slamon.toml"
    conf.write_text(
        f'[database]\nurl = "{engine.url.render_as_string(hide_password=False)}"\n'
        f'[sources.rm]\nkind = "redmine"\nurl = "{redmine.url}"\napi_key_env = "RM_KEY"\n'
        "rate_limit = 6000\n",
        encoding="utf-8",
    )
    rng = random.Random(7)
    cmd = [sys.executable, "-m", "slamon", "--config", str(conf), "sync"]
    kills = 0
    for round_ in range(8):
        for _ in range(40):
            redmine.fail_next("hang", 0.03)  # slow pages, so that kills land mid-sync
        if round_ % 2:
            for issue_id in rng.sample(sorted(redmine.issues), 40):
                redmine.set_status(issue_id, rng.choice([1, 2, 5, 6]))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8, 3.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
    redmine.faults.clear()
    assert kills >= 3
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert held(engine) == redmine.truth()


def test_statuses_mapped_to_exclusions_are_kept_but_excluded(
    engine: Engine, redmine: FakeRedmine
) -> None:
    seed(redmine, 10)
    redmine.set_status(4, 6)
    run_sync(engine, config(engine, redmine, excluded_statuses={"Rejected": "spam"}))
    with engine.connect() as conn:
        rows = conn.execute(select(complaints.c.external_id, complaints.c.excluded_reason))
        reasons = {r.external_id: r.excluded_reason for r in rows}
    assert reasons["4"] == "spam"
    assert {k for k, v in reasons.items() if v is not None} == {
        str(i) for i, x in redmine.issues.items() if x["status_id"] == 6
    }

"""`slamon run` as a real subprocess on a fast schedule, against a fake Redmine over HTTP and a
real SMTP server (aiosmtpd): it syncs, alerts and sends a digest; SIGTERM mid-sync leaves a
consistent database and exits 0; kill -9 then restart sends nothing twice; two daemons yield one
leader and one send per slot; a failing job does not stop the others; SIGHUP reloads or refuses
the config; `slamon status` tells the truth."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from fakes.redmine import FakeRedmine
from fakes.server import FakeAPI, Response
from fakes.smtp import Mailbox, free_port, smtp_server
from slamon.store import migrate
from slamon.store.engine import make_engine
from slamon.store.models import complaints, daemon_jobs, sources

KEY = "rm-daemon-secret-key"

pytestmark = pytest.mark.slow


class SlowRedmine(FakeRedmine):
    """Answers each request after ``delay`` seconds (a sync of many pages takes a while)."""

    delay = 0.0

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        if self.delay:
            time.sleep(self.delay)
        return super().handle(method, path, query, headers, body)


class Heartbeat(FakeAPI):
    """A dead man's switch: counts the GETs of its secret path."""

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> Response:
        return 200, {"Content-Type": "text/plain"}, b"OK"

    def pings(self, path: str) -> int:
        with self.lock:
            return sum(1 for method, got, _ in self.requests if method == "GET" and got == path)


def seed(api: FakeRedmine, n: int, now: datetime, *, project: str = "Support") -> None:
    """n open complaints created 10 days ago: the 3-day level is 0 %, far below target."""
    api.clock = now - timedelta(days=1)
    for i in range(1, n + 1):
        api.create(i, now - timedelta(days=10, minutes=i), project=project, subject=f"Issue {i}")


def write_config(
    path: Path,
    db_url: str,
    smtp_port: int,
    api_url: str,
    *,
    sync_every: str = "2s",
    extra: str = "",
    daemon: str = "",
) -> Path:
    path.write_text(
        f"""
[database]
url = "{db_url}"

[service_level]
timezone = "Europe/Moscow"

[email]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "slamon@example.com"
timeout = 10

[channels.ops]
kind = "email"
recipients = ["ops@example.com"]

[alerts]
by = []
thresholds = [3]
min_matured = 10
significance = "point"
pending_evaluations = 1
drop_points = 0
warn_within = "0s"

[daemon]
standby_poll = "1s"
deliver_every = "1s"
stop_timeout = "5s"
{daemon}

[sources.rm]
kind = "redmine"
url = "{api_url}"
api_key_env = "RM_KEY"
sync_every = "{sync_every}"

[digests.minutely]
schedule = "* * * * *"
recipients = ["head@example.com"]
period = "day"
{extra}
""",
        encoding="utf-8",
    )
    return path


class Daemon:
    def __init__(self, config: Path, log: Path) -> None:
        self.log_path = log
        env = {**os.environ, "RM_KEY": KEY, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "slamon",
                "--config",
                str(config),
                "run",
                "--log-format",
                "json",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
            env=env,
        )

    def lines(self) -> list[dict[str, Any]]:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_for(what: Callable[[], bool], timeout: float = 40, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {message or what}")


def status(config: Path) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "slamon", "--config", str(config), "status", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "RM_KEY": KEY},
        timeout=60,
    )
    return done.returncode, json.loads(done.stdout)


def kinds(box: Mailbox) -> Counter[str]:
    """Messages by kind: alert subjects start with [slamon], digests do not."""
    out: Counter[str] = Counter()
    for got in box.received:
        subject = str(got.message["Subject"])
        out["alert" if subject.startswith("[slamon]") else "digest"] += 1
    return out


def subjects(box: Mailbox, word: str) -> int:
    """Alert messages whose subject says ``word`` (FIRING, RESOLVED)."""
    return sum(f"[slamon] {word}" in str(r.message["Subject"]) for r in box.received)


def no_duplicates(box: Mailbox) -> None:
    ids = Counter((str(r.message["Message-ID"]), tuple(r.recipients)) for r in box.received)
    assert all(n == 1 for n in ids.values()), ids


def runs(engine: Engine, job: str) -> int:
    with engine.connect() as conn:
        value = conn.execute(select(daemon_jobs.c.runs).where(daemon_jobs.c.job == job)).scalar()
    return int(value or 0)


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[tuple[Engine, FakeRedmine, Mailbox, int, Path]]:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    api = SlowRedmine(api_key=KEY).start()
    try:
        with smtp_server() as (box, port):
            yield engine, api, box, port, tmp_path
    finally:
        api.stop()
        engine.dispose()


def test_the_daemon_syncs_alerts_sends_a_digest_and_stops_on_sigterm(
    world: tuple[Engine, FakeRedmine, Mailbox, int, Path], db_url: str
) -> None:
    engine, api, box, port, tmp = world
    seed(api, 40, datetime.now(UTC))
    http_port = free_port()
    beat = Heartbeat().start()
    secret_path = "/ping/7f3c-secret-uuid"
    os.environ["SLAMON_HB"] = beat.url + secret_path
    config = write_config(
        tmp / "slamon.toml",
        db_url,
        port,
        api.url,
        daemon=f'http_port = {http_port}\nheartbeat_url_env = "SLAMON_HB"',
    )
    daemon = Daemon(config, tmp / "daemon.log")
    try:
        wait_for(
            lambda: kinds(box)["alert"] >= 1 and kinds(box)["digest"] >= 1,
            message="an alert and a digest",
        )
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(complaints)).scalar() == 40
        wait_for(lambda: runs(engine, "sync:rm") >= 3, message="more syncs")
        health = httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["leader"] is True
        metrics = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=10).text
        received = re.search(r'slamon_complaints_synced_total\{source="rm"\} ([\d.]+)', metrics)
        assert received and float(received[1]) >= 40  # records received, re-reads included
        assert "slamon_leader 1.0" in metrics
        assert 'slamon_sync_lag_seconds{source="rm"}' in metrics
        code, st = status(config)
        assert code == 1  # an alert fires: attention
        assert st["leader"] and str(daemon.proc.pid) in st["leader"]
        (rm,) = st["sources"]
        assert rm["name"] == "rm" and rm["error"] is None and rm["lag_seconds"] < 60
        jobs = {j["job"]: j for j in st["jobs"]}
        assert set(jobs) == {"sync:rm", "deliver", "digest:minutely", "housekeeping"}
        assert jobs["sync:rm"]["last_status"] == "ok"
        assert jobs["sync:rm"]["next_run_at"] is not None
        assert jobs["digest:minutely"]["runs"] >= 1
        assert st["alerts_firing"] == ["level:3:total"]
        assert st["attention"] == ["1 alert(s) firing"]
        # The queue recovers: 200 complaints of 5 days ago, each closed within an hour.
        now = datetime.now(UTC)
        for i in range(1001, 1201):
            created = now - timedelta(days=5, minutes=i)
            api.create(i, created, subject=f"Handled {i}")
            api.set_status(i, 5, at=created + timedelta(hours=1))
            api.issues[i]["updated_on"] = api.tick()  # changed now: the next sync sees it
        api.clock = max(api.clock, now - timedelta(hours=1))
        wait_for(lambda: subjects(box, "RESOLVED") == 1, message="the resolved message")
        assert beat.pings(secret_path) >= 3  # after each successful sync and evaluation
        started = time.monotonic()
        assert daemon.stop() == 0
        assert time.monotonic() - started < 10
    finally:
        daemon.kill()
        beat.stop()
        os.environ.pop("SLAMON_HB", None)
    log = daemon.lines()  # every line is JSON
    assert any(line["message"].startswith("took the lead") for line in log)
    text = daemon.log_path.read_text(encoding="utf-8")
    assert KEY not in text and "secret-uuid" not in text
    # Exactly the expected alerts: one firing, one resolved; no reminder within 24 h.
    assert (subjects(box, "FIRING"), subjects(box, "RESOLVED"), kinds(box)["alert"]) == (1, 1, 2)
    no_duplicates(box)
    code, st = status(config)
    assert code == 1 and any("not running" in a for a in st["attention"])
    shown = subprocess.run(
        [sys.executable, "-m", "slamon", "--config", str(config), "status"],
        capture_output=True,
        text=True,
        env={**os.environ, "RM_KEY": KEY},
        timeout=60,
    )
    assert shown.returncode == 1
    assert shown.stdout.startswith("lead: none (slamon run is not running)\n")
    assert "sync:rm" in shown.stdout and "digest:minutely" in shown.stdout
    assert "needs attention:\n  - no daemon holds the lead" in shown.stdout


def test_a_failing_job_does_not_stop_the_others(
    world: tuple[Engine, FakeRedmine, Mailbox, int, Path], db_url: str
) -> None:
    engine, api, box, port, tmp = world
    config = write_config(
        tmp / "slamon.toml",
        db_url,
        port,
        api.url,
        extra=f'\n[sources.broken]\nkind = "redmine"\nurl = "{api.url}"\n'
        'api_key_env = "RM_BAD"\nsync_every = "1s"\n',
    )
    os.environ["RM_BAD"] = "wrong-key"
    daemon = Daemon(config, tmp / "daemon.log")
    try:
        wait_for(
            lambda: runs(engine, "sync:broken") >= 3 and runs(engine, "sync:rm") >= 2,
            message="both sources run again and again",
        )
        wait_for(lambda: kinds(box)["digest"] >= 1, message="the digest")
        code, st = status(config)
        assert code == 1
        jobs = {j["job"]: j for j in st["jobs"]}
        assert jobs["sync:broken"]["last_status"] == "failed"
        assert jobs["sync:broken"]["failures"] >= 3
        assert jobs["sync:rm"]["last_status"] == "ok"
        assert any(a.startswith("job sync:broken failed") for a in st["attention"])
        assert daemon.stop() == 0
    finally:
        daemon.kill()
        os.environ.pop("RM_BAD", None)
    log = daemon.lines()
    failed = [line for line in log if line["level"] == "ERROR" and "sync:broken" in line["message"]]
    assert failed and "Traceback" in (failed[0].get("exc_info") or "")
    assert "wrong-key" not in daemon.log_path.read_text(encoding="utf-8")


def test_sigterm_mid_sync_leaves_a_consistent_database(
    world: tuple[Engine, FakeRedmine, Mailbox, int, Path], db_url: str
) -> None:
    engine, api, _box, port, tmp = world
    now = datetime.now(UTC)
    seed(api, 1500, now)  # 15 pages of 100
    assert isinstance(api, SlowRedmine)
    api.delay = 0.4
    config = write_config(tmp / "slamon.toml", db_url, port, api.url, sync_every="1h")
    daemon = Daemon(config, tmp / "daemon.log")

    def stored() -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(complaints)).scalar_one())

    try:
        wait_for(lambda: stored() >= 300, message="a few pages stored")
        started = time.monotonic()
        assert daemon.stop() == 0
        assert time.monotonic() - started < 10
    finally:
        daemon.kill()
    held = stored()
    assert 300 <= held < 1500
    assert held % 100 == 0  # whole pages only: each page is one transaction
    with engine.connect() as conn:
        cursor = conn.execute(select(sources.c.cursor).where(sources.c.name == "rm")).scalar()
    assert cursor is not None  # the cursor moved with the stored pages
    # A restart resumes from the cursor and completes the sync.
    api.delay = 0.0
    again = Daemon(config, tmp / "daemon2.log")
    try:
        wait_for(lambda: stored() == 1500, message="the rest of the pages")
        assert again.stop() == 0
    finally:
        again.kill()


def test_kill_9_then_restart_sends_nothing_twice(
    world: tuple[Engine, FakeRedmine, Mailbox, int, Path], db_url: str
) -> None:
    engine, api, box, port, tmp = world
    seed(api, 40, datetime.now(UTC))
    config = write_config(tmp / "slamon.toml", db_url, port, api.url)
    first = Daemon(config, tmp / "first.log")
    try:
        wait_for(
            lambda: kinds(box)["alert"] >= 1 and kinds(box)["digest"] >= 1,
            message="an alert and a digest",
        )
        first.stop(signal.SIGKILL)
    finally:
        first.kill()
    before = runs(engine, "sync:rm")
    second = Daemon(config, tmp / "second.log")
    try:
        wait_for(lambda: runs(engine, "sync:rm") >= before + 3, message="three more syncs")
        assert second.stop() == 0
    finally:
        second.kill()
    assert kinds(box)["alert"] == 1
    no_duplicates(box)
    # Each digest slot went out once: one message per minute slot at most.
    with engine.connect() as conn:
        from slamon.store.models import digest_slots

        slots = conn.execute(select(func.count()).select_from(digest_slots)).scalar_one()
    assert kinds(box)["digest"] == slots


def test_two_daemons_one_leader_and_failover(
    world: tuple[Engine, FakeRedmine, Mailbox, int, Path], db_url: str
) -> None:
    engine, api, box, port, tmp = world
    seed(api, 40, datetime.now(UTC))
    config = write_config(tmp / "slamon.toml", db_url, port, api.url)
    a = Daemon(config, tmp / "a.log")
    b = Daemon(config, tmp / "b.log")
    try:
        wait_for(
            lambda: kinds(box)["alert"] >= 1 and kinds(box)["digest"] >= 1,
            message="an alert and a digest",
        )
        _, st = status(config)
        holder = st["leader"]
        assert holder
        leader, standby = (a, b) if str(a.proc.pid) in holder else (b, a)
        assert str(leader.proc.pid) in holder
        assert any("standby" in line["message"] for line in standby.lines())
        leader.stop(signal.SIGKILL)
        wait_for(
            lambda: any(line["message"].startswith("took the lead") for line in standby.lines()),
            timeout=30,
            message="the standby takes over",
        )
        _, st = status(config)
        assert str(standby.proc.pid) in (st["leader"] or "")
        before = runs(engine, "sync:rm")
        wait_for(lambda: runs(engine, "sync:rm") >= before + 2, message="the new leader syncs")
        assert standby.stop() == 0
    finally:
        a.kill()
        b.kill()
    assert kinds(box)["alert"] == 1
    no_duplicates(box)


def test_sighup_reloads_a_valid_config_and_refuses_a_broken_one(
    world: tuple[Engine, FakeRedmine, Mailbox, int, Path], db_url: str
) -> None:
    engine, api, _box, port, tmp = world
    config = write_config(tmp / "slamon.toml", db_url, port, api.url)
    good = config.read_text(encoding="utf-8")
    daemon = Daemon(config, tmp / "daemon.log")
    try:
        wait_for(lambda: runs(engine, "sync:rm") >= 1, message="a first sync")
        config.write_text(good + "\n[alerts.nonsense]\n", encoding="utf-8")
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda: any("refused" in line["message"] for line in daemon.lines()),
            message="the refusal",
        )
        refusal = next(line for line in daemon.lines() if "refused" in line["message"])
        assert "slamon.toml" in refusal["message"] and "alerts.nonsense" in refusal["message"]
        before = runs(engine, "sync:rm")
        wait_for(lambda: runs(engine, "sync:rm") > before, message="it goes on syncing")
        config.write_text(
            good + '\n[digests.second]\nschedule = "0 8 * * mon"\nrecipients = ["x@example.com"]\n',
            encoding="utf-8",
        )
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(
            lambda: any("reloaded" in line["message"] for line in daemon.lines()),
            message="the reload",
        )
        wait_for(
            lambda: runs(engine, "digest:second") >= 1 or _has_job(engine, "digest:second"),
            message="the new digest's job",
        )
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def _has_job(engine: Engine, job: str) -> bool:
    with engine.connect() as conn:
        return (
            conn.execute(select(daemon_jobs.c.job).where(daemon_jobs.c.job == job)).first()
            is not None
        )


def test_a_request_that_hangs_does_not_hold_up_the_stop(
    world: tuple[Engine, FakeRedmine, Mailbox, int, Path], db_url: str
) -> None:
    """The source answers after 30 s: SIGTERM still ends the daemon within stop_timeout (5 s
    here) plus a little, exit 0, and nothing of the unanswered page is stored."""
    engine, api, _box, port, tmp = world
    seed(api, 150, datetime.now(UTC))
    assert isinstance(api, SlowRedmine)
    config = write_config(tmp / "slamon.toml", db_url, port, api.url, sync_every="1h")
    api.delay = 30.0
    daemon = Daemon(config, tmp / "daemon.log")
    try:
        wait_for(lambda: len(api.requests) >= 1, message="the first request")
        started = time.monotonic()
        assert daemon.stop() == 0
        assert time.monotonic() - started < 10
    finally:
        daemon.kill()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(complaints)).scalar() == 0
    assert any("still running" in line["message"] for line in daemon.lines())

"""Alerts end to end: a real SMTP server (aiosmtpd) and a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from sqlalchemy import Engine, select

from fakes.smtp import Mailbox, smtp_server
from fakes.webhook import WebhookReceiver
from slamon import config as config_mod
from slamon.alerts import engine as alerts
from slamon.domain import ComplaintRecord
from slamon.notify import email as email_mod
from slamon.notify.email import SendError
from slamon.store import migrate
from slamon.store.complaints import apply_batch, ensure_source
from slamon.store.engine import make_engine, write_transaction
from slamon.store.models import alert_transitions, outbox

D0 = datetime(2026, 3, 2, tzinfo=UTC)
BAD_DAYS = range(12, 19)
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>\r\nBcc: evil@example.com'


def complaints(days: int = 41) -> list[ComplaintRecord]:
    """billing: 20 a day, closed in a day, except days 12-18 where 12 of 20 close after 6 days;
    tiny: 3 a day, one of them late every day (67 %: below an 80 % target, but only 30 matured)."""
    out = []
    for i in range(days):
        day = D0 + timedelta(days=i, hours=10)
        for k in range(20):
            late = i in BAD_DAYS and k < 12
            created = day + timedelta(minutes=k)
            out.append(
                ComplaintRecord(
                    external_id=f"b{i}-{k}",
                    created_at=created,
                    closed_at=created + timedelta(days=6 if late else 1),
                    queue="billing",
                    subject=f"billing {i}-{k}",
                )
            )
        for k in range(3):
            created = day + timedelta(minutes=30 + k)
            out.append(
                ComplaintRecord(
                    external_id=f"t{i}-{k}",
                    created_at=created,
                    closed_at=created + timedelta(days=6 if k == 0 else 1),
                    queue="tiny",
                )
            )
    return out


def load(engine: Engine, records: list[ComplaintRecord]) -> None:
    with write_transaction(engine) as conn:
        ensure_source(conn, "crm", "files", D0)
        apply_batch(conn, "crm", records, D0)


ALERTS = {
    "window_days": "14",
    "min_matured": "20",
    "pending_evaluations": "2",
    "recover_evaluations": "2",
    "repeat_every": '"30d"',
    "drop_points": "0",
    "warn_within": '"0s"',
}


def write_toml(
    path: Path, db_url: str, smtp_port: int, hook_url: str, extra: dict[str, str] | None = None
) -> Path:
    alerts_section = "\n".join(f"{k} = {v}" for k, v in {**ALERTS, **(extra or {})}.items())
    path.write_text(
        f"""
[database]
url = "{db_url}"

[service_level]
thresholds = [3]
targets = {{ "3" = 0.8 }}

[email]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "slamon@example.com"

[outbox]
claim_timeout = "1s"

[channels.ops]
kind = "email"
recipients = ["ops@example.com"]

[channels.hook]
kind = "webhook"
url = "{hook_url}"

[alerts]
{alerts_section}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as server:
        yield server


def notices_in_mail(box: Mailbox) -> Counter[tuple[str, str]]:
    seen: Counter[tuple[str, str]] = Counter()
    for r in box.received:
        text = r.message.get_body(("plain",))
        assert text is not None
        for line in text.get_content().splitlines():
            for word in ("STILL FIRING", "FIRING", "RESOLVED"):
                if line.startswith(f"{word}: "):
                    seen[(word, line.split(": ", 1)[1].split(":")[0])] += 1
                    break
    return seen


def notices_in_hooks(receiver: WebhookReceiver) -> Counter[tuple[str, str]]:
    seen: Counter[tuple[str, str]] = Counter()
    for _, _, body in receiver.bodies:
        for alert in body["alerts"]:
            seen[(alert["status"], alert["key"])] += 1
    return seen


def test_one_firing_and_one_resolved_per_episode(
    tmp_path: Path, db_url: str, smtp: tuple[Mailbox, int], hook: WebhookReceiver
) -> None:
    box, port = smtp
    path = write_toml(tmp_path / "c.toml", db_url, port, hook.url + "/hook")
    cfg = config_mod.load(path)
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    load(engine, complaints())
    try:
        for day in range(10, 41):
            at = D0 + timedelta(days=day, hours=12)
            result = alerts.check(engine, cfg, at, lambda: datetime.now(UTC))
            assert result.delivery is None or not result.delivery.errors
        # a second pass over the same instants is refused: states only move forward
        with pytest.raises(Exception, match="only move forward"):
            alerts.check(engine, cfg, D0 + timedelta(days=20), lambda: datetime.now(UTC))
        with engine.connect() as conn:
            changes = list(
                conn.execute(select(alert_transitions.c.key, alert_transitions.c.to_status))
            )
            sent = conn.execute(select(outbox.c.status)).scalars().all()
    finally:
        engine.dispose()

    fired = {key for key, status in changes if status == "firing"}
    assert fired == {"level:3:total", "level:3:queue=billing"}
    assert not any("tiny" in key for key, _ in changes)  # Wilson: 30 matured at 67 % is noise
    assert set(sent) == {"sent"}

    hooks = notices_in_hooks(hook)
    assert hooks == Counter(
        {
            ("firing", "level:3:total"): 1,
            ("firing", "level:3:queue=billing"): 1,
            ("resolved", "level:3:total"): 1,
            ("resolved", "level:3:queue=billing"): 1,
        }
    )
    mail = notices_in_mail(box)
    assert mail == Counter(
        {
            ("FIRING", "3-day level of all complaints"): 1,
            ("FIRING", "3-day level of queue billing"): 1,
            ("RESOLVED", "3-day level of all complaints"): 1,
            ("RESOLVED", "3-day level of queue billing"): 1,
        }
    )
    # alerts that change in one evaluation arrive as one grouped message per recipient
    assert len(box.received) < 4
    for r in box.received:
        msg = r.message
        assert r.recipients == ["ops@example.com"]
        assert msg.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in msg.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        assert msg["Message-ID"].startswith("<slamon.") and msg["Auto-Submitted"]
    resolved = [r.message for r in box.received if "RESOLVED" in r.message["Subject"].upper()]
    assert resolved and all(m["References"] for m in resolved)  # threads under the firing


def test_point_significance_pages_the_small_queue(
    tmp_path: Path, sqlite_engine: Engine, smtp: tuple[Mailbox, int], hook: WebhookReceiver
) -> None:
    _box, port = smtp
    url = sqlite_engine.url.render_as_string(hide_password=False)
    cfg = config_mod.load(
        write_toml(tmp_path / "c.toml", url, port, hook.url, {"significance": '"point"'})
    )
    load(sqlite_engine, complaints())
    for day in (20, 21):
        alerts.check(sqlite_engine, cfg, D0 + timedelta(days=day, hours=12), lambda: D0)
    keys = {a["key"] for _, _, body in hook.bodies for a in body["alerts"]}
    assert "level:3:queue=tiny" in keys


def test_dry_run_writes_and_sends_nothing(
    tmp_path: Path, sqlite_engine: Engine, smtp: tuple[Mailbox, int], hook: WebhookReceiver
) -> None:
    box, port = smtp
    url = sqlite_engine.url.render_as_string(hide_password=False)
    cfg = config_mod.load(
        write_toml(tmp_path / "c.toml", url, port, hook.url, {"pending_evaluations": "1"})
    )
    load(sqlite_engine, complaints())
    result = alerts.check(sqlite_engine, cfg, D0 + timedelta(days=21), lambda: D0, dry_run=True)
    assert result.queued and result.transitions
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(outbox.c.id)).first() is None
        assert conn.execute(select(alert_transitions.c.id)).first() is None
    assert not box.received and not hook.bodies


def test_hostile_subjects_are_inert(
    tmp_path: Path, sqlite_engine: Engine, smtp: tuple[Mailbox, int], hook: WebhookReceiver
) -> None:
    box, port = smtp
    url = sqlite_engine.url.render_as_string(hide_password=False)
    extra = {"pending_evaluations": "1", "warn_within": '"24h"'}
    cfg = config_mod.load(write_toml(tmp_path / "c.toml", url, port, hook.url, extra))
    at = D0 + timedelta(days=11, hours=12)
    records = [r for r in complaints(12)]
    # open complaints created 3 days before: their 3-day deadline is tonight
    for k in range(60):
        records.append(
            ComplaintRecord(
                external_id=f"open-{k}",
                created_at=D0 + timedelta(days=8, hours=9, minutes=k),
                queue=HOSTILE if k == 0 else "billing",
                subject=HOSTILE,
                url="javascript:alert(3)" if k == 1 else f"https://tickets.example.com/{k}",
            )
        )
    load(sqlite_engine, records)
    result = alerts.check(sqlite_engine, cfg, at, lambda: D0)
    assert any(i.rule.value == "warning" for i in result.items)
    assert box.received
    for r in box.received:
        msg = r.message
        assert r.recipients == ["ops@example.com"]
        assert msg["Bcc"] is None and "\n" not in msg["Subject"]
        html = msg.get_body(("html",))
        assert html is not None
        body = html.get_content()
        assert "<script>" not in body and "<img" not in body and "javascript:" not in body
        assert "&lt;script&gt;" in body
    for _, _, body in hook.bodies:
        text = json.dumps(body)
        assert "open-0" in text or "warning" in text


def test_starttls_refuses_an_untrusted_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with smtp_server(tls=server_ctx) as (box, port):
        base = {"host": "127.0.0.1", "port": port, "security": "starttls", "timeout": 10}
        msg = email_mod.build_message(
            sender="slamon@example.com",
            sender_name="slamon",
            to="ops@example.com",
            subject="test",
            text="hello",
            html=None,
            message_id="<t@example.com>",
            date=D0,
        )

        def send(**settings: Any) -> None:
            cfg = config_mod.EmailSettings.model_validate({**base, **settings})
            with email_mod.smtp_session(cfg, None) as client:
                email_mod.send(client, msg)

        with pytest.raises(SendError, match="TLS failed"):
            send()
        assert not box.received
        send(ca_file=str(ca_file))
        send(verify_tls=False)
        assert len(box.received) == 2


# --- kill tests: the real CLI in a subprocess, killed at a point of the SMTP conversation -----


def _cli(path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "slamon", "--config", str(path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("point", ["before_claim", "after_claim", "after_accept"])
def test_kill_at_any_point_never_loses_and_at_most_one_duplicate(
    tmp_path: Path, sqlite_engine: Engine, hook: WebhookReceiver, point: str
) -> None:
    url = sqlite_engine.url.render_as_string(hide_password=False)
    load(sqlite_engine, complaints())
    sqlite_engine.dispose()
    with smtp_server() as (box, port):
        path = write_toml(
            tmp_path / "c.toml", url, port, hook.url, {"pending_evaluations": "1", "by": "[]"}
        )
        at = (D0 + timedelta(days=21, hours=12)).isoformat()
        later = (D0 + timedelta(days=21, hours=13)).isoformat()
        victim: dict[str, int] = {}

        def kill() -> None:
            for _ in range(200):
                if "pid" in victim:
                    os.kill(victim["pid"], signal.SIGKILL)
                    return
                time.sleep(0.01)

        if point == "after_claim":
            box.on_mail = kill
        elif point == "after_accept":
            box.on_accept = kill
        args = ["alerts", "check", "--as-of", at]
        if point == "before_claim":
            args.append("--no-deliver")
        proc = _cli(path, *args)
        victim["pid"] = proc.pid
        proc.communicate(timeout=60)
        if point == "before_claim":
            assert proc.returncode == 0
        else:
            assert proc.returncode == -signal.SIGKILL
        box.on_mail = box.on_accept = None
        first = len(box.received)
        assert first == (1 if point == "after_accept" else 0)

        time.sleep(1.2)  # past outbox.claim_timeout: a dead sender's claim is taken over
        for when in (later, (D0 + timedelta(days=21, hours=14)).isoformat()):
            again = _cli(path, "alerts", "check", "--as-of", when)
            _stdout, stderr = again.communicate(timeout=60)
            assert again.returncode == 0, stderr

        ids = [r.message["Message-ID"] for r in box.received]
        if point == "after_accept":
            assert len(ids) == 2 and ids[0] == ids[1]  # the one duplicate window: it folds
        else:
            assert len(ids) == 1
        # the webhook got its one message in every case (it was never interrupted)
        assert len(hook.bodies) == 1


def test_list_history_and_silences_from_the_cli(
    tmp_path: Path, sqlite_engine: Engine, smtp: tuple[Mailbox, int], hook: WebhookReceiver
) -> None:
    _, port = smtp
    url = sqlite_engine.url.render_as_string(hide_password=False)
    load(sqlite_engine, complaints())
    sqlite_engine.dispose()
    path = write_toml(tmp_path / "c.toml", url, port, hook.url, {"pending_evaluations": "1"})

    def run(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "slamon", "--config", str(path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "no alerts firing or pending" in run("alerts", "list")
    out = run("alerts", "silence", "--match", "queue=billing", "--for", "2h", "--reason", "move")
    assert out.startswith("silence 1: queue=billing until ")
    assert "queue=billing" in run("alerts", "silences")
    run("alerts", "check", "--as-of", (D0 + timedelta(days=21, hours=12)).isoformat())
    listed = run("alerts", "list")
    assert "level:3:queue=billing" in listed and "firing" in listed
    assert "ok" in run("alerts", "history") and "firing" in run("alerts", "history")
    # the silenced queue said nothing; the total (not silenced) did
    keys = {a["key"] for _, _, body in hook.bodies for a in body["alerts"]}
    assert keys == {"level:3:total"}
    assert "lifted" not in run("alerts", "silences")
    assert run("alerts", "unsilence", "1") == "silence 1 lifted\n"
    assert "lifted" in run("alerts", "silences", "--expired")
    bad = subprocess.run(
        [sys.executable, "-m", "slamon", "--config", str(path), "alerts", "unsilence", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "no silence 1 in force" in bad.stderr

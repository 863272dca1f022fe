"""Sending digests: the demo's digests arrive at a real SMTP server (aiosmtpd) as valid
multipart/alternative mail under 100 KB; each schedule slot is sent once, across two concurrent
senders and across restarts; after downtime only the latest missed slot goes out, marked late,
within late_grace."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from fakes.smtp import Mailbox, smtp_server
from slamon import clock, demo
from slamon.cli import cli
from slamon.config import Config, parse
from slamon.digest import deliver
from slamon.notify import outbox
from slamon.store import migrate
from slamon.store.complaints import apply_batch, ensure_source
from slamon.store.engine import make_engine, write_transaction
from slamon.store.models import alert_states, digest_slots
from slamon.store.models import outbox as outbox_table

# A Monday, 08:00 in Moscow is 05:00 UTC.
SLOT = datetime(2026, 3, 23, 5, 0, tzinfo=UTC)
DEMO_AS_OF = datetime(2026, 3, 23, 5, 0, tzinfo=UTC)


def email_section(port: int) -> str:
    return (
        f'\n[email]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        'sender = "slamon@example.com"\ntimeout = 10\n'
    )


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's database and config (SQLite), built once for this module."""
    where = tmp_path_factory.mktemp("demo") / "slamon-demo.db"
    demo.build(where, as_of=DEMO_AS_OF)
    return where


@pytest.fixture
def server() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as running:
        yield running


def run_cli(config_path: Path, *args: str, now: datetime) -> tuple[int, str]:
    old = clock.now
    clock.now = lambda: now
    try:
        result = CliRunner().invoke(cli, ["--config", str(config_path), *args], prog_name="slamon")
    finally:
        clock.now = old
    return result.exit_code, result.output


def parts(msg: EmailMessage) -> list[EmailMessage]:
    return [p for p in msg.iter_parts() if isinstance(p, EmailMessage)]


@pytest.mark.parametrize(
    ("name", "recipient", "words"),
    [
        ("weekly", "head-of-service@example.com", ["Service level", "within 3 days", "Oldest"]),
        ("delivery-ru", "delivery-lead@example.com", ["Уровень сервиса", "жалоб", "delivery"]),
    ],
)
def test_the_demo_digest_arrives_as_valid_multipart_mail(
    demo_db: Path,
    server: tuple[Mailbox, int],
    tmp_path: Path,
    name: str,
    recipient: str,
    words: list[str],
) -> None:
    box, port = server
    config = tmp_path / "slamon.toml"
    config.write_text(
        demo_db.with_suffix(".toml").read_text(encoding="utf-8") + email_section(port),
        encoding="utf-8",
    )
    code, output = run_cli(config, "digest", "send", name, now=DEMO_AS_OF)
    assert code == 0, output
    assert "sent 1 of 1" in output
    assert len(box.received) == 1
    got = box.received[0]
    assert got.recipients == [recipient]
    msg = got.message
    assert msg.get_content_type() == "multipart/alternative"
    text, html = parts(msg)
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    body = html.get_content()
    assert len(body.encode()) < 100 * 1024
    assert len(got.raw) < 200 * 1024
    assert '<meta name="color-scheme" content="light only">' in body
    assert "<script" not in body.lower()
    assert "<link" not in body.lower()
    assert re.search(r'<td[^>]* style="[^"]+"', body), "CSS is inlined into the tags"
    for word in words:
        assert word in text.get_content(), word
        assert word in body, word
    assert msg["Subject"] and "\n" not in msg["Subject"]
    assert msg["Message-ID"].startswith("<slamon.") and msg["Auto-Submitted"] == "auto-generated"
    assert msg["From"].addresses[0].addr_spec == "slamon@example.com"
    assert msg["To"] == recipient


def test_send_to_another_address_and_bad_addresses(
    demo_db: Path, server: tuple[Mailbox, int], tmp_path: Path
) -> None:
    box, port = server
    config = tmp_path / "slamon.toml"
    config.write_text(
        demo_db.with_suffix(".toml").read_text(encoding="utf-8") + email_section(port),
        encoding="utf-8",
    )
    code, output = run_cli(
        config, "digest", "send", "weekly", "--to", "me@example.org", now=DEMO_AS_OF
    )
    assert code == 0, output
    assert [r.recipients for r in box.received] == [["me@example.org"]]
    code, output = run_cli(
        config, "digest", "send", "weekly", "--to", "me@example.org\r\nBcc: x@y.z", now=DEMO_AS_OF
    )
    assert code == 2
    assert "--to: 'me@example.org\\r\\nBcc: x@y.z' is not an email address" in output
    code, output = run_cli(config, "digest", "send", "nightly", now=DEMO_AS_OF)
    assert code == 2
    assert "no digest 'nightly'" in output
    assert len(box.received) == 1


def test_an_unreachable_server_leaves_the_message_in_the_outbox(
    demo_db: Path, tmp_path: Path
) -> None:
    from fakes.smtp import free_port

    config = tmp_path / "slamon.toml"
    config.write_text(
        demo_db.with_suffix(".toml").read_text(encoding="utf-8") + email_section(free_port()),
        encoding="utf-8",
    )
    code, output = run_cli(config, "digest", "send", "weekly", now=DEMO_AS_OF)
    assert code == 1
    assert "1 not delivered yet" in output


# --- once per slot ------------------------------------------------------------------------

DIGESTS = """
[service_level]
timezone = "Europe/Moscow"

[digests.weekly]
schedule = "0 8 * * mon"
recipients = ["head@example.com", "deputy@example.com"]
late_grace = "12h"

[digests.daily]
schedule = "0 8 * * *"
recipients = ["ops@example.com"]
period = "day"
late_grace = "1d"
"""


@pytest.fixture
def setup(
    db_url: str, server: tuple[Mailbox, int], tmp_path: Path
) -> Iterator[tuple[Config, Engine, Mailbox, Path]]:
    box, port = server
    text = f'[database]\nurl = "{db_url}"\n' + DIGESTS + email_section(port)
    path = tmp_path / "slamon.toml"
    path.write_text(text, encoding="utf-8")
    cfg = parse(text, str(path), path)
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    created = SLOT - timedelta(days=5)
    with write_transaction(engine) as conn:
        ensure_source(conn, "crm", "import", created)
        from slamon.domain import ComplaintRecord

        apply_batch(
            conn,
            "crm",
            [
                ComplaintRecord("1", created, None, queue="billing", subject="Refund"),
                ComplaintRecord("2", created, created + timedelta(days=1), queue="delivery"),
            ],
            created,
        )
    try:
        yield cfg, engine, box, path
    finally:
        engine.dispose()


def slots(engine: Engine) -> list[tuple[str, datetime, bool]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(digest_slots.c.name, digest_slots.c.slot, digest_slots.c.late).order_by(
                digest_slots.c.name, digest_slots.c.slot
            )
        ).all()
    return [(r.name, r.slot, r.late) for r in rows]


def queued(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(outbox_table)).scalar_one())


def test_latest_slot_on_time_late_and_expired(setup: tuple[Config, Engine, Mailbox, Path]) -> None:
    cfg, *_ = setup
    weekly = cfg.digest("weekly")
    tz = cfg.settings.service_level.timezone
    assert deliver.latest_slot(weekly, tz, SLOT) == deliver.Slot(SLOT, late=False)
    assert deliver.latest_slot(weekly, tz, SLOT + timedelta(minutes=9)) == deliver.Slot(
        SLOT, late=False
    )
    assert deliver.latest_slot(weekly, tz, SLOT + timedelta(hours=11)) == deliver.Slot(
        SLOT, late=True
    )
    assert deliver.latest_slot(weekly, tz, SLOT + timedelta(hours=12, seconds=1)) is None
    assert deliver.latest_slot(weekly, tz, SLOT - timedelta(seconds=1)) is None
    # Three days of downtime of a daily digest: only the latest slot, late.
    daily = cfg.digest("daily")
    at = SLOT + timedelta(days=3, hours=2)
    assert deliver.latest_slot(daily, tz, at) == deliver.Slot(SLOT + timedelta(days=3), late=True)


def test_a_slot_is_sent_once_across_restarts(setup: tuple[Config, Engine, Mailbox, Path]) -> None:
    cfg, engine, box, _ = setup
    first = deliver.run_slot(engine, cfg, "weekly", SLOT + timedelta(seconds=5))
    assert (first.status, first.queued, first.late) == ("queued", 2, False)
    assert outbox.deliver(engine, cfg, lambda: SLOT + timedelta(seconds=6)).sent == 2
    # A restart a minute later, and another an hour later: the slot is taken.
    for later in (timedelta(minutes=1), timedelta(hours=1)):
        again = deliver.run_slot(engine, cfg, "weekly", SLOT + later)
        assert (again.status, again.slot) == ("claimed", SLOT)
        assert outbox.deliver(engine, cfg, lambda at=SLOT + later: at).sent == 0
    assert sorted(r.recipients[0] for r in box.received) == [
        "deputy@example.com",
        "head@example.com",
    ]
    assert slots(engine) == [("weekly", SLOT, False)]
    # Next Monday is a new slot.
    nxt = deliver.run_slot(engine, cfg, "weekly", SLOT + timedelta(days=7))
    assert nxt.status == "queued"


def test_after_downtime_one_late_digest_for_the_latest_slot(
    setup: tuple[Config, Engine, Mailbox, Path],
) -> None:
    cfg, engine, box, _ = setup
    back = SLOT + timedelta(days=3, hours=2)  # down since before Monday's daily slot
    result = deliver.run_slot(engine, cfg, "daily", back)
    assert (result.status, result.slot, result.late) == ("queued", SLOT + timedelta(days=3), True)
    assert outbox.deliver(engine, cfg, lambda: back).sent == 1
    assert deliver.run_slot(engine, cfg, "daily", back + timedelta(minutes=5)).status == "claimed"
    assert slots(engine) == [("daily", SLOT + timedelta(days=3), True)]
    (got,) = box.received
    assert "[late]" in got.message["Subject"]
    text = got.message.get_body(("plain",))
    assert text is not None and "Late digest" in text.get_content()
    # The weekly slot is more than 12 h old by then: not sent at all.
    assert deliver.run_slot(engine, cfg, "weekly", back).status == "none"


def test_two_concurrent_senders_send_each_slot_once(
    setup: tuple[Config, Engine, Mailbox, Path],
) -> None:
    cfg, engine, box, _ = setup
    barrier = threading.Barrier(2)
    results: list[deliver.Outcome] = []
    errors: list[BaseException] = []

    def sender() -> None:
        own = make_engine(str(engine.url.render_as_string(hide_password=False)))
        try:
            barrier.wait()
            results.append(deliver.run_slot(own, cfg, "weekly", SLOT + timedelta(seconds=1)))
            barrier.wait()
            outbox.deliver(own, cfg, lambda: SLOT + timedelta(seconds=2))
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(r.status for r in results) == ["claimed", "queued"]
    assert queued(engine) == 2
    assert len(box.received) == 2
    assert len({r.message["Message-ID"] for r in box.received}) == 2


def test_the_digest_lists_the_alerts_firing_in_its_scope(
    setup: tuple[Config, Engine, Mailbox, Path],
) -> None:
    cfg, engine, *_ = setup
    since = SLOT - timedelta(days=2)
    base = {
        "rule": "level",
        "threshold": 3,
        "streak": 0,
        "since": since,
        "evaluated_at": since,
        "observation": "breach",
        "share": 0.5,
        "target": 0.7,
        "matured": 40,
        "detail": "{}",
    }
    with write_transaction(engine) as conn:
        conn.execute(
            alert_states.insert(),
            [
                {
                    **base,
                    "key": "level:3:queue=billing",
                    "segment_field": "queue",
                    "segment_value": "billing",
                    "status": "firing",
                },
                {
                    **base,
                    "key": "level:3:queue=delivery",
                    "segment_field": "queue",
                    "segment_value": "delivery",
                    "status": "firing",
                },
                {
                    **base,
                    "key": "level:3:",
                    "segment_field": "",
                    "segment_value": "",
                    "status": "pending",
                },
            ],
        )
    everything = deliver.firing_alerts(engine, {})
    assert [a.segment for a in everything] == [{"queue": "billing"}, {"queue": "delivery"}]
    assert [a.segment for a in deliver.firing_alerts(engine, {"queue": "billing"})] == [
        {"queue": "billing"}
    ]
    rendered = deliver.compose(engine, cfg, "weekly", SLOT)
    assert "2 alerts firing now" in rendered.text
    assert "Service level below target" in rendered.text


def test_scheduled_send_from_the_cli_is_once_per_slot(
    setup: tuple[Config, Engine, Mailbox, Path],
) -> None:
    *_, box, path = setup
    code, output = run_cli(path, "digest", "send", "weekly", "--scheduled", now=SLOT)
    assert code == 0, output
    assert len(box.received) == 2
    code, output = run_cli(
        path, "digest", "send", "weekly", "--scheduled", now=SLOT + timedelta(minutes=30)
    )
    assert code == 0, output
    assert "was claimed before; nothing new to send" in output
    code, output = run_cli(
        path, "digest", "send", "weekly", "--scheduled", now=SLOT + timedelta(days=1)
    )
    assert "no slot of '0 8 * * mon' is due within late_grace" in output
    assert len(box.received) == 2
    code, output = run_cli(
        path, "digest", "send", "weekly", "--scheduled", "--to", "a@b.cd", now=SLOT
    )
    assert code == 2

"""Webhook channel formats against a real local receiver, and the stale-source rule."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from fakes.webhook import WebhookReceiver
from slamon.alerts import engine as alerts
from slamon.alerts.state import Observation
from slamon.config import parse
from slamon.notify import webhooks
from slamon.notify.email import SendError
from slamon.store.complaints import apply_batch, ensure_source
from slamon.store.engine import write_transaction
from slamon.store.models import sources

HOSTILE = "<!channel> <https://evil.example|click> & more"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    r.start()
    try:
        yield r
    finally:
        r.stop()


def test_every_kind_posts_its_own_shape(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    monkeypatch.setenv("TG_TOKEN", "123:abc")
    cfg = parse(
        f"""
[channels.slack]
kind = "slack"
url = "{receiver.url}/slack"
[channels.teams]
kind = "teams"
url = "{receiver.url}/teams"
[channels.tg]
kind = "telegram"
token_env = "TG_TOKEN"
chat_id = "-100"
api_url = "{receiver.url}"
[channels.hook]
kind = "webhook"
url = "{receiver.url}/hook"
secret_env = "HOOK_SECRET"
""",
        "t.toml",
    )
    for name, channel in cfg.settings.channels.items():
        body = webhooks.payload(channel.kind, "title", HOSTILE, {"kind": "alert", "alerts": []})
        webhooks.post(cfg, name, channel, body, message_id="<m@x>")
    got = {path: (headers, body) for path, headers, body in receiver.bodies}
    assert got["/slack"][1] == {
        "text": "title\n&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp; more"
    }
    card = got["/teams"][1]["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["body"][1]["text"] == HOSTILE
    _, tg = got["/bot123:abc/sendMessage"]
    assert tg["chat_id"] == "-100" and "parse_mode" not in tg and tg["text"].startswith("title")
    headers, hook = got["/hook"]
    assert hook == {"title": "title", "text": HOSTILE, "kind": "alert", "alerts": []}
    raw = json.dumps(hook, ensure_ascii=False, separators=(",", ":")).encode()
    mac = hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
    assert headers["x-slamon-signature"] == f"sha256={mac}"
    assert headers["x-slamon-message-id"] == "<m@x>"


def test_errors_never_show_a_secret(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TG_TOKEN", "123:topsecret")
    cfg = parse(
        f"""
[channels.tg]
kind = "telegram"
token_env = "TG_TOKEN"
chat_id = "1"
api_url = "{receiver.url}/nowhere"
""",
        "t.toml",
    )
    receiver.fail_next("500")
    with pytest.raises(SendError) as info:
        webhooks.post(cfg, "tg", cfg.settings.channels["tg"], {"text": "x"})
    assert "topsecret" not in str(info.value) and not info.value.permanent


def test_stale_source_fires_and_holds_the_data_alerts(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    export = tmp_path / "export.csv"
    export.write_text("id,created_at\n", encoding="utf-8")
    cfg = parse(
        f"""
[sources.crm]
kind = "csv"
path = "{export}"
[alerts]
min_matured = 1
stale_after = "6h"
""",
        "t.toml",
        tmp_path / "t.toml",
    )
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    from slamon.domain import ComplaintRecord

    with write_transaction(sqlite_engine) as conn:
        ensure_source(conn, "crm", "csv", t0)
        apply_batch(
            conn,
            "crm",
            [
                ComplaintRecord(f"{i}", t0 + timedelta(hours=i), t0 + timedelta(days=9))
                for i in range(20)
            ],
            t0,
        )
        conn.execute(update(sources).values(last_success_at=t0 + timedelta(days=14)))
    fresh = t0 + timedelta(days=14, hours=1)
    findings, held = alerts.gather(sqlite_engine, cfg, fresh)
    seen = {f.key: f.observation for f in findings}
    assert seen["stale::source=crm"] is Observation.HEALTHY and not held
    assert seen["level:3:total"] is Observation.BREACH
    findings, held = alerts.gather(sqlite_engine, cfg, fresh + timedelta(hours=6))
    seen = {f.key: f.observation for f in findings}
    assert seen["stale::source=crm"] is Observation.BREACH
    assert held == ["source crm is stale"]
    assert seen["level:3:total"] is Observation.HELD  # never resolves (or fires) on missing data

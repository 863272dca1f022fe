"""Webhooks over httpx: generic JSON, Slack-compatible (Slack, Mattermost, Rocket.Chat),
Microsoft Teams (an Adaptive Card, as Teams workflows take it) and a Telegram bot.

The body is decided when the message is queued (see ``payload``) and stored in the outbox, so a
retry posts the same bytes; secrets (URLs, tokens) are read only when sending.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from slamon.config import ChannelSettings, Config
from slamon.notify.email import SendError

TELEGRAM_LIMIT = 4096
SLACK_LIMIT = 35000


def _mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _shown(url: str) -> str:
    """A webhook URL as logs may show it: its path is often the secret, so only the host."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{'/…' if parts.path.strip('/') else ''}"


def slack_escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as markup: a ticket subject must not become a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def payload(kind: str, title: str, text: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body for a channel kind: ``title`` and ``text`` are plain text, ``data`` the
    structured message a generic webhook receives."""
    if kind == "slack":
        return {"text": _cut(slack_escape(f"{title}\n{text}"), SLACK_LIMIT)}
    if kind == "teams":
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "type": "AdaptiveCard",
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": title, "weight": "Bolder", "wrap": True},
                            {"type": "TextBlock", "text": text, "wrap": True},
                        ],
                    },
                }
            ],
        }
    if kind == "telegram":
        # plain text (no parse_mode): nothing in a ticket subject is markup
        return {
            "text": _cut(f"{title}\n\n{text}", TELEGRAM_LIMIT),
            "disable_web_page_preview": True,
        }
    return {"title": title, "text": text, **data}


def post(
    config: Config,
    name: str,
    channel: ChannelSettings,
    body: Mapping[str, Any],
    *,
    message_id: str = "",
) -> None:
    """Post one stored body to a channel. 2xx is delivered; 408, 429 and 5xx may be retried;
    other 4xx are permanent."""
    secrets: list[str] = []
    key = f"channels.{name}"
    if channel.kind == "telegram":
        token = config.secret(f"{key}.token", channel.token_env, channel.token_file)
        assert token is not None
        secrets.append(token)
        url = f"{channel.api_url.rstrip('/')}/bot{token}/sendMessage"
        body = {**body, "chat_id": channel.chat_id}
    else:
        url = config.secret(f"{key}.url", channel.url_env, channel.url_file) or channel.url or ""
        if channel.url is None:
            secrets.append(url)
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "slamon"}
    if message_id and channel.kind == "webhook":
        headers["X-Slamon-Message-Id"] = message_id
    signing = config.secret(f"{key}.secret", channel.secret_env, channel.secret_file)
    if signing is not None:
        mac = hmac.new(signing.encode(), content, hashlib.sha256).hexdigest()
        headers["X-Slamon-Signature"] = f"sha256={mac}"
    shown = _shown(url)
    try:
        with httpx.Client(timeout=channel.timeout, verify=channel.verify_tls) as client:
            response = client.post(url, content=content, headers=headers)
    except httpx.HTTPError as exc:
        raise SendError(f"{shown}: {type(exc).__name__}: {_mask(str(exc), secrets)}") from exc
    if response.is_success:
        return
    status = response.status_code
    snippet = _mask(response.text[:200], secrets)
    raise SendError(
        f"{shown}: HTTP {status}: {snippet}", permanent=status not in (408, 429) and status < 500
    )

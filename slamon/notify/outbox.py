"""The outbox: messages are rows, written in the transaction that decides them; delivery claims a
row with a conditional UPDATE (pending -> sending), sends it, and records the outcome.

What a crash can do, and what it cannot:
- before the deciding transaction commits: nothing was decided; the next run decides again.
- after it commits, before the claim: the row is pending; the next delivery sends it once.
- after the claim, before sending: the row is ``sending``; after ``outbox.claim_timeout`` it is
  claimed again
  and sent once.
- after the server accepted the message, before the outcome was recorded: the one window where a
  duplicate is possible. The re-send carries the same Message-ID (derived from the row), so mail
  clients fold the two; a webhook receiver sees the same body and the same X-Slamon-Message-Id.
A delivered row is never sent again: the claim only takes pending rows and stale sending rows.
"""

from __future__ import annotations

import base64
import json
import logging
import smtplib
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from slamon.config import Config
from slamon.notify import email, webhooks
from slamon.notify.email import SendError
from slamon.store.engine import write_transaction
from slamon.store.models import outbox

log = logging.getLogger(__name__)

BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Message:
    dedupe_key: str
    kind: str
    channel: str
    recipient: str
    message_id: str
    subject: str
    body: dict[str, Any]


def email_body(
    text: str,
    html: str | None,
    *,
    references: Iterable[str] = (),
    images: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    return {
        "text": text,
        "html": html,
        "references": list(references),
        "images": {cid: base64.b64encode(data).decode() for cid, data in (images or {}).items()},
    }


def enqueue(conn: Connection, messages: Iterable[Message], now: datetime) -> int:
    """Insert messages not queued before (by dedupe key); returns how many were new."""
    rows = [
        {
            "dedupe_key": m.dedupe_key,
            "kind": m.kind,
            "channel": m.channel,
            "recipient": m.recipient,
            "message_id": m.message_id,
            "subject": m.subject,
            "body": json.dumps(m.body, ensure_ascii=False, sort_keys=True),
            "created_at": now,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
        }
        for m in messages
    ]
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    new = 0
    for row in rows:  # one by one: rowcount tells which were new on both engines
        stmt = (
            dialect.insert(outbox).values(row).on_conflict_do_nothing(index_elements=["dedupe_key"])
        )
        new += conn.execute(stmt).rowcount
    return new


@dataclass
class Delivery:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def backoff(attempts: int) -> timedelta:
    delay: timedelta = BACKOFF_FIRST * (2 ** min(max(attempts - 1, 0), 20))
    return min(delay, BACKOFF_MAX)


def _due(now: datetime, claim_timeout: timedelta) -> Any:
    return or_(
        and_(outbox.c.status == "pending", outbox.c.next_attempt_at <= now),
        and_(outbox.c.status == "sending", outbox.c.claimed_at <= now - claim_timeout),
    )


def _claim(
    engine: Engine, row_id: int, now: datetime, token: str, claim_timeout: timedelta
) -> dict[str, Any] | None:
    with write_transaction(engine) as conn:
        claimed = conn.execute(
            update(outbox)
            .where(outbox.c.id == row_id, _due(now, claim_timeout))
            .values(
                status="sending",
                claimed_at=now,
                claim_token=token,
                attempts=outbox.c.attempts + 1,
            )
        ).rowcount
        if claimed != 1:
            return None  # another sender has it, or it is done
        row = conn.execute(select(outbox).where(outbox.c.id == row_id)).mappings().one()
        return dict(row)


SmtpFactory = Callable[[], AbstractContextManager[smtplib.SMTP]]


def deliver(
    engine: Engine,
    config: Config,
    clock: Callable[[], datetime],
    *,
    limit: int = 500,
    only: Iterable[int] | None = None,
) -> Delivery:
    """Send what is due, oldest first; each row claimed, sent and recorded on its own."""
    result = Delivery()
    token = uuid.uuid4().hex
    timeout = config.settings.outbox.claim_timeout
    with engine.connect() as conn:
        query = select(outbox.c.id).where(_due(clock(), timeout)).order_by(outbox.c.id).limit(limit)
        if only is not None:
            query = query.where(outbox.c.id.in_(list(only)))
        due = list(conn.execute(query).scalars())
    if not due:
        return result
    with ExitStack() as stack:
        session: list[smtplib.SMTP] = []

        def smtp() -> smtplib.SMTP:
            if not session:
                settings = config.settings.email
                password = config.secret(
                    "email.password", settings.password_env, settings.password_file
                )
                session.append(stack.enter_context(email.smtp_session(settings, password)))
            return session[0]

        for row_id in due:
            row = _claim(engine, row_id, clock(), token, timeout)
            if row is None:
                continue
            try:
                _send(config, row, smtp)
            except SendError as exc:
                if not exc.permanent:
                    session.clear()  # reconnect for the next email: this one may be broken
                give_up = exc.permanent or row["attempts"] >= config.settings.outbox.max_attempts
                _record_failure(engine, row, clock(), token, exc, give_up, result)
                continue
            with write_transaction(engine) as conn:
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id == row_id, outbox.c.claim_token == token)
                    .values(status="sent", sent_at=clock(), last_error=None)
                )
            result.sent += 1
            log.info("sent %s to %s via %s", row["kind"], row["recipient"] or "-", row["channel"])
    return result


def _send(config: Config, row: dict[str, Any], smtp: Callable[[], smtplib.SMTP]) -> None:
    channel = config.settings.channels.get(row["channel"])
    body = json.loads(row["body"])
    if row["channel"] == "@email" or (channel is not None and channel.kind == "email"):
        settings = config.settings.email
        if settings.sender is None:
            raise SendError("email.sender is not set", permanent=True)
        msg = email.build_message(
            sender=settings.sender,
            sender_name=settings.sender_name,
            to=row["recipient"],
            subject=row["subject"],
            text=body["text"],
            html=body.get("html"),
            message_id=row["message_id"],
            date=row["created_at"],
            references=body.get("references", ()),
            images={k: base64.b64decode(v) for k, v in body.get("images", {}).items()},
        )
        email.send(smtp(), msg)
        return
    if channel is None:
        raise SendError(f"no [channels.{row['channel']}] in the configuration", permanent=True)
    webhooks.post(config, row["channel"], channel, body, message_id=row["message_id"])


def _record_failure(
    engine: Engine,
    row: dict[str, Any],
    now: datetime,
    token: str,
    exc: SendError,
    give_up: bool,
    result: Delivery,
) -> None:
    values: dict[str, Any] = {"last_error": str(exc)[:2000]}
    if give_up:
        values["status"] = "failed"
        result.failed += 1
    else:
        values["status"] = "pending"
        values["next_attempt_at"] = now + backoff(row["attempts"])
        result.retrying += 1
    with write_transaction(engine) as conn:
        conn.execute(
            update(outbox)
            .where(outbox.c.id == row["id"], outbox.c.claim_token == token)
            .values(**values)
        )
    what = "gave up" if give_up else f"will retry (attempt {row['attempts']})"
    message = f"{row['kind']} to {row['recipient'] or row['channel']}: {exc}; {what}"
    result.errors.append(message)
    log.warning("delivery failed: %s", message)


def ids(conn: Connection, keys: Iterable[str]) -> tuple[int, ...]:
    """The rows of these dedupe keys."""
    query = select(outbox.c.id).where(outbox.c.dedupe_key.in_(list(keys)))
    return tuple(conn.execute(query).scalars())


def oldest_waiting(conn: Connection) -> datetime | None:
    """When the oldest message still to send was queued."""
    waiting = outbox.c.status.in_(["pending", "sending"])
    value: datetime | None = conn.execute(
        select(func.min(outbox.c.created_at)).where(waiting)
    ).scalar()
    return value


def backlog(conn: Connection) -> dict[str, int]:
    """How many rows are in each status."""
    rows = conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
    return {status: count for status, count in rows}


def purge(conn: Connection, before: datetime) -> int:
    """Housekeeping: delete delivered and failed messages created before ``before``."""
    return conn.execute(
        delete(outbox).where(outbox.c.status.in_(("sent", "failed")), outbox.c.created_at < before)
    ).rowcount


def rows(conn: Connection, *, limit: int = 50) -> Iterator[dict[str, Any]]:
    query = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    for row in conn.execute(query).mappings():
        yield dict(row)

"""Sending digests: once per schedule slot, through the outbox.

A digest's schedule (a cron expression in its timezone) names slots: instants at which it is due.
Sending slot S means, in ONE transaction: insert the (digest, S) row into digest_slots, which
only one sender can do (primary key), and queue one outbox message per recipient. A second
sender, or a restart, finds the row and queues nothing; the outbox then delivers each message
once (see slamon.notify.outbox for the one window where a re-send is possible, with the same
Message-ID).

After downtime only the latest slot is considered: when it was missed by less than the digest's
``late_grace`` it is sent once, marked late; older missed slots are never sent (no backlog of
stale summaries).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from slamon.alerts.rules import Rule
from slamon.config import Config, DigestSettings
from slamon.digest.context import DigestAlert, build_context
from slamon.digest.render import RenderedDigest, render
from slamon.errors import ConfigError
from slamon.notify import outbox
from slamon.notify.email import message_id
from slamon.store import alerts as alerts_store
from slamon.store import digests as digests_store
from slamon.store.engine import write_transaction

log = logging.getLogger(__name__)

#: A slot sent within this long of its instant is on time; later (within late_grace) it is late.
ON_TIME = timedelta(minutes=10)
#: Channel name of digest rows in the outbox: plain email to the row's recipient.
CHANNEL = "@email"


@dataclass(frozen=True, slots=True)
class Slot:
    at: datetime  # UTC
    late: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    name: str
    slot: datetime | None
    #: queued: messages were queued now; claimed: another sender (or an earlier run) has the
    #: slot; none: no slot is due (nothing scheduled within the grace period).
    status: str
    late: bool = False
    queued: int = 0
    subject: str = ""
    size: int = 0
    outbox_ids: tuple[int, ...] = ()


def latest_slot(settings: DigestSettings, default_zone: str, now: datetime) -> Slot | None:
    """The latest slot at or before ``now`` that may still be sent (no older than
    ``late_grace``), or None."""
    trigger = settings.trigger(default_zone)
    earliest = now - max(settings.late_grace, ON_TIME)
    fire = trigger.get_next_fire_time(None, earliest)
    last: datetime | None = None
    for _ in range(100_000):  # an every-minute schedule with a week's grace: ~10k steps
        if fire is None or fire > now:
            break
        last = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    if last is None:
        return None
    last = last.astimezone(UTC)
    late = now - last > ON_TIME
    if late and now - last > settings.late_grace:
        return None
    return Slot(last, late)


def firing_alerts(engine: Engine, scope: dict[str, str]) -> list[DigestAlert]:
    """The alerts firing now that concern a digest of ``scope``: every one for an unscoped
    digest; else those of a segment in the scope, and stale sources (freshness concerns all)."""
    with engine.connect() as conn:
        rows = alerts_store.states(conn)
    found = []
    for r in rows:
        if r.status != "firing":
            continue
        segment = {r.segment_field: r.segment_value} if r.segment_field else {}
        outside = not segment or scope.get(r.segment_field) != r.segment_value
        if scope and r.rule != Rule.STALE and outside:
            continue
        found.append(
            DigestAlert(
                title=r.key,
                segment=segment,
                threshold=r.threshold,
                share=r.share,
                target=r.target,
                since=r.since,
                rule=r.rule,
            )
        )
    found.sort(key=lambda a: (a.since, a.title))
    return found


def compose(
    engine: Engine, config: Config, name: str, as_of: datetime, *, late: bool = False
) -> RenderedDigest:
    """The digest ``name`` as of ``as_of``, with the alerts firing now."""
    settings = config.digest(name)
    alerts = firing_alerts(engine, dict(settings.scope))
    ctx = build_context(
        engine,
        config,
        name,
        as_of,
        alerts=alerts,
        late=late,
        stale_after=config.settings.alerts.stale_after,
    )
    return render(ctx)


def _sender(config: Config) -> str:
    sender = config.settings.email.sender
    if sender is None:
        raise ConfigError(f"{config.label}: email.sender: is required to send digests")
    return sender


def _queue(
    engine: Engine,
    config: Config,
    name: str,
    key: str,
    recipients: tuple[str, ...],
    rendered: RenderedDigest,
    now: datetime,
    slot: Slot | None,
) -> tuple[bool, tuple[int, ...]]:
    """Claim the slot (when there is one) and queue the messages in one transaction; False
    when the slot was claimed before."""
    sender = _sender(config)
    body = outbox.email_body(rendered.text, rendered.html, images=rendered.images)
    messages = [
        outbox.Message(
            dedupe_key=f"{key}:{to.lower()}",
            kind="digest",
            channel=CHANNEL,
            recipient=to,
            message_id=message_id(f"{key}:{to.lower()}", sender),
            subject=rendered.subject,
            body=body,
        )
        for to in recipients
    ]
    with write_transaction(engine) as conn:
        if slot is not None and not digests_store.claim_slot(
            conn, name, slot.at, now, late=slot.late, recipients=len(recipients)
        ):
            return False, ()
        outbox.enqueue(conn, messages, now)
        ids = outbox.ids(conn, [m.dedupe_key for m in messages])
    return True, ids


def _slot_key(name: str, at: datetime) -> str:
    return f"digest:{name}:{int(at.timestamp())}"


def run_slot(engine: Engine, config: Config, name: str, now: datetime) -> Outcome:
    """The scheduled send: the latest due slot of digest ``name``, once."""
    settings = config.digest(name)
    slot = latest_slot(settings, config.settings.service_level.timezone, now)
    if slot is None:
        return Outcome(name, None, "none")
    with engine.connect() as conn:
        taken = digests_store.slot_taken(conn, name, slot.at)
    if taken:
        return Outcome(name, slot.at, "claimed", slot.late)
    rendered = compose(engine, config, name, slot.at, late=slot.late)
    queued, ids = _queue(
        engine,
        config,
        name,
        _slot_key(name, slot.at),
        settings.recipients,
        rendered,
        now,
        slot,
    )
    if not queued:
        return Outcome(name, slot.at, "claimed", slot.late)
    log.info(
        "digest %s: slot %s queued for %d recipients%s",
        name,
        slot.at.isoformat(),
        len(ids),
        " (late)" if slot.late else "",
    )
    return Outcome(
        name,
        slot.at,
        "queued",
        slot.late,
        len(ids),
        rendered.subject,
        len(rendered.html.encode()),
        ids,
    )


def send_now(
    engine: Engine,
    config: Config,
    name: str,
    now: datetime,
    *,
    to: tuple[str, ...] = (),
    as_of: datetime | None = None,
) -> Outcome:
    """An unscheduled send (``slamon digest send``): to ``to`` or the digest's recipients,
    as of ``as_of`` (default now). It claims no slot: the scheduled digest still goes out."""
    settings = config.digest(name)
    rendered = compose(engine, config, name, as_of or now)
    key = f"digest:{name}:now:{int(now.timestamp() * 1000)}"
    _, ids = _queue(engine, config, name, key, to or settings.recipients, rendered, now, None)
    return Outcome(
        name, None, "queued", False, len(ids), rendered.subject, len(rendered.html.encode()), ids
    )

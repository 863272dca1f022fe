"""Evaluating the alert rules: figures from the store, judgements from rules.py, steps from
state.py, and in ONE transaction the new states, transitions, episodes and outbox rows."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from slamon import report
from slamon.alerts import messages
from slamon.alerts.messages import Item
from slamon.alerts.rules import (
    Figures,
    Rule,
    Segment,
    Thresholds,
    alert_key,
    judge_level,
    judge_stale,
    judge_trend,
    judge_warning,
)
from slamon.alerts.state import Notice, Observation, Policy, State, Status, step
from slamon.config import Config
from slamon.domain import sync_failure
from slamon.errors import UsageError
from slamon.notify import outbox
from slamon.notify.email import message_id
from slamon.servicelevel.deadlines import creations_due, local_date
from slamon.store import alerts as alerts_store
from slamon.store import atrisk
from slamon.store.engine import write_transaction
from slamon.store.models import (
    alert_episodes,
    alert_runs,
    alert_states,
    alert_transitions,
    sources,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Finding:
    """What one rule saw for one threshold and segment."""

    key: str
    rule: Rule
    threshold: int | None
    segment: Segment
    observation: Observation
    share: float | None = None
    target: float | None = None
    matured: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckResult:
    at: datetime
    findings: list[Finding]
    transitions: list[tuple[str, str, str]]
    items: list[Item]
    queued: list[outbox.Message]
    held: list[str]
    delivery: outbox.Delivery | None = None
    dry_run: bool = False


def _thresholds(config: Config) -> tuple[int, ...]:
    return config.settings.alerts.thresholds or config.settings.service_level.thresholds


def target_for(config: Config, n: int, segment: Segment) -> float | None:
    for override in config.settings.alerts.overrides:
        matched = override.match and override.match.items() <= segment.labels.items()
        if matched and str(n) in override.targets:
            return override.targets[str(n)]
    return config.settings.service_level.target(n)


def _figures(level: report.Level) -> Figures:
    return Figures(level.matured, level.hits, level.ci_low, level.ci_high)


def _reports(
    engine: Engine, config: Config, at: datetime, since: Any, until: Any
) -> Iterator[tuple[Segment, report.Row]]:
    """The rows of the window's report: the total, then every segment of alerts.by."""
    tz = config.settings.service_level.zone
    by = config.settings.alerts.by
    total_done = False
    for name in by or ("",):
        request = report.make_request(
            as_of=at, tz=tz, since=since, until=until, by=(name,) if name else ()
        )
        rep = report.run(engine, config, request)
        if not total_done:
            yield Segment(), rep.total
            total_done = True
        if name:
            for row in rep.rows:
                yield Segment(name, row.segment[name]), row


def source_problems(
    conn: Connection, config: Config, at: datetime
) -> tuple[list[Finding], dict[str, str]]:
    """Stale-source findings for the configured sources, and the sources whose data cannot be
    trusted now (stale or failing), with why."""
    stale_after = config.settings.alerts.stale_after
    known = {row.name: row for row in conn.execute(select(sources))}
    findings, problems = [], {}
    for name in sorted(config.sources):
        row = known.get(name)
        seg = Segment("source", name)
        key = alert_key(Rule.STALE, seg)
        if row is None:
            findings.append(Finding(key, Rule.STALE, None, seg, Observation.NO_VERDICT))
            problems[name] = "never synced"
            continue
        seen = judge_stale(row.last_success_at, row.created_at, at, stale_after)
        failing = sync_failure(row.last_error, row.last_success_at, row.last_attempt_at)
        detail = {
            "last_success_at": row.last_success_at.isoformat() if row.last_success_at else None,
            "last_error": failing,
        }
        findings.append(Finding(key, Rule.STALE, None, seg, seen, detail=detail))
        if seen is Observation.BREACH:
            problems[name] = "stale"
        elif failing is not None:
            problems[name] = "failing"
    return findings, problems


def gather(engine: Engine, config: Config, at: datetime) -> tuple[list[Finding], list[str]]:
    """Every rule's finding at ``at``, and why data alerts are held (if they are)."""
    settings = config.settings.alerts
    sl = config.settings.service_level
    tz = sl.zone
    t = Thresholds(
        settings.min_matured,
        settings.significance,
        settings.recovery_margin_points,
        settings.drop_points,
    )
    today = local_date(at, tz)
    window = timedelta(days=settings.window_days)
    current = dict(_reports(engine, config, at, today - window + timedelta(days=1), today))
    previous: dict[Segment, report.Row] = {}
    if settings.drop_points > 0:
        previous = dict(
            _reports(engine, config, at, today - 2 * window + timedelta(days=1), today - window)
        )
    with engine.connect() as conn:
        stale, problems = source_problems(conn, config, at)
        risk: dict[int, dict[tuple[str, str], int]] = {}
        calendar = config.settings.calendar.work_calendar()
        for n in _thresholds(config):
            created = creations_due(at, settings.warn_within, n, sl.day_mode, tz, calendar)
            if created is not None:
                risk[n] = atrisk.count_open(conn, at, created, sl.closure, settings.by)

    findings: list[Finding] = []
    for segment, row in current.items():
        for n in _thresholds(config):
            level = row.level(n)
            fig = _figures(level)
            target = target_for(config, n, segment)
            base = {"ci_low": level.ci_low, "ci_high": level.ci_high}
            if target is not None:
                findings.append(
                    Finding(
                        alert_key(Rule.LEVEL, segment, n),
                        Rule.LEVEL,
                        n,
                        segment,
                        judge_level(fig, target, t),
                        level.share,
                        target,
                        level.matured,
                        base,
                    )
                )
            if settings.drop_points > 0:
                before = previous.get(segment)
                seen, drop = (
                    judge_trend(fig, _figures(before.level(n)), t)
                    if before is not None
                    else (Observation.NO_VERDICT, None)
                )
                findings.append(
                    Finding(
                        alert_key(Rule.TREND, segment, n),
                        Rule.TREND,
                        n,
                        segment,
                        seen,
                        level.share,
                        target,
                        level.matured,
                        {
                            "drop": drop,
                            "previous": before.level(n).share if before is not None else None,
                        },
                    )
                )
            if target is not None and settings.warn_within > timedelta(0):
                count = risk.get(n, {}).get((segment.field, segment.value), 0)
                seen, projected = judge_warning(fig, count, target, t)
                findings.append(
                    Finding(
                        alert_key(Rule.WARNING, segment, n),
                        Rule.WARNING,
                        n,
                        segment,
                        seen,
                        level.share,
                        target,
                        level.matured,
                        {
                            "at_risk": count,
                            "projected": projected,
                            "within": messages.span(settings.warn_within),
                        },
                    )
                )
    held = [f"source {name} is {why}" for name, why in sorted(problems.items())]
    if problems:
        findings = [_held(f, problems) for f in findings]
    return stale + findings, held


def _held(f: Finding, problems: dict[str, str]) -> Finding:
    """Data from a stale or failing source: the alert keeps its state (never resolves on missing
    data). A segment of another source is not affected."""
    if f.segment.field == "source" and f.segment.value not in problems:
        return f
    return Finding(
        f.key,
        f.rule,
        f.threshold,
        f.segment,
        Observation.HELD,
        f.share,
        f.target,
        f.matured,
        {**f.detail, "held": sorted(problems)},
    )


def _state(row: Any) -> State:
    if row is None:
        return State()
    return State(
        status=Status(row.status),
        streak=row.streak,
        since=row.since,
        notified=row.notified,
        last_notice_at=row.last_notice_at,
        reminders=row.reminders,
    )


def _matches(match: dict[str, str], segment: Segment) -> bool:
    return match.items() <= segment.labels.items()


def _routes(config: Config, segment: Segment) -> list[str]:
    routes = config.settings.alerts.routes
    if not routes:
        return list(config.settings.channels)
    chosen: dict[str, None] = {}
    for route in routes:
        if _matches(route.match, segment):
            chosen.update(dict.fromkeys(route.channels))
    return list(chosen)


class _DryRun(Exception):
    pass


def check(
    engine: Engine,
    config: Config,
    at: datetime,
    clock: Callable[[], datetime],
    *,
    dry_run: bool = False,
    deliver: bool = True,
) -> CheckResult:
    """Evaluate every rule at ``at``, record what changed and queue the notices (one
    transaction), then deliver the outbox (unless ``deliver`` is False). ``dry_run`` computes
    everything, writes nothing and sends nothing."""
    started = clock()
    findings, held = gather(engine, config, at)
    result = CheckResult(at, findings, [], [], [], held, dry_run=dry_run)
    try:
        with write_transaction(engine) as conn:
            _record(conn, config, at, started, result)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    if deliver and not dry_run:
        result.delivery = outbox.deliver(engine, config, clock)
    return result


def _record(
    conn: Connection, config: Config, at: datetime, started: datetime, result: CheckResult
) -> None:
    last = conn.execute(select(func.max(alert_runs.c.at))).scalar()
    if last is not None and at < last and not result.dry_run:
        raise UsageError(
            f"as_of {at.isoformat()} is before the last evaluation ({last.isoformat()}):"
            " alert states only move forward (use --dry-run to look at the past)"
        )
    settings = config.settings.alerts
    policy = Policy(
        settings.pending_evaluations, settings.recover_evaluations, settings.repeat_every
    )
    states = {row.key: row for row in conn.execute(select(alert_states))}
    # silences are kept in wall-clock time: they hold back what is sent now, whatever as_of is
    muted = alerts_store.active_silences(conn, started)
    run_id = conn.execute(
        insert(alert_runs)
        .values(at=at, started_at=started, evaluated=0, transitions=0, queued=0, held="")
        .returning(alert_runs.c.id)
    ).scalar_one()
    for f in result.findings:
        old = states.get(f.key)
        before = _state(old)
        silenced = any(_matches(m, f.segment) for m in muted)
        s = step(before, f.observation, at, policy, silenced=silenced)
        episode = old.episode_id if old is not None else None
        if s.opens_episode:
            episode = conn.execute(
                insert(alert_episodes)
                .values(key=f.key, fired_at=at, resolved_at=None)
                .returning(alert_episodes.c.id)
            ).scalar_one()
        if s.closes_episode and episode is not None:
            conn.execute(
                update(alert_episodes).where(alert_episodes.c.id == episode).values(resolved_at=at)
            )
        values = {
            "rule": f.rule.value,
            "threshold": f.threshold,
            "segment_field": f.segment.field,
            "segment_value": f.segment.value,
            "status": s.state.status.value,
            "streak": s.state.streak,
            "since": s.state.since or at,
            "episode_id": episode,
            "notified": s.state.notified,
            "last_notice_at": s.state.last_notice_at,
            "reminders": s.state.reminders,
            "evaluated_at": at,
            "observation": f.observation.value,
            "share": f.share,
            "target": f.target,
            "matured": f.matured,
            "detail": json.dumps(f.detail, sort_keys=True, default=str),
        }
        if old is None:
            conn.execute(insert(alert_states).values(key=f.key, **values))
        else:
            conn.execute(update(alert_states).where(alert_states.c.key == f.key).values(values))
        if s.changed:
            conn.execute(
                insert(alert_transitions).values(
                    key=f.key,
                    episode_id=episode,
                    at=at,
                    from_status=before.status.value,
                    to_status=s.state.status.value,
                    share=f.share,
                    target=f.target,
                    matured=f.matured,
                )
            )
            result.transitions.append((f.key, before.status.value, s.state.status.value))
        if s.notice is not None and episode is not None:
            result.items.append(
                Item(
                    key=f.key,
                    rule=f.rule,
                    notice=s.notice,
                    threshold=f.threshold,
                    segment=f.segment,
                    since=(old.since if s.notice is Notice.RESOLVED and old else s.state.since)
                    or at,
                    episode_id=episode,
                    reminder=s.state.reminders,
                    share=f.share,
                    target=f.target,
                    matured=f.matured,
                    detail=f.detail,
                    complaints=_complaints(conn, config, at, f)
                    if f.rule is Rule.WARNING and s.notice is not Notice.RESOLVED
                    else (),
                )
            )
    result.queued = _messages(config, result.items, at)
    outbox.enqueue(conn, result.queued, started)
    conn.execute(
        update(alert_runs)
        .where(alert_runs.c.id == run_id)
        .values(
            evaluated=len(result.findings),
            transitions=len(result.transitions),
            queued=len(result.queued),
            held="; ".join(result.held),
        )
    )


def _complaints(
    conn: Connection, config: Config, at: datetime, f: Finding
) -> tuple[atrisk.OpenComplaint, ...]:
    sl = config.settings.service_level
    settings = config.settings.alerts
    assert f.threshold is not None
    created = creations_due(
        at,
        settings.warn_within,
        f.threshold,
        sl.day_mode,
        sl.zone,
        config.settings.calendar.work_calendar(),
    )
    if created is None or settings.warn_list == 0:
        return ()
    return tuple(
        atrisk.list_open(conn, at, created, sl.closure, f.segment.labels, settings.warn_list)
    )


def _messages(config: Config, items: Sequence[Item], at: datetime) -> list[outbox.Message]:
    """One message per channel and recipient with every notice routed there."""
    tz = config.settings.service_level.zone
    sender = config.settings.email.sender or "slamon@localhost"
    groups: dict[tuple[str, str], list[Item]] = {}
    for item in items:
        for name in _routes(config, item.segment):
            channel = config.settings.channels[name]
            for recipient in channel.recipients if channel.kind == "email" else ("",):
                groups.setdefault((name, recipient), []).append(item)
    queued = []
    for (name, recipient), group in groups.items():
        what = "+".join(f"{i.episode_id}.{i.notice.value}.{i.reminder}" for i in group)
        key = f"alert:{what}:{name}:{recipient}"
        if len(key) > 300:
            key = f"alert:{hashlib.sha256(key.encode()).hexdigest()}:{name}"[:400]
        channel = config.settings.channels[name]
        if channel.kind == "email":
            subject, text, html = messages.render_email(group, tz, at)
            thread = [
                message_id(f"alert:{i.episode_id}.firing.0:{name}:{recipient}", sender)
                for i in group
                if i.notice is not Notice.FIRING
            ]
            body = outbox.email_body(text, html, references=thread[:1])
        else:
            subject = messages.subject(group, tz)
            body = messages.webhook_body(channel.kind, group, tz, at)
        queued.append(
            outbox.Message(
                dedupe_key=key,
                kind="alert",
                channel=name,
                recipient=recipient,
                message_id=message_id(key, sender),
                subject=subject,
                body=body,
            )
        )
    return queued

"""The alert episode state machine: pure, one step per evaluation.

    ok --breach--> pending --(pending_evaluations breaching runs)--> firing
    pending --healthy or in between--> ok            (no message: it never fired)
    firing --(recover_evaluations healthy runs)--> resolved   (one "resolved" message)
    firing --repeat_every elapsed--> firing          (one reminder)
    resolved behaves as ok; a new breach starts a new episode.

An observation is BREACH, HEALTHY, BETWEEN (neither: below the recovery threshold but not a
significant breach, so a firing alert neither resolves nor a pending one advances), NO_VERDICT
(too few matured complaints: nothing changes) or HELD (a source behind the data is stale or failing:
nothing changes, so an alert never resolves on missing data).

Silences do not change states; they only hold back messages (see Notice.silenced): an episode
that fired under a silence sends its firing notice when the silence ends, if it is still firing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Observation(StrEnum):
    BREACH = "breach"
    HEALTHY = "healthy"
    BETWEEN = "between"
    NO_VERDICT = "no_verdict"
    HELD = "held"


class Notice(StrEnum):
    FIRING = "firing"
    REMINDER = "reminder"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Policy:
    pending_evaluations: int
    recover_evaluations: int
    repeat_every: timedelta


@dataclass(frozen=True, slots=True)
class State:
    status: Status = Status.OK
    #: consecutive breaching runs (pending) or healthy runs (firing)
    streak: int = 0
    #: when the current status began
    since: datetime | None = None
    #: the open episode has had its firing notice sent (or it was silenced and is still owed)
    notified: bool = False
    #: when the last notice of the open episode was queued
    last_notice_at: datetime | None = None
    reminders: int = 0


@dataclass(frozen=True, slots=True)
class Step:
    state: State
    #: a status change to record as a transition row (None: the status stayed)
    changed: bool
    #: the message to send, if any
    notice: Notice | None
    #: a new episode starts with this step
    opens_episode: bool = False
    #: the open episode ends with this step
    closes_episode: bool = False


def step(
    state: State, seen: Observation, now: datetime, policy: Policy, *, silenced: bool = False
) -> Step:
    """The next state after one evaluation that observed ``seen`` at ``now``."""
    s = state
    if s.status is Status.RESOLVED:  # resolved is ok with a memory of the last episode
        s = replace(s, status=Status.OK)
        state = s
    if seen in (Observation.NO_VERDICT, Observation.HELD):
        return _owed(state, s, now, policy, silenced)

    if s.status is Status.OK:
        if seen is not Observation.BREACH:
            return Step(s, changed=False, notice=None)
        if policy.pending_evaluations <= 1:
            return _fire(now, silenced)
        return Step(State(Status.PENDING, streak=1, since=now), changed=True, notice=None)

    if s.status is Status.PENDING:
        if seen is Observation.BREACH:
            if s.streak + 1 >= policy.pending_evaluations:
                return _fire(now, silenced)
            return Step(replace(s, streak=s.streak + 1), changed=False, notice=None)
        return Step(State(Status.OK, since=now), changed=True, notice=None)

    # firing
    if seen is Observation.HEALTHY:
        healthy = s.streak + 1
        if healthy >= policy.recover_evaluations:
            notice = Notice.RESOLVED if s.notified else None
            return Step(
                State(Status.RESOLVED, since=now),
                changed=True,
                notice=notice,
                closes_episode=True,
            )
        return _owed(state, replace(s, streak=healthy), now, policy, silenced)
    return _owed(state, replace(s, streak=0), now, policy, silenced)


def _fire(now: datetime, silenced: bool) -> Step:
    if silenced:
        state = State(Status.FIRING, since=now)
        return Step(state, changed=True, notice=None, opens_episode=True)
    state = State(Status.FIRING, since=now, notified=True, last_notice_at=now)
    return Step(state, changed=True, notice=Notice.FIRING, opens_episode=True)


def _owed(before: State, s: State, now: datetime, policy: Policy, silenced: bool) -> Step:
    """Keep the status; a firing alert sends what it owes: the firing notice held back by a
    silence that has ended, or a reminder once repeat_every has passed."""
    changed = s.status is not before.status
    if s.status is not Status.FIRING or silenced:
        return Step(s, changed=changed, notice=None)
    if not s.notified:
        return Step(
            replace(s, notified=True, last_notice_at=now), changed=changed, notice=Notice.FIRING
        )
    if s.last_notice_at is not None and now - s.last_notice_at >= policy.repeat_every:
        return Step(
            replace(s, last_notice_at=now, reminders=s.reminders + 1),
            changed=changed,
            notice=Notice.REMINDER,
        )
    return Step(s, changed=changed, notice=None)

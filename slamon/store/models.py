"""The tables. The schema is created only by the Alembic migrations in migrations/; a test
checks that these models and the migrations agree."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from slamon.store.types import Instant

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Source(Base):
    """A place complaints come from (a ticket system or an import label) and its sync state."""

    __tablename__ = "sources"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    #: The connector's own position (JSON text), advanced in the transaction that stores a page.
    cursor: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Instant)
    last_attempt_at: Mapped[datetime | None] = mapped_column(Instant)
    last_success_at: Mapped[datetime | None] = mapped_column(Instant)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: An interrupted backfill's window and position (JSON text), cleared when it completes.
    backfill_state: Mapped[str | None] = mapped_column(Text)


_CLOSED_INCLUDED = text("rl_dur IS NOT NULL")


class Complaint(Base):
    """One complaint, the newest version slamon has seen, keyed by (source, external_id)."""

    __tablename__ = "complaints"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        # The report joins local creation days to complaints by range on created_at.
        Index("ix_complaints_created_at", "created_at"),
        # Median and p90 from raw rows (store/rollup_levels.py): a cohort of one queue and one
        # local week, read in closure-time order from the index alone (other runs of days: a
        # range of it, sorted) ...
        Index(
            "ix_complaints_rl_queue",
            "queue",
            "rl_week",
            "rl_dur",
            "rl_day",
            "created_at",
            sqlite_where=_CLOSED_INCLUDED,
            postgresql_where=_CLOSED_INCLUDED,
        ),
        # ... and every closed complaint in closure-time order, for cohorts as large as the data.
        Index(
            "ix_complaints_rl_dur",
            "rl_dur",
            "rl_day",
            "created_at",
            sqlite_where=_CLOSED_INCLUDED,
            postgresql_where=_CLOSED_INCLUDED,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(100), ForeignKey("sources.name", onupdate="CASCADE"))
    external_id: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Instant)
    #: The earliest closure slamon has seen (or the source's own first closure).
    first_closed_at: Mapped[datetime | None] = mapped_column(Instant)
    #: The last closure; None while the complaint is open (also after a reopen).
    closed_at: Mapped[datetime | None] = mapped_column(Instant)
    status: Mapped[str] = mapped_column(Text, default="")
    queue: Mapped[str] = mapped_column(Text, default="")
    channel: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str] = mapped_column(Text, default="")
    #: The source's own last-updated time, when it gives one: older versions never win.
    source_updated_at: Mapped[datetime | None] = mapped_column(Instant)
    #: deleted / spam / merged at the source: kept, but left out of every metric.
    excluded_reason: Mapped[str | None] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(Instant)
    changed_at: Mapped[datetime] = mapped_column(Instant)
    #: The roll-up's view of this complaint, written with it under the roll-up's timezone and
    #: closure rule (rollup_meta): its local creation day (days since 1970-01-01) ...
    rl_day: Mapped[int | None] = mapped_column(Integer)
    #: ... its local ISO week ((rl_day + 3) // 7: weeks from Monday) ...
    rl_week: Mapped[int | None] = mapped_column(Integer)
    #: ... and its closure time in seconds when it is closed and not excluded, else None.
    rl_dur: Mapped[int | None] = mapped_column(BigInteger)


class RollupMeta(Base):
    """One row (id 1): what the roll-up was built under, and whether it can be trusted."""

    __tablename__ = "rollup_meta"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: "ready": the roll-up equals a rebuild from the complaints under the settings below;
    #: "stale": it does not (see note) and waits for `slamon db rebuild-rollup`.
    state: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str | None] = mapped_column(Text)
    closure: Mapped[str | None] = mapped_column(String(16))
    #: The kept dimensions, comma-separated, in the order of domain.SEGMENT_FIELDS.
    dimensions: Mapped[str | None] = mapped_column(Text)
    #: The exclusion rule the counts follow (rollup.EXCLUSION_RULE).
    exclusion: Mapped[str | None] = mapped_column(Text)
    #: import.excluded_statuses at the last build (JSON), for the record: they act when a
    #: complaint is stored, so the roll-up follows them through the stored rows.
    excluded_statuses: Mapped[str | None] = mapped_column(Text)
    built_at: Mapped[datetime | None] = mapped_column(Instant)
    #: No stored closure (closed_at or first_closed_at) is later than this instant.
    closed_hwm: Mapped[int | None] = mapped_column(BigInteger)


class RollupDay(Base):
    """Per grain (dim: "*" for all complaints, else a segment field), local creation day d and
    segment value: complaints (n), excluded (nx), closed as stored (nc), their closure seconds."""

    __tablename__ = "rollup_days"
    __table_args__ = (
        PrimaryKeyConstraint("dim", "d", "value"),
        {"sqlite_with_rowid": False},
    )

    dim: Mapped[str] = mapped_column(String(16))
    d: Mapped[int] = mapped_column(Integer)
    value: Mapped[str] = mapped_column(Text)
    n: Mapped[int] = mapped_column(BigInteger)
    nx: Mapped[int] = mapped_column(BigInteger)
    nc: Mapped[int] = mapped_column(BigInteger)
    secs: Mapped[int] = mapped_column(BigInteger)


class RollupClosure(Base):
    """The closed, not excluded complaints per grain, creation day d, value and local closing
    day c (c >= d): their count and closure seconds."""

    __tablename__ = "rollup_closures"
    __table_args__ = (
        PrimaryKeyConstraint("dim", "d", "value", "c"),
        {"sqlite_with_rowid": False},
    )

    dim: Mapped[str] = mapped_column(String(16))
    d: Mapped[int] = mapped_column(Integer)
    value: Mapped[str] = mapped_column(Text)
    c: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(BigInteger)
    secs: Mapped[int] = mapped_column(BigInteger)


class AlertState(Base):
    """The current state of one alert (a rule x threshold x segment), one row per key."""

    __tablename__ = "alert_states"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    rule: Mapped[str] = mapped_column(String(20))
    threshold: Mapped[int | None] = mapped_column(Integer)
    segment_field: Mapped[str] = mapped_column(String(20), default="")
    segment_value: Mapped[str] = mapped_column(Text, default="")
    #: ok, pending, firing or resolved (resolved behaves as ok)
    status: Mapped[str] = mapped_column(String(10))
    #: consecutive breaching runs while pending, healthy runs while firing
    streak: Mapped[int] = mapped_column(Integer, default=0)
    since: Mapped[datetime] = mapped_column(Instant)
    episode_id: Mapped[int | None] = mapped_column(Integer)
    #: the open episode's firing notice is out (False: held back by a silence, still owed)
    notified: Mapped[bool] = mapped_column(Boolean, default=False)
    last_notice_at: Mapped[datetime | None] = mapped_column(Instant)
    reminders: Mapped[int] = mapped_column(Integer, default=0)
    evaluated_at: Mapped[datetime] = mapped_column(Instant)
    #: what the last evaluation saw (breach, healthy, between, no_verdict, held)
    observation: Mapped[str] = mapped_column(String(20))
    share: Mapped[float | None] = mapped_column(Float)
    target: Mapped[float | None] = mapped_column(Float)
    matured: Mapped[int | None] = mapped_column(Integer)
    #: the rule's own figures and words (JSON text)
    detail: Mapped[str] = mapped_column(Text, default="{}")


class AlertEpisode(Base):
    """One firing of an alert, from firing to resolved."""

    __tablename__ = "alert_episodes"
    __table_args__ = (Index("ix_alert_episodes_key", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(400))
    fired_at: Mapped[datetime] = mapped_column(Instant)
    resolved_at: Mapped[datetime | None] = mapped_column(Instant)


class AlertTransition(Base):
    """A status change of an alert, written with the outbox rows it causes."""

    __tablename__ = "alert_transitions"
    __table_args__ = (Index("ix_alert_transitions_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(400))
    episode_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(Instant)
    from_status: Mapped[str] = mapped_column(String(10))
    to_status: Mapped[str] = mapped_column(String(10))
    share: Mapped[float | None] = mapped_column(Float)
    target: Mapped[float | None] = mapped_column(Float)
    matured: Mapped[int | None] = mapped_column(Integer)


class AlertRun(Base):
    """One evaluation of the rules: when, at which as_of, and what it did."""

    __tablename__ = "alert_runs"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(Instant)
    started_at: Mapped[datetime] = mapped_column(Instant)
    evaluated: Mapped[int] = mapped_column(Integer)
    transitions: Mapped[int] = mapped_column(Integer)
    queued: Mapped[int] = mapped_column(Integer)
    #: why alerts were held (stale or failing sources), or empty
    held: Mapped[str] = mapped_column(Text, default="")


class Silence(Base):
    """Notifications for matching alerts are held back until ends_at."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    #: segment values an alert must have (JSON object text; {} silences everything)
    match: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(Instant)
    ends_at: Mapped[datetime] = mapped_column(Instant)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Text, default="")
    cancelled_at: Mapped[datetime | None] = mapped_column(Instant)


class Outbox(Base):
    """A message to deliver. Written in the transaction that decides it; a sender claims it with
    a conditional UPDATE (pending -> sending), sends, and records the outcome."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("dedupe_key"),
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    #: what the message is for (alert run + channel + recipient, digest slot + recipient):
    #: deciding the same message twice inserts nothing
    dedupe_key: Mapped[str] = mapped_column(String(400))
    kind: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(100))
    #: an email address, or "" for a webhook channel
    recipient: Mapped[str] = mapped_column(Text, default="")
    #: stable across re-sends, so a duplicate after a crash folds in mail clients
    message_id: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(Text)
    #: the rendered message (JSON text: text, html, images, thread references or a webhook body)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Instant)
    #: pending, sending, sent or failed (gave up after max attempts)
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(Instant)
    claimed_at: Mapped[datetime | None] = mapped_column(Instant)
    claim_token: Mapped[str | None] = mapped_column(String(40))
    sent_at: Mapped[datetime | None] = mapped_column(Instant)
    last_error: Mapped[str | None] = mapped_column(Text)


class DigestSlot(Base):
    """A digest's schedule slot, claimed once before its messages are queued."""

    __tablename__ = "digest_slots"
    __table_args__ = (PrimaryKeyConstraint("name", "slot"),)

    name: Mapped[str] = mapped_column(String(100))
    slot: Mapped[datetime] = mapped_column(Instant)
    claimed_at: Mapped[datetime] = mapped_column(Instant)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    recipients: Mapped[int] = mapped_column(Integer, default=0)


class DaemonJob(Base):
    """What `slamon run` did with each of its jobs, for `slamon status`."""

    __tablename__ = "daemon_jobs"

    job: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_started_at: Mapped[datetime | None] = mapped_column(Instant)
    last_finished_at: Mapped[datetime | None] = mapped_column(Instant)
    #: ok or failed (of the last finished run)
    last_status: Mapped[str | None] = mapped_column(String(10))
    last_error: Mapped[str | None] = mapped_column(Text)
    next_run_at: Mapped[datetime | None] = mapped_column(Instant)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)


class DaemonLeader(Base):
    """The daemon holding the lead (one row, id 1), refreshed while it holds it."""

    __tablename__ = "daemon_leader"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    holder: Mapped[str] = mapped_column(String(200))
    since: Mapped[datetime] = mapped_column(Instant)
    seen_at: Mapped[datetime] = mapped_column(Instant)
    #: None while it runs; set when it stopped cleanly
    stopped_at: Mapped[datetime | None] = mapped_column(Instant)


complaints = cast(Table, Complaint.__table__)
sources = cast(Table, Source.__table__)
alert_states = cast(Table, AlertState.__table__)
alert_episodes = cast(Table, AlertEpisode.__table__)
alert_transitions = cast(Table, AlertTransition.__table__)
alert_runs = cast(Table, AlertRun.__table__)
silences = cast(Table, Silence.__table__)
outbox = cast(Table, Outbox.__table__)
digest_slots = cast(Table, DigestSlot.__table__)
rollup_meta = cast(Table, RollupMeta.__table__)
rollup_days = cast(Table, RollupDay.__table__)
rollup_closures = cast(Table, RollupClosure.__table__)
daemon_jobs = cast(Table, DaemonJob.__table__)
daemon_leader = cast(Table, DaemonLeader.__table__)

"""The tables. The schema is created only by the Alembic migrations in migrations/; a test
checks that these models and the migrations agree."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import ForeignKey, Index, MetaData, String, Table, Text, UniqueConstraint
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


class Complaint(Base):
    """One complaint, the newest version slamon has seen, keyed by (source, external_id)."""

    __tablename__ = "complaints"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        # The report joins local creation days to complaints by range on created_at.
        Index("ix_complaints_created_at", "created_at"),
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


complaints = cast(Table, Complaint.__table__)
sources = cast(Table, Source.__table__)

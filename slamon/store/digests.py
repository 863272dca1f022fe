"""Digest schedule slots: one row per (digest, slot) sent, claimed before its messages queue."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from slamon.store.models import digest_slots


def slot_taken(conn: Connection, name: str, slot: datetime) -> bool:
    query = select(digest_slots.c.name).where(
        digest_slots.c.name == name, digest_slots.c.slot == slot
    )
    return conn.execute(query).first() is not None


def claim_slot(
    conn: Connection, name: str, slot: datetime, now: datetime, *, late: bool, recipients: int
) -> bool:
    """Insert the slot's row; False when another sender (or an earlier run) has it."""
    insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
    claimed = conn.execute(
        insert(digest_slots)
        .values(name=name, slot=slot, claimed_at=now, late=late, recipients=recipients)
        .on_conflict_do_nothing(index_elements=["name", "slot"])
        .returning(digest_slots.c.name)
    ).first()
    return claimed is not None

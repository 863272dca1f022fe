"""Writing complaints: one batch at a time, stored versions merged with incoming ones.

For a batch: read the stored versions of its keys (one query), decide in pure Python what changes
(domain.merge), and write only what changed with one dialect-native INSERT ... ON CONFLICT DO
UPDATE. The caller owns the transaction: a batch and whatever goes with it (a sync cursor, a
roll-up) commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects import postgresql, sqlite

from slamon.domain import ComplaintRecord, is_older, merge
from slamon.store.models import complaints, sources

_RECORD_FIELDS = tuple(f.name for f in fields(ComplaintRecord))
_INSTANT_FIELDS = ("created_at", "closed_at", "first_closed_at", "source_updated_at")
_UPDATED_ON_CONFLICT = (*(f for f in _RECORD_FIELDS if f != "external_id"), "changed_at")


@dataclass(slots=True)
class BatchResult:
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    stale: int = 0
    #: Records whose id came again within the same batch (applied in order, see _fold).
    repeated: int = 0

    def add(self, other: BatchResult) -> None:
        self.new += other.new
        self.changed += other.changed
        self.unchanged += other.unchanged
        self.stale += other.stale
        self.repeated += other.repeated


def ensure_source(conn: Connection, name: str, kind: str, now: datetime) -> str:
    """Register a source on first use; returns the kind it is registered with."""
    row = conn.execute(select(sources.c.kind).where(sources.c.name == name)).first()
    if row is not None:
        return str(row.kind)
    conn.execute(sources.insert().values(name=name, kind=kind, created_at=now))
    return kind


def stored_versions(
    conn: Connection, source: str, external_ids: Sequence[str]
) -> dict[str, ComplaintRecord]:
    cols = [complaints.c[name] for name in _RECORD_FIELDS]
    rows = conn.execute(
        select(*cols).where(
            complaints.c.source == source, complaints.c.external_id.in_(external_ids)
        )
    )
    return {row.external_id: ComplaintRecord(*row) for row in rows}


def _whole_seconds(rec: ComplaintRecord) -> ComplaintRecord:
    """Instants as storage keeps them (sub-seconds dropped), so that merge() compares like with
    like; naive ones are left for the Instant type to refuse."""
    cut = {
        name: value.replace(microsecond=0)
        for name in _INSTANT_FIELDS
        if (value := getattr(rec, name)) is not None and value.microsecond
    }
    return replace(rec, **cut) if cut else rec


def _fold(records: Iterable[ComplaintRecord]) -> tuple[dict[str, ComplaintRecord], int]:
    """One version per id within a batch, as if the records had been applied one by one: the
    newest by the source's time wins (else the later one), and the earliest closure seen is kept.
    Returns the versions and how many records repeated an id."""
    latest: dict[str, ComplaintRecord] = {}
    repeated = 0
    for raw in records:
        rec = merge(None, _whole_seconds(raw))
        assert rec is not None
        seen = latest.get(rec.external_id)
        if seen is not None:
            repeated += 1
            rec = merge(seen, rec) or seen
        latest[rec.external_id] = rec
    return latest, repeated


def apply_batch(
    conn: Connection, source: str, records: Iterable[ComplaintRecord], now: datetime
) -> BatchResult:
    """Upsert one batch of records of ``source``; returns what happened to them."""
    incoming, repeated = _fold(records)
    result = BatchResult(repeated=repeated)
    if not incoming:
        return result
    stored = stored_versions(conn, source, list(incoming))
    rows: list[dict[str, Any]] = []
    for ext_id, rec in incoming.items():
        old = stored.get(ext_id)
        new = merge(old, rec)
        if new is None:
            if old is not None and is_older(rec, old):
                result.stale += 1
            else:
                result.unchanged += 1
            continue
        if old is None:
            result.new += 1
        else:
            result.changed += 1
        row = {name: getattr(new, name) for name in _RECORD_FIELDS}
        row.update(source=source, first_seen_at=now, changed_at=now)
        rows.append(row)
    if rows:
        _upsert(conn, rows)
    return result


def _upsert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    dialect = conn.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(complaints)
    stmt = stmt.on_conflict_do_update(
        index_elements=[complaints.c.source, complaints.c.external_id],
        set_={name: stmt.excluded[name] for name in _UPDATED_ON_CONFLICT},
    )
    conn.execute(stmt, rows)


def count(conn: Connection, source: str | None = None) -> int:
    query = select(func.count()).select_from(complaints)
    if source is not None:
        query = query.where(complaints.c.source == source)
    return int(conn.execute(query).scalar_one())

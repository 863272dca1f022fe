"""Writing complaints: one batch at a time, stored versions merged with incoming ones.

For a batch: read the stored versions of its keys (one query), decide in pure Python what changes
(domain.merge), and write only what changed with one dialect-native INSERT ... ON CONFLICT DO
UPDATE. The roll-up (store/rollup.py) is kept in the same statement sequence: the stored version's
contribution out, the new one in. The caller owns the transaction: a batch and whatever goes with
it (a sync cursor, the roll-up) commit together or not at all.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ARRAY, Connection, Text, any_, bindparam, func, select

from slamon.domain import ComplaintRecord, is_older, merge
from slamon.instants import to_epoch
from slamon.store import rollup
from slamon.store.models import complaints, sources

_RECORD_FIELDS = tuple(f.name for f in fields(ComplaintRecord))
_INSTANT_FIELDS = ("created_at", "closed_at", "first_closed_at", "source_updated_at")
_UPDATED_ON_CONFLICT = (
    *(f for f in _RECORD_FIELDS if f != "external_id"),
    "changed_at",
    "rl_day",
    "rl_week",
    "rl_dur",
)


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
    if conn.dialect.name == "postgresql":
        # One array parameter: an IN list of 5,000 placeholders cost the server 170 ms a batch
        # to parse and plan (half an import's time), against 10 ms for = ANY.
        match = complaints.c.external_id == any_(bindparam("ids", type_=ARRAY(Text)))
        params: dict[str, Any] = {"ids": list(external_ids)}
    else:
        match = complaints.c.external_id.in_(external_ids)
        params = {}
    rows = conn.execute(select(*cols).where(complaints.c.source == source, match), params)
    return {row.external_id: ComplaintRecord(*row) for row in rows}


def _whole_seconds(rec: ComplaintRecord) -> ComplaintRecord:
    """Instants as storage keeps them (sub-seconds dropped), so that merge() compares like with
    like. A naive datetime is refused: an instant without a zone means nothing."""
    cut = {}
    for name in _INSTANT_FIELDS:
        value = getattr(rec, name)
        if value is None:
            continue
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime in {name} of {rec.external_id!r}: instants must be aware"
            )
        if value.microsecond:
            cut[name] = value.replace(microsecond=0)
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


def _epoch(value: datetime | None) -> int | None:
    # Whole seconds already (_whole_seconds); aware (checked there too).
    return None if value is None else int(value.timestamp())


def apply_batch(
    conn: Connection, source: str, records: Iterable[ComplaintRecord], now: datetime
) -> BatchResult:
    """Upsert one batch of records of ``source``; returns what happened to them."""
    incoming, repeated = _fold(records)
    result = BatchResult(repeated=repeated)
    if not incoming:
        return result
    stored = stored_versions(conn, source, list(incoming))
    keep: rollup.Upkeep | None = None
    rows: list[tuple[Any, ...]] = []
    stamp = to_epoch(now)
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
        if not rows:
            keep = rollup.upkeep(conn)  # the roll-up's lock, taken only by a batch that writes
        created = int(new.created_at.timestamp())
        closed = _epoch(new.closed_at)
        first = _epoch(new.first_closed_at)
        if keep is None:
            rl: tuple[int | None, int | None, int | None] = (None, None, None)
        else:
            counted = keep.counted(source, new, closed, first, created)
            rl = keep.columns(counted)
            if keep.tables:
                was = None
                if old is not None:
                    was = keep.counted(
                        source,
                        old,
                        _epoch(old.closed_at),
                        _epoch(old.first_closed_at),
                        int(old.created_at.timestamp()),
                    )
                latest = (
                    closed if first is None or (closed is not None and closed > first) else first
                )
                keep.change(was, counted, latest)
        # The columns of _INSERT_COLUMNS, in order (checked at import below).
        rows.append(
            (
                ext_id,
                created,
                closed,
                first,
                new.status,
                new.queue,
                new.channel,
                new.category,
                new.priority,
                new.subject,
                new.url,
                _epoch(new.source_updated_at),
                new.excluded_reason,
                source,
                stamp,
                stamp,
                *rl,
            )
        )
    if rows:
        _upsert(conn, rows)
        if keep is not None:
            keep.flush(conn)
    return result


#: From this many rows a PostgreSQL batch goes through COPY and one INSERT ... SELECT.
COPY_FROM = 200


def _upsert(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    if conn.dialect.name == "postgresql" and len(rows) >= COPY_FROM:
        _upsert_by_copy(conn, rows)
        return
    # One statement text, executemany: sqlite3 loops in C; psycopg pipelines the rows. (A
    # 1,000-row VALUES list was slower on psycopg: it re-splits a 17,000-placeholder query
    # on every call.)
    conn.exec_driver_sql(_upsert_sql(conn.dialect.paramstyle), rows)


def _upsert_by_copy(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL: the rows are COPied into a temporary staging table of this session (same
    column types as complaints, no constraints), then upserted by one statement; the rows of a
    batch are unique by (source, external_id) (_fold), as ON CONFLICT needs. Executemany made
    the server parse and plan one INSERT per row: most of an import's time."""
    stage, create, insert = _copy_sql()
    conn.exec_driver_sql(create)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {stage} ({', '.join(_INSERT_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    finally:
        cursor.close()
    conn.exec_driver_sql(insert)
    conn.exec_driver_sql(f"TRUNCATE {stage}")


@cache
def _copy_sql() -> tuple[str, str, str]:
    columns = ", ".join(_INSERT_COLUMNS)
    # The name follows the columns, so that a session never fills a stage of another shape.
    stage = f"slamon_stage_{zlib.crc32(columns.encode()):08x}"
    create = (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS"
        f" SELECT {columns} FROM {complaints.name} WITH NO DATA"
    )
    updates = ", ".join(f"{c} = excluded.{c}" for c in _UPDATED_ON_CONFLICT)
    insert = (
        f"INSERT INTO {complaints.name} ({columns}) SELECT {columns} FROM {stage}"
        f" ON CONFLICT (source, external_id) DO UPDATE SET {updates}"
    )
    return stage, create, insert


_INSERT_COLUMNS = (
    *_RECORD_FIELDS,
    "source",
    "first_seen_at",
    "changed_at",
    "rl_day",
    "rl_week",
    "rl_dur",
)
assert _INSERT_COLUMNS == (
    "external_id",
    "created_at",
    "closed_at",
    "first_closed_at",
    "status",
    "queue",
    "channel",
    "category",
    "priority",
    "subject",
    "url",
    "source_updated_at",
    "excluded_reason",
    "source",
    "first_seen_at",
    "changed_at",
    "rl_day",
    "rl_week",
    "rl_dur",
), "apply_batch builds its rows in this order"


@cache
def _upsert_sql(paramstyle: str) -> str:
    """INSERT ... ON CONFLICT DO UPDATE, the same text on SQLite and PostgreSQL; rows go to the
    driver as plain tuples with instants as epoch seconds (the Instant type's storage form), so
    that a million-row import does not pay per-value conversions. first_seen_at is set on
    insert only."""
    mark = "?" if paramstyle == "qmark" else "%s"
    columns = ", ".join(_INSERT_COLUMNS)
    marks = ", ".join([mark] * len(_INSERT_COLUMNS))
    updates = ", ".join(f"{c} = excluded.{c}" for c in _UPDATED_ON_CONFLICT)
    return (
        f"INSERT INTO {complaints.name} ({columns}) VALUES ({marks})"
        f" ON CONFLICT (source, external_id) DO UPDATE SET {updates}"
    )


def count(conn: Connection, source: str | None = None) -> int:
    query = select(func.count()).select_from(complaints)
    if source is not None:
        query = query.where(complaints.c.source == source)
    return int(conn.execute(query).scalar_one())

"""The complaint store on SQLite and PostgreSQL: instants, apply_batch and its single upsert."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, select, text

from slamon.domain import ComplaintRecord
from slamon.store.complaints import (
    COPY_FROM,
    BatchResult,
    apply_batch,
    ensure_source,
    stored_versions,
)
from slamon.store.engine import write_transaction
from slamon.store.models import complaints, sources
from slamon.store.types import Instant

SOURCE = "crm"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
MSK = timezone(timedelta(hours=3))
NEW_YORK_WINTER = timezone(timedelta(hours=-5))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def rec(ext_id: str, **fields: Any) -> ComplaintRecord:
    fields.setdefault("created_at", utc(2026, 3, 2, 10, 0))
    return ComplaintRecord(external_id=ext_id, **fields)


def apply(
    engine: Engine, records: Sequence[ComplaintRecord], now: datetime = NOW, source: str = SOURCE
) -> BatchResult:
    with write_transaction(engine) as conn:
        ensure_source(conn, source, "import", now)
        return apply_batch(conn, source, records, now)


def stored(engine: Engine, *ids: str, source: str = SOURCE) -> dict[str, ComplaintRecord]:
    with engine.connect() as conn:
        return stored_versions(conn, source, list(ids))


def bookkeeping(engine: Engine) -> dict[str, tuple[datetime, datetime]]:
    """external_id -> (first_seen_at, changed_at) for every stored complaint of SOURCE."""
    query = select(
        complaints.c.external_id, complaints.c.first_seen_at, complaints.c.changed_at
    ).where(complaints.c.source == SOURCE)
    with engine.connect() as conn:
        return {r.external_id: (r.first_seen_at, r.changed_at) for r in conn.execute(query)}


def count_rows(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(table)).all())


# --- instants -----------------------------------------------------------------------------


def test_instants_are_stored_as_epoch_seconds_and_read_back_as_aware_utc(engine: Engine) -> None:
    record = rec(
        "1",
        created_at=datetime(2026, 3, 2, 10, 0, 0, 999_999, tzinfo=MSK),  # 07:00:00.999999Z
        closed_at=datetime(2026, 3, 3, 4, 30, 15, 500_000, tzinfo=NEW_YORK_WINTER),  # 09:30:15.5Z
        first_closed_at=datetime(2026, 3, 3, 9, 0, 1, 1, tzinfo=UTC),
        source_updated_at=datetime(2026, 3, 3, 12, 0, 0, 250_000, tzinfo=MSK),  # 09:00:00.25Z
    )
    now = datetime(2026, 3, 10, 12, 0, 59, 999_999, tzinfo=UTC)
    assert apply(engine, [record], now=now) == BatchResult(new=1)

    back = stored(engine, "1")["1"]
    assert back.created_at == utc(2026, 3, 2, 7, 0, 0)
    assert back.closed_at == utc(2026, 3, 3, 9, 30, 15)
    assert back.first_closed_at == utc(2026, 3, 3, 9, 0, 1)
    assert back.source_updated_at == utc(2026, 3, 3, 9, 0, 0)
    for value in (back.created_at, back.closed_at, back.first_closed_at, back.source_updated_at):
        assert value is not None
        assert value.tzinfo is UTC
        assert value.microsecond == 0
    first_seen, changed = bookkeeping(engine)["1"]
    assert first_seen == changed == utc(2026, 3, 10, 12, 0, 59)
    assert first_seen.tzinfo is UTC

    # The same integers on both engines: what the report's SQL compares and subtracts.
    with engine.connect() as conn:
        raw = conn.execute(
            text("SELECT created_at, closed_at, first_closed_at, source_updated_at FROM complaints")
        ).one()
    assert tuple(raw) == (1772434800, 1772530215, 1772528401, 1772528400)


def test_open_complaint_reads_back_none(engine: Engine) -> None:
    apply(engine, [rec("1")])
    back = stored(engine, "1")["1"]
    assert (back.closed_at, back.first_closed_at, back.source_updated_at) == (None, None, None)


def test_instant_type_refuses_naive_datetimes(engine: Engine) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        Instant().process_bind_param(datetime(2026, 3, 2, 10, 0), engine.dialect)
    assert Instant().process_bind_param(utc(2026, 3, 2, 7, 0), engine.dialect) == 1772434800
    assert Instant().process_result_value(1772434800, engine.dialect) == utc(2026, 3, 2, 7, 0)


def test_apply_batch_with_a_naive_datetime_raises_and_writes_nothing(engine: Engine) -> None:
    good = rec("good")
    naive = rec("naive", created_at=datetime(2026, 3, 2, 10, 0))
    with pytest.raises(ValueError, match="naive datetime in created_at of 'naive'"):
        apply(engine, [good, naive])
    assert count_rows(engine, complaints) == 0
    assert count_rows(engine, sources) == 0


# --- apply_batch: what happens to each record ---------------------------------------------


def test_apply_batch_counts_new_changed_unchanged_stale(engine: Engine) -> None:
    first = [
        rec("a", status="open"),
        rec("b", status="open"),
        rec("c", status="closed", source_updated_at=utc(2026, 3, 5, 12, 0)),
    ]
    assert apply(engine, first) == BatchResult(new=3, changed=0, unchanged=0, stale=0)

    second = [
        rec("a", status="open"),  # identical
        rec("b", status="closed", closed_at=utc(2026, 3, 4, 9, 0)),  # changed
        rec("c", status="open", source_updated_at=utc(2026, 3, 4, 12, 0)),  # older than stored
        rec("d", queue="billing"),  # new
    ]
    later = NOW + timedelta(hours=1)
    assert apply(engine, second, now=later) == BatchResult(new=1, changed=1, unchanged=1, stale=1)

    got = stored(engine, "a", "b", "c", "d")
    assert got["a"] == first[0]
    assert got["b"] == replace(second[1], first_closed_at=utc(2026, 3, 4, 9, 0))
    assert got["c"] == first[2]
    assert got["d"] == second[3]
    times = bookkeeping(engine)
    assert times == {
        "a": (NOW, NOW),
        "b": (NOW, later),
        "c": (NOW, NOW),
        "d": (later, later),
    }


def test_reapplying_an_identical_batch_changes_nothing(engine: Engine) -> None:
    batch = [
        rec(str(i), status="closed", closed_at=utc(2026, 3, 3, i, 0), subject=f"s{i}")
        for i in range(10)
    ]
    assert apply(engine, batch) == BatchResult(new=10)
    before = stored(engine, *(r.external_id for r in batch))

    assert apply(engine, batch, now=NOW + timedelta(days=1)) == BatchResult(unchanged=10)
    assert stored(engine, *(r.external_id for r in batch)) == before
    assert set(bookkeeping(engine).values()) == {(NOW, NOW)}


def test_reapplying_a_batch_with_sub_second_instants_changes_nothing(engine: Engine) -> None:
    """Instants are stored truncated to whole seconds; the same batch given again must compare
    equal to what was stored, not be rewritten (and changed_at bumped) on every run."""
    record = rec(
        "1",
        created_at=datetime(2026, 3, 2, 10, 0, 0, 999_999, tzinfo=MSK),
        closed_at=datetime(2026, 3, 3, 9, 30, 15, 500_000, tzinfo=UTC),
    )
    assert apply(engine, [record]) == BatchResult(new=1)
    assert apply(engine, [record], now=NOW + timedelta(days=1)) == BatchResult(unchanged=1)
    assert bookkeeping(engine) == {"1": (NOW, NOW)}


def test_a_changed_record_updates_changed_at_but_keeps_first_seen_at(engine: Engine) -> None:
    apply(engine, [rec("1", status="open")])
    later = NOW + timedelta(hours=5)
    assert apply(engine, [rec("1", status="in progress")], now=later) == BatchResult(changed=1)
    assert stored(engine, "1")["1"].status == "in progress"
    assert bookkeeping(engine) == {"1": (NOW, later)}


def test_an_older_version_never_overwrites_a_newer_one(engine: Engine) -> None:
    newer = rec(
        "1",
        status="closed",
        closed_at=utc(2026, 3, 4, 9, 0),
        source_updated_at=utc(2026, 3, 4, 9, 0),
    )
    older = rec("1", status="open", source_updated_at=utc(2026, 3, 3, 9, 0))
    assert apply(engine, [newer]) == BatchResult(new=1)
    assert apply(engine, [older], now=NOW + timedelta(hours=1)) == BatchResult(stale=1)
    assert stored(engine, "1")["1"] == replace(newer, first_closed_at=utc(2026, 3, 4, 9, 0))
    assert bookkeeping(engine) == {"1": (NOW, NOW)}

    # The same source time is not older: the incoming version wins.
    same_time = replace(newer, status="closed (verified)")
    assert apply(engine, [same_time], now=NOW + timedelta(hours=2)) == BatchResult(changed=1)
    assert stored(engine, "1")["1"].status == "closed (verified)"


def test_duplicates_within_a_batch_keep_the_newest_by_source_time(engine: Engine) -> None:
    batch = [
        rec("1", status="v2", source_updated_at=utc(2026, 3, 4, 12, 0)),
        rec("1", status="v1", source_updated_at=utc(2026, 3, 4, 11, 0)),
        rec("2", status="first"),
        rec("2", status="second"),
        rec("2", status="last"),
    ]
    assert apply(engine, batch) == BatchResult(new=2, repeated=3)
    got = stored(engine, "1", "2")
    assert got["1"].status == "v2"
    assert got["1"].source_updated_at == utc(2026, 3, 4, 12, 0)
    assert got["2"].status == "last"
    assert count_rows(engine, complaints) == 2


def test_first_closed_at_keeps_the_earliest_closure_across_reopen_and_reclose(
    engine: Engine,
) -> None:
    t1 = utc(2026, 3, 3, 9, 0)
    t3 = utc(2026, 3, 6, 15, 0)
    closed = rec("1", status="closed", closed_at=t1)
    reopened = rec("1", status="reopened")
    reclosed = rec("1", status="closed", closed_at=t3)

    assert apply(engine, [closed]) == BatchResult(new=1)
    got = stored(engine, "1")["1"]
    assert (got.closed_at, got.first_closed_at) == (t1, t1)

    assert apply(engine, [reopened]) == BatchResult(changed=1)
    got = stored(engine, "1")["1"]
    assert (got.status, got.closed_at, got.first_closed_at) == ("reopened", None, t1)

    assert apply(engine, [reclosed]) == BatchResult(changed=1)
    got = stored(engine, "1")["1"]
    assert (got.status, got.closed_at, got.first_closed_at) == ("closed", t3, t1)

    # Seeing the re-closed version again changes nothing: first_closed_at is not "new".
    assert apply(engine, [reclosed]) == BatchResult(unchanged=1)


def test_an_explicit_first_closed_at_from_the_source_is_honoured(engine: Engine) -> None:
    t0 = utc(2026, 3, 2, 18, 0)
    t1 = utc(2026, 3, 3, 9, 0)
    t2 = utc(2026, 3, 5, 9, 0)
    # Never seen before: the source's own first closure, not its last one.
    apply(engine, [rec("1", closed_at=t2, first_closed_at=t1)])
    got = stored(engine, "1")["1"]
    assert (got.closed_at, got.first_closed_at) == (t2, t1)

    # Seen closed at t1; the source later reports an even earlier first closure t0.
    apply(engine, [rec("2", closed_at=t1)])
    assert stored(engine, "2")["2"].first_closed_at == t1
    assert apply(engine, [rec("2", closed_at=t2, first_closed_at=t0)]) == BatchResult(changed=1)
    got = stored(engine, "2")["2"]
    assert (got.closed_at, got.first_closed_at) == (t2, t0)


def test_excluded_reason_is_stored_and_can_be_lifted(engine: Engine) -> None:
    assert apply(engine, [rec("1", excluded_reason="spam"), rec("2")]) == BatchResult(new=2)
    got = stored(engine, "1", "2")
    assert (got["1"].excluded_reason, got["2"].excluded_reason) == ("spam", None)
    assert apply(engine, [rec("1"), rec("2", excluded_reason="merged")]) == BatchResult(changed=2)
    got = stored(engine, "1", "2")
    assert (got["1"].excluded_reason, got["2"].excluded_reason) == (None, "merged")


def test_the_same_id_in_two_sources_is_two_complaints(engine: Engine) -> None:
    assert apply(engine, [rec("1", subject="from crm")], source="crm") == BatchResult(new=1)
    assert apply(engine, [rec("1", subject="from mail")], source="mail") == BatchResult(new=1)
    assert stored(engine, "1", source="crm")["1"].subject == "from crm"
    assert stored(engine, "1", source="mail")["1"].subject == "from mail"
    assert count_rows(engine, complaints) == 2


def test_an_empty_batch_does_nothing(engine: Engine) -> None:
    assert apply(engine, []) == BatchResult()
    assert count_rows(engine, complaints) == 0


# --- the upsert is one INSERT ... ON CONFLICT ---------------------------------------------


@contextmanager
def recorded(conn: Connection) -> Iterator[list[tuple[str, int]]]:
    """The statements a connection sends: (SQL, rows it carries): the parameter sets of an
    executemany, or the rows of one multi-row VALUES list."""
    seen: list[tuple[str, int]] = []

    def before(_conn: Any, _cur: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        text = " ".join(statement.split())
        rows = statement.count("), (") + 1 if " VALUES (" in statement and not many else 1
        seen.append((text, len(params) if many else rows))

    event.listen(conn, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(conn, "before_cursor_execute", before)


UPSERT = re.compile(
    r"^INSERT INTO complaints \(.*\) VALUES \(.*\) "
    r"ON CONFLICT \(source, external_id\) DO UPDATE SET .*changed_at = excluded\.changed_at",
    re.IGNORECASE,
)
UPSERT_SELECT = re.compile(
    r"^INSERT INTO complaints \(.*\) SELECT .* FROM slamon_stage_[0-9a-f]{8} "
    r"ON CONFLICT \(source, external_id\) DO UPDATE SET .*changed_at = excluded\.changed_at",
    re.IGNORECASE,
)


def batch_statements(engine: Engine, records: list[ComplaintRecord]) -> list[tuple[str, int]]:
    """The statements on the complaints table (the roll-up's own are tested in test_rollup*)."""
    with write_transaction(engine) as conn:
        ensure_source(conn, SOURCE, "import", NOW)
        with recorded(conn) as seen:
            apply_batch(conn, SOURCE, records, NOW)
    return [s for s in seen if "rollup_" not in s[0]]


def kinds(seen: list[tuple[str, int]]) -> list[str]:
    return [sql.split()[0].upper() for sql, _ in seen]


@pytest.mark.parametrize("size", [5, 500])
def test_a_batch_of_new_rows_is_one_select_and_one_upsert(engine: Engine, size: int) -> None:
    records = [rec(f"id-{i}", subject=f"s{i}") for i in range(size)]
    seen = batch_statements(engine, records)
    assert count_rows(engine, complaints) == size
    assert seen[0][1] == 1
    if engine.dialect.name == "postgresql" and size >= COPY_FROM:
        # COPY into the session's staging table, then one INSERT ... SELECT.
        assert kinds(seen) == ["SELECT", "CREATE", "INSERT", "TRUNCATE"]
        assert UPSERT_SELECT.match(seen[2][0]), seen[2][0]
        return
    assert kinds(seen) == ["SELECT", "INSERT"]
    sql, param_sets = seen[1]
    assert UPSERT.match(sql), sql
    assert param_sets == size


def test_a_mixed_batch_writes_only_the_changed_rows_in_one_upsert(engine: Engine) -> None:
    records = [rec(f"id-{i}", status="open") for i in range(500)]
    apply(engine, records)
    again = [
        replace(r, status="closed", closed_at=utc(2026, 3, 4, 9, 0)) if i % 2 else r
        for i, r in enumerate(records)
    ]
    again += [rec(f"new-{i}") for i in range(20)]
    seen = batch_statements(engine, again)
    assert not any(sql.upper().startswith(("UPDATE", "DELETE")) for sql, _ in seen)
    assert count_rows(engine, complaints) == 520
    if engine.dialect.name == "postgresql":  # 270 rows >= COPY_FROM: staged by COPY
        assert kinds(seen) == ["SELECT", "CREATE", "INSERT", "TRUNCATE"]
        assert UPSERT_SELECT.match(seen[2][0])
        return
    assert kinds(seen) == ["SELECT", "INSERT"]
    assert UPSERT.match(seen[1][0])
    assert seen[1][1] == 250 + 20


def test_an_unchanged_batch_is_one_select_and_no_write(engine: Engine) -> None:
    records = [rec(f"id-{i}") for i in range(500)]
    apply(engine, records)
    seen = batch_statements(engine, records)
    assert kinds(seen) == ["SELECT"]

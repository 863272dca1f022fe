"""Incremental sync and backfill: page -> upsert -> cursor, committed together.

A crash at any instant loses nothing: a page and the cursor after it land in one transaction, so
a rerun resumes after the last stored page, and the upsert (domain.merge) makes pages seen twice
or out of order converge to the newest version by the source's own updated time.
Backfill walks a date range with its own checkpoint (sources.backfill_state): it never moves the
incremental cursor and never sends a notification.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update

from slamon.connectors.base import Connector, ConnectorError, Cursor, Page, SyncWindow
from slamon.store.complaints import BatchResult, apply_batch, ensure_source
from slamon.store.engine import write_transaction
from slamon.store.models import sources

log = logging.getLogger("slamon.sync")

Now = Callable[[], datetime]


@dataclass(slots=True)
class SyncResult:
    source: str
    pages: int = 0
    counts: BatchResult = field(default_factory=BatchResult)
    skipped: int = 0
    error: str | None = None
    permanent: bool = False
    requests: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def received(self) -> int:
        c = self.counts
        return c.new + c.changed + c.unchanged + c.stale


def _load(engine: Engine, name: str, column: str) -> Cursor | None:
    with engine.connect() as conn:
        raw = conn.execute(select(sources.c[column]).where(sources.c.name == name)).scalar()
    if raw is None:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None


def _dump(value: Cursor | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def register(engine: Engine, name: str, kind: str, now: datetime) -> None:
    with write_transaction(engine) as conn:
        ensure_source(conn, name, kind, now)


def _store_page(
    engine: Engine, name: str, page: Page, now: datetime, column: str, state: Cursor
) -> BatchResult:
    with write_transaction(engine) as conn:
        counts = apply_batch(conn, name, page.records, now)
        conn.execute(update(sources).where(sources.c.name == name).values({column: _dump(state)}))
    return counts


def _record_outcome(engine: Engine, name: str, now: datetime, error: str | None) -> None:
    values: dict[str, Any] = {"last_attempt_at": now, "last_error": error}
    if error is None:
        values["last_success_at"] = now
    with write_transaction(engine) as conn:
        conn.execute(update(sources).where(sources.c.name == name).values(values))


def _run(
    engine: Engine,
    name: str,
    pages: Iterator[Page],
    now: Now,
    column: str,
    state: Callable[[Page], Cursor],
    result: SyncResult,
    on_page: Callable[[SyncResult, Page], None] | None,
) -> None:
    try:
        for page in pages:
            result.counts.add(_store_page(engine, name, page, now(), column, state(page)))
            result.pages += 1
            result.skipped += page.skipped
            if on_page is not None:
                on_page(result, page)
    except ConnectorError as exc:
        result.error = str(exc)
        result.permanent = exc.permanent
        log.warning("%s", exc)  # connector errors name their source


def sync(
    engine: Engine,
    name: str,
    kind: str,
    connector: Connector,
    now: Now,
    on_page: Callable[[SyncResult, Page], None] | None = None,
) -> SyncResult:
    """Fetch what changed at the source since its cursor and store it, page by page."""
    register(engine, name, kind, now())
    result = SyncResult(name)
    cursor = _load(engine, name, "cursor")
    _run(
        engine, name, connector.changes(cursor), now, "cursor", lambda p: p.cursor, result, on_page
    )
    _record_outcome(engine, name, now(), result.error)
    return result


def backfill(
    engine: Engine,
    name: str,
    kind: str,
    connector: Connector,
    window: SyncWindow,
    now: Now,
    on_page: Callable[[SyncResult, Page], None] | None = None,
) -> SyncResult:
    """Pull the complaints of ``window``, resuming from the checkpoint of an interrupted run over
    the same window. The incremental cursor is left alone."""
    register(engine, name, kind, now())
    result = SyncResult(name)
    key = {"since": window.since.isoformat(), "until": window.until.isoformat()}
    saved = _load(engine, name, "backfill_state")
    checkpoint = saved.get("cursor") if saved and saved.get("window") == key else None
    _run(
        engine,
        name,
        connector.history(window, checkpoint),
        now,
        "backfill_state",
        lambda p: {"window": key, "cursor": p.cursor},
        result,
        on_page,
    )
    if result.ok:
        with write_transaction(engine) as conn:
            conn.execute(update(sources).where(sources.c.name == name).values(backfill_state=None))
    return result

"""Sources as configured: building their connectors, and what `slamon sources` shows."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from slamon.config import Config
from slamon.connectors.base import Connector, registry
from slamon.connectors.http import HttpClient
from slamon.errors import UsageError
from slamon.store.models import complaints, sources


def open_connector(
    config: Config,
    name: str,
    *,
    now: datetime,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[str, Connector, HttpClient]:
    """The connector of source ``name`` with its HTTP client (close the client when done)."""
    settings = config.sources.get(name)
    if settings is None:
        known = ", ".join(sorted(config.sources)) or "none configured"
        raise UsageError(f"no source {name!r} in {config.label} (sources: {known})")
    cls = registry.get(settings.kind)

    def secret(field: str) -> str | None:
        return config.secret(
            f"sources.{name}.{field}",
            getattr(settings, f"{field}_env", None),
            getattr(settings, f"{field}_file", None),
        )

    options: dict[str, Any] = cls.http_options(settings, secret)
    http = HttpClient(
        source=name,
        settings=settings,
        transport=transport,
        sleep=sleep,
        monotonic=monotonic,
        **options,
    )
    return settings.kind, cls(name, settings, http, now), http


@dataclass(frozen=True, slots=True)
class SourceStatus:
    name: str
    kind: str
    configured: bool
    complaints: int
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    cursor: dict[str, Any] | None
    backfill: dict[str, Any] | None


def statuses(engine: Engine, config: Config) -> list[SourceStatus]:
    """Every source the database or the config knows, with its sync state."""
    with engine.connect() as conn:
        counts = conn.execute(
            select(complaints.c.source, func.count().label("n")).group_by(complaints.c.source)
        )
        held: dict[str, int] = {r.source: int(r.n) for r in counts}
        rows = {r.name: r for r in conn.execute(select(sources))}
    out = []
    for name in sorted(set(rows) | set(config.sources)):
        row = rows.get(name)
        configured = config.sources.get(name)
        kind = configured.kind if configured is not None else str(row.kind if row else "")
        out.append(
            SourceStatus(
                name=name,
                kind=kind,
                configured=name in config.sources,
                complaints=int(held.get(name, 0)),
                last_success_at=row.last_success_at if row else None,
                last_attempt_at=row.last_attempt_at if row else None,
                last_error=row.last_error if row else None,
                cursor=json.loads(row.cursor) if row and row.cursor else None,
                backfill=json.loads(row.backfill_state) if row and row.backfill_state else None,
            )
        )
    return out

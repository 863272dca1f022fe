"""Export files as a source: ``kind = "csv"`` or ``"jsonl"`` with a ``path``.

For systems that can only drop an export somewhere: each `slamon sync` reads the file when it
has changed since the last complete read (by size and modification time), in pages of
``page_size`` rows, the same parser as `slamon import`. Any bad row stops the read with an error
naming the file and line, and the cursor does not move past the last good page; a complaint
missing from a later export is kept, as with `slamon import`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from slamon.connectors.base import (
    ConnectorError,
    Cursor,
    MalformedResponse,
    Page,
    SecretReader,
    SourceSettings,
    SyncWindow,
    registry,
)
from slamon.connectors.http import HttpClient
from slamon.domain import ComplaintRecord
from slamon.importer import DEFAULT_EXCLUDED_STATUSES, RowError, read_csv, read_jsonl


class FileSettings(SourceSettings):
    kind: Literal["csv", "jsonl"]
    path: Path
    #: Naive times in the file are local time in this zone (default: UTC).
    timezone: str = "UTC"
    page_size: int = Field(default=5000, ge=1, le=100_000)
    excluded_statuses: tuple[str, ...] = tuple(sorted(DEFAULT_EXCLUDED_STATUSES))

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value


class FileConnector:
    kind: ClassVar[str] = "csv"
    Settings: ClassVar[type[FileSettings]] = FileSettings

    def __init__(self, name: str, settings: FileSettings, http: HttpClient, now: datetime):
        self.name = name
        self.settings = settings
        self.now = now

    @classmethod
    def http_options(cls, settings: FileSettings, secret: SecretReader) -> dict[str, Any]:
        return {"base_url": "http://localhost"}  # files need no HTTP; the client stays unused

    def _fingerprint(self) -> str:
        try:
            stat = self.settings.path.stat()
        except OSError as exc:
            raise ConnectorError(
                f"{self.name}: {self.settings.path}: {exc.strerror}", permanent=False
            ) from exc
        return f"{stat.st_size}:{stat.st_mtime_ns}"

    def _read(self, start_line: int, fingerprint: str, done: Cursor) -> Iterator[Page]:
        path = self.settings.path
        zone = ZoneInfo(self.settings.timezone)
        statuses = frozenset(s.lower() for s in self.settings.excluded_statuses)
        reader = read_csv if self.settings.kind == "csv" else read_jsonl
        label = str(path)
        batch: list[ComplaintRecord] = []
        last_line = start_line
        with path.open("rb") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            try:
                for line, item in reader(text, zone, label, statuses):
                    if line <= start_line:
                        continue
                    if isinstance(item, RowError):
                        raise MalformedResponse(item.describe(label), url=label)
                    batch.append(item)
                    last_line = line
                    if len(batch) >= self.settings.page_size:
                        yield Page(batch, {"fingerprint": fingerprint, "line": last_line}, label)
                        batch = []
            except UnicodeDecodeError as exc:
                raise MalformedResponse(f"{label}: not UTF-8 text ({exc.reason})") from exc
        yield Page(batch, done, label)

    def changes(self, cursor: Cursor | None) -> Iterator[Page]:
        fingerprint = self._fingerprint()
        if cursor and cursor.get("fingerprint") == fingerprint and cursor.get("complete"):
            return
        start = 0
        if cursor and cursor.get("fingerprint") == fingerprint:
            start = int(cursor.get("line", 0))
        yield from self._read(start, fingerprint, {"fingerprint": fingerprint, "complete": True})

    def history(self, window: SyncWindow, checkpoint: Cursor | None) -> Iterator[Page]:
        fingerprint = self._fingerprint()
        start = 0
        if checkpoint and checkpoint.get("fingerprint") == fingerprint:
            start = int(checkpoint.get("line", 0))
        for page in self._read(start, fingerprint, {"fingerprint": fingerprint, "complete": True}):
            kept = [r for r in page.records if window.since <= r.created_at < window.until]
            yield Page(kept, page.cursor, page.url, skipped=len(page.records) - len(kept))


@registry.register
class CsvFileConnector(FileConnector):
    kind: ClassVar[str] = "csv"


@registry.register
class JsonlFileConnector(FileConnector):
    kind: ClassVar[str] = "jsonl"

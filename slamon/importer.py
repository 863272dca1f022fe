"""Importing a ticket-system export (CSV or JSONL) into the store.

Parsing is pure: each physical record becomes a ComplaintRecord or a RowError naming its line.
The service streams the file in batches through store.complaints.apply_batch inside one
transaction, so an import lands whole or not at all; memory stays flat in the file size.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from slamon.domain import EXCLUSION_REASONS, ComplaintRecord
from slamon.errors import InputError, UsageError
from slamon.instants import parse_instant
from slamon.store.complaints import BatchResult, apply_batch, ensure_source
from slamon.store.engine import write_transaction

Format = Literal["csv", "jsonl"]

REQUIRED_COLUMNS = ("id", "created_at")
OPTIONAL_COLUMNS = (
    "closed_at",
    "first_closed_at",
    "status",
    "queue",
    "channel",
    "category",
    "priority",
    "subject",
    "url",
    "updated_at",
    "excluded",
)
_TEXT_FIELDS = ("status", "queue", "channel", "category", "priority", "subject", "url")
assert ComplaintRecord.__match_args__[4:11] == _TEXT_FIELDS, "_CsvRow builds records by position"
_MAX_SHOWN = 60
#: Longer ids do not fit PostgreSQL's unique index on (source, external_id).
MAX_ID_LENGTH = 500
csv.field_size_limit(16 * 1024 * 1024)


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    column: str | None
    message: str

    def describe(self, file: str) -> str:
        where = f"{file}:{self.line}"
        return (
            f"{where}: {self.column}: {self.message}" if self.column else f"{where}: {self.message}"
        )


class _BadValue(Exception):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _instant(values: Mapping[str, Any], column: str, tz: ZoneInfo) -> datetime | None:
    raw = values.get(column)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise _BadValue(column, f"expected an ISO 8601 time as text, got {_shown(raw)}")
    text = raw.strip()
    if not text:
        return None
    try:
        return parse_instant(text, tz)
    except (ValueError, OverflowError):
        raise _BadValue(column, f"cannot read {_shown(text)} as an ISO 8601 time") from None


def _text(values: Mapping[str, Any], column: str) -> str:
    raw = values.get(column)
    if raw is None:
        return ""
    if type(raw) is str:
        text = raw.strip()
    elif isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise _BadValue(column, f"expected text, got {_shown(raw)}")
    else:
        text = str(raw).strip()
    if "\x00" in text:
        raise _BadValue(column, "contains a NUL character")
    return text


DEFAULT_EXCLUDED_STATUSES = frozenset({"deleted", "spam", "merged"})


def record_from_values(
    values: Mapping[str, Any],
    tz: ZoneInfo,
    excluded_statuses: frozenset[str] = DEFAULT_EXCLUDED_STATUSES,
) -> ComplaintRecord:
    """One complaint from a row's values (CSV cells or JSON members); raises _BadValue.

    A complaint is excluded when its ``excluded`` column names a reason, or when its status is
    one of ``excluded_statuses`` (compared in lower case)."""
    ext_id = _text(values, "id")
    if not ext_id:
        raise _BadValue("id", "missing")
    if len(ext_id) > MAX_ID_LENGTH:
        raise _BadValue("id", f"longer than {MAX_ID_LENGTH} characters")
    created = _instant(values, "created_at", tz)
    if created is None:
        raise _BadValue("created_at", "missing")
    excluded = _text(values, "excluded").lower() or None
    if excluded is not None and excluded not in EXCLUSION_REASONS:
        allowed = ", ".join(sorted(EXCLUSION_REASONS))
        raise _BadValue("excluded", f"{_shown(excluded)} is not one of {allowed} (or empty)")
    texts = {name: _text(values, name) for name in _TEXT_FIELDS}
    if excluded is None and texts["status"].lower() in excluded_statuses:
        excluded = texts["status"].lower()
    return ComplaintRecord(
        external_id=ext_id,
        created_at=created,
        closed_at=_instant(values, "closed_at", tz),
        first_closed_at=_instant(values, "first_closed_at", tz),
        source_updated_at=_instant(values, "updated_at", tz),
        excluded_reason=excluded,
        **texts,
    )


Parsed = tuple[int, ComplaintRecord | RowError]


def _record_or_error(
    line: int, values: Mapping[str, Any], tz: ZoneInfo, excluded_statuses: frozenset[str]
) -> Parsed:
    try:
        return line, record_from_values(values, tz, excluded_statuses)
    except _BadValue as bad:
        return line, RowError(line, bad.column, bad.message)


def read_csv(
    stream: IO[str],
    tz: ZoneInfo,
    label: str,
    excluded_statuses: frozenset[str] = DEFAULT_EXCLUDED_STATUSES,
) -> Iterator[Parsed]:
    reader = csv.reader(stream)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InputError(f"{label}:1: cannot read the header: {exc}") from exc
    if header is None:
        raise InputError(f"{label}: empty file (expected a header line with id and created_at)")
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise InputError(f"{label}:1: missing required column {', '.join(missing)}")
    dupes = sorted({n for n in names if n and names.count(n) > 1})
    if dupes:
        raise InputError(f"{label}:1: column {', '.join(dupes)} appears more than once")
    wanted = [(i, n) for i, n in enumerate(names) if n in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    fast = _CsvRow(names, tz, excluded_statuses)
    width = len(names)
    next_line = reader.line_num + 1
    while True:
        start = next_line
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f"{label}:{start}: unreadable CSV: {exc}") from exc
        next_line = reader.line_num + 1
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != width:
            yield start, RowError(start, None, f"has {len(row)} fields, the header has {width}")
            continue
        rec = fast.record(row)
        if rec is None:  # something to say about the row: the general path says it
            yield _record_or_error(start, {n: row[i] for i, n in wanted}, tz, excluded_statuses)
        else:
            yield start, rec


class _CsvRow:
    """A CSV row as a record, for the rows with nothing wrong in them: the same result as
    record_from_values() at a third of its cost (an export has millions of rows); None for
    any row it does not vouch for, which the general path then reads (and names the error)."""

    def __init__(self, names: list[str], tz: ZoneInfo, excluded_statuses: frozenset[str]) -> None:
        def index(name: str) -> int | None:
            return names.index(name) if name in names else None

        self.id = names.index("id")
        self.created = names.index("created_at")
        self.instants = [index(n) for n in ("closed_at", "first_closed_at", "updated_at")]
        self.texts = [index(n) for n in _TEXT_FIELDS]
        self.excluded = index("excluded")
        self.tz = tz
        self.excluded_statuses = excluded_statuses

    def record(self, row: list[str]) -> ComplaintRecord | None:
        ext_id = row[self.id].strip()
        created = row[self.created].strip()
        if not ext_id or len(ext_id) > MAX_ID_LENGTH or not created:
            return None
        if self.excluded is not None and row[self.excluded].strip():
            return None
        texts = [("" if i is None else row[i].strip()) for i in self.texts]
        if any("\x00" in t for t in texts) or "\x00" in ext_id:
            return None
        tz = self.tz
        try:
            closed, first, updated = (
                None if i is None or not (v := row[i].strip()) else parse_instant(v, tz)
                for i in self.instants
            )
            created_at = parse_instant(created, tz)
        except (ValueError, OverflowError):
            return None
        status, queue, channel, category, priority, subject, url = texts
        lowered = status.lower()
        return ComplaintRecord(
            ext_id,
            created_at,
            closed,
            first,
            status,
            queue,
            channel,
            category,
            priority,
            subject,
            url,
            updated,
            lowered if lowered in self.excluded_statuses else None,
        )


def read_jsonl(
    stream: IO[str],
    tz: ZoneInfo,
    label: str,
    excluded_statuses: frozenset[str] = DEFAULT_EXCLUDED_STATUSES,
) -> Iterator[Parsed]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            yield number, RowError(number, None, f"not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            yield number, RowError(number, None, "not a JSON object")
            continue
        yield _record_or_error(number, obj, tz, excluded_statuses)


def guess_format(path: Path, given: str | None) -> Format:
    if given is not None:
        if given not in ("csv", "jsonl"):
            raise UsageError(f"--format must be csv or jsonl, not {given!r}")
        return "csv" if given == "csv" else "jsonl"
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".csv":
        return "csv"
    if suffixes and suffixes[-1] in (".jsonl", ".ndjson"):
        return "jsonl"
    raise UsageError(f"{path}: cannot tell the format from the name; pass --format csv or jsonl")


@dataclass(slots=True)
class ImportResult:
    file: str
    rows: int = 0
    written: bool = False
    counts: BatchResult = field(default_factory=BatchResult)
    closed_before_created: int = 0
    bad_rows: int = 0
    errors: list[RowError] = field(default_factory=list)

    MAX_ERRORS_KEPT = 100

    def error_lines(self) -> list[str]:
        return [e.describe(self.file) for e in self.errors]


class _Abort(Exception):
    pass


def import_file(
    engine: Engine,
    path: Path,
    *,
    source: str,
    tz: ZoneInfo,
    now: datetime,
    fmt: str | None = None,
    strict: bool = False,
    batch_size: int = 5000,
    excluded_statuses: frozenset[str] = DEFAULT_EXCLUDED_STATUSES,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import an export into ``source``. With ``strict`` nothing is written when any row is bad;
    otherwise bad rows are skipped and counted. The file lands in one transaction either way."""
    kind = guess_format(path, fmt)
    label = str(path)
    result = ImportResult(file=label)
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise InputError(f"{label}: cannot open: {exc.strerror}") from exc
    with raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = read_csv if kind == "csv" else read_jsonl
        try:
            parsed = reader(text, tz, label, excluded_statuses)
            with write_transaction(engine) as conn:
                ensure_source(conn, source, "import", now)
                batch: list[ComplaintRecord] = []
                for _line, item in parsed:
                    result.rows += 1
                    if isinstance(item, RowError):
                        result.bad_rows += 1
                        if len(result.errors) < ImportResult.MAX_ERRORS_KEPT:
                            result.errors.append(item)
                        continue
                    if item.closed_at is not None and item.closed_at < item.created_at:
                        result.closed_before_created += 1
                    if strict and result.bad_rows:
                        continue
                    batch.append(item)
                    if len(batch) >= batch_size:
                        result.counts.add(apply_batch(conn, source, batch, now))
                        batch.clear()
                        if progress is not None:
                            progress(raw.tell())
                if strict and result.bad_rows:
                    raise _Abort
                if batch:
                    result.counts.add(apply_batch(conn, source, batch, now))
                if progress is not None:
                    progress(raw.tell())
            result.written = True
        except _Abort:
            result.written = False
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{label}: not UTF-8 text ({exc.reason} near byte {raw.tell()}); nothing imported"
            ) from exc
    return result

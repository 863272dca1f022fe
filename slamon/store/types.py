"""Column types: instants as integer epoch seconds, aware UTC datetimes in Python."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Dialect
from sqlalchemy.types import TypeDecorator

from slamon.instants import from_epoch, to_epoch


class Instant(TypeDecorator[datetime]):
    """An instant stored as integer seconds since the epoch (UTC) on every engine.

    Integer seconds are what the report queries compare and subtract: on SQLite they are about
    three times faster than ISO text, and they mean the same instant on SQLite and PostgreSQL.
    Naive datetimes are refused rather than guessed; sub-second parts are truncated.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"naive datetime {value!r}: instants must be timezone-aware")
            return to_epoch(value)
        if isinstance(value, int):
            return value
        raise TypeError(f"not an instant: {value!r}")

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else from_epoch(int(value))

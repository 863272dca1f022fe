"""Logging for the daemon and the CLI: one handler on the root logger, writing to stderr.

- ``human``: ``2026-11-23 10:00:01 INFO slamon.sync: message`` (local time), tracebacks below;
- ``json``: one object per line: ``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
  ``exc_info`` (the traceback's text) when there is one, and every ``extra={...}`` field whose
  value JSON can represent.

A filter on the handler masks, before anything is written, every secret given to
``setup_logging`` and the password of any URL (``scheme://user:***@host``) in the message, its
arguments, the traceback, the stack and the extra fields.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

MASK = "***"
HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
HUMAN_DATEFMT = "%Y-%m-%d %H:%M:%S"
NOISY_LOGGERS = ("httpx", "httpcore")
"""Libraries that log every request (with its URL) at INFO: WARNING unless the level is DEBUG."""

_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)[^@\s]+(?=@)")
# Attributes every LogRecord has: whatever else is on a record came from ``extra``.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with each secret and every URL's password replaced by ***."""
    # Longest first, so that a secret containing another is masked whole.
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


class SecretFilter(logging.Filter):
    """Masks secrets in a record in place; never drops a record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        return mask_text(text, self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: show it raw rather than lose the record
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = self.mask(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _RECORD_ATTRS:
                setattr(record, key, self._mask_value(value))
        return True

    def _mask_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, list | tuple):
            return type(value)(self._mask_value(v) for v in value)
        if isinstance(value, dict):
            return {k: self._mask_value(v) for k, v in value.items()}
        return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc_info"] = record.exc_text
        if record.stack_info:
            out["stack_info"] = record.stack_info
        for key, value in vars(record).items():
            if key in _RECORD_ATTRS or key in out:
                continue
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                continue  # not JSON-safe: left out rather than turned into a guess
            out[key] = value
        return json.dumps(out, ensure_ascii=False)


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the moment of each record (so a replaced stderr,
    as under pytest, is followed)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def setup_logging(
    fmt: Literal["human", "json"], level: str = "INFO", secrets: Iterable[str] = ()
) -> None:
    """Configure the root logger: one stderr handler in ``fmt``, at ``level``, masking
    ``secrets``. Calling it again (a reload) replaces what an earlier call installed."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    if fmt == "human":
        formatter: logging.Formatter = logging.Formatter(HUMAN_FORMAT, HUMAN_DATEFMT)
    elif fmt == "json":
        formatter = JsonFormatter()
    else:
        raise ValueError(f"unknown log format {fmt!r}: use human or json")
    handler = StderrHandler()
    handler.setFormatter(formatter)
    handler.addFilter(SecretFilter(secrets))
    handler._slamon = True  # type: ignore[attr-defined]

    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_slamon", False):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if numeric <= logging.DEBUG else "WARNING")
    logging.captureWarnings(True)

"""The connector protocol, its errors and the registry of connector kinds.

Exceptions:
ConnectorError(message, permanent=..., url=...)
    permanent=True: retrying cannot help (401, 403, 404, a bad filter): the source is marked
    failing until its configuration changes; other sources go on.
    permanent=False: a passing fault (timeouts, 5xx after retries, a malformed page): the cursor
    does not move and the next run tries again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from slamon.config import Duration
from slamon.domain import ComplaintRecord

Cursor = dict[str, Any]
#: Reads a secret of the source's settings by field name ("api_key" -> api_key_env / _file).
SecretReader = Callable[[str], str | None]


class ConnectorError(Exception):
    def __init__(self, message: str, *, permanent: bool, url: str | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.url = url


class MalformedResponse(ConnectorError):
    """A page that cannot be read: not JSON, a missing field, a date that does not parse."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message, permanent=False, url=url)


@dataclass(frozen=True, slots=True)
class Page:
    """Records of one API page and the cursor to resume from once they are stored."""

    records: Sequence[ComplaintRecord]
    cursor: Cursor
    url: str = ""
    #: Items the page held that were not complaints (filtered out by the source's rules).
    skipped: int = 0
    #: The source's own estimate of how many items the whole listing holds, when it says.
    total: int | None = None


class SourceSettings(BaseModel):
    """Keys every source accepts; each kind extends this with its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    #: When the first incremental sync starts (ISO 8601 date or instant); later runs use the cursor.
    initial_since: datetime | None = None
    #: Requests per minute this source may send (a budget below the vendor's documented limit).
    rate_limit: float = Field(default=60.0, gt=0, le=100_000)
    timeout: float = Field(default=30.0, gt=0, le=600)
    max_retries: int = Field(default=5, ge=0, le=20)
    verify_tls: bool = True
    ca_file: str | None = None
    #: Re-read this many minutes before the stored watermark on every run (late commits).
    overlap_minutes: int = Field(default=5, ge=0, le=1440)
    #: How often `slamon run` syncs this source (from "1s" to "1d").
    sync_every: Duration = timedelta(minutes=5)

    @field_validator("sync_every")
    @classmethod
    def _often_enough(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1) or value > timedelta(days=1):
            raise ValueError("must be between 1s and 1d")
        return value


@dataclass(frozen=True)
class SyncWindow:
    since: datetime
    until: datetime


class Connector(Protocol):
    """What the sync engine needs from a connector."""

    def changes(self, cursor: Cursor | None) -> Iterator[Page]:
        """Pages of complaints changed since ``cursor`` (None: since initial_since), oldest
        change first; each page's cursor resumes after it."""
        ...

    def history(self, window: SyncWindow, checkpoint: Cursor | None) -> Iterator[Page]:
        """Pages of complaints created (or changed) within ``window``, resumable from
        ``checkpoint`` (a page cursor this method yielded before)."""
        ...


class ConnectorKind(Protocol):
    """A connector class as the registry holds it (built-in or from a plugin).

    ``http_options`` returns the keyword arguments for the source's HttpClient: ``base_url`` and
    optionally ``headers``, ``auth`` and ``secrets`` (values to mask wherever a URL is shown)."""

    kind: ClassVar[str]
    Settings: ClassVar[type[SourceSettings]]

    def __call__(self, name: str, settings: Any, http: Any, now: datetime) -> Connector: ...

    def http_options(self, settings: Any, secret: SecretReader) -> dict[str, Any]: ...


@dataclass
class Registry:
    kinds: dict[str, Any] = field(default_factory=dict)

    def register(self, cls: Any) -> Any:
        self.kinds[cls.kind] = cls
        return cls

    def get(self, kind: str) -> Any:
        self._load_plugins()
        return self.kinds.get(kind)

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self.kinds)

    _plugins_loaded: bool = False

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from slamon.connectors import builtin  # noqa: F401  (registers the built-in kinds)

        for ep in entry_points(group="slamon.connectors"):
            cls = ep.load()
            self.kinds.setdefault(getattr(cls, "kind", ep.name), cls)


registry = Registry()


def lookup(mapping: Mapping[str, Any], path: str) -> Any:
    """A value by dotted path in nested JSON (``via.channel``); None where any step is missing."""
    value: Any = mapping
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value

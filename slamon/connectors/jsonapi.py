"""Generic JSON: complaints from any homegrown REST listing, wired by configuration alone.

What your API needs
-------------------
One GET endpoint that lists complaints as JSON and can

1. filter by the time of the last change, to the second: a query parameter such as
   ``updated_since`` that returns the items changed at or after the time given (``>=`` and
   ``>`` both work: slamon always asks from a second before what it has read);
2. page through the result in one of four ways (``paging``):

   ``page``    ``?page=2&per_page=100``, the first page numbered ``first_page`` (1, or 0);
   ``offset``  ``?offset=200&limit=100``;
   ``cursor``  ``?cursor=TOKEN&limit=100`` where TOKEN comes from the previous response at
               ``next_cursor_path`` (no token, null or "" there: the last page);
   ``link``    the next page's URL, from ``next_url_path`` in the response or, when that is
               empty, from the ``Link: <...>; rel="next"`` header (no next URL: the last page).

   A page/offset listing ends at the first empty page (not at a short one: an API that caps
   ``per_page`` below what was asked would otherwise lose everything past its first page).

Each item must carry an id, its creation time and its last-change time; the rest is optional.

Configuration (``slamon.toml``)
-------------------------------
::

    [sources.crm]
    kind = "jsonapi"
    url = "https://crm.example.com/api/v2/complaints"   # the listing (a query in it is kept)
    items_path = "data.items"          # where the list is in the response ("" = the root)
    total_path = "data.total"          # optional: the item count, for progress
    paging = "cursor"                  # page | offset | cursor | link
    next_cursor_path = "data.next"     # cursor paging: where the next token is
    cursor_param = "cursor"            # its parameter (page_param, per_page_param, first_page,
    limit_param = "limit"              #   offset_param, limit_param likewise; "" sends none)
    page_size = 100
    since_param = "updated_since"      # the incremental filter (required)
    since_format = "iso"               # iso (UTC, Z) | iso_naive (local wall time in
                                       #   `timezone`) | epoch | epoch_ms; default: as time_format
    sort = { order_by = "updated_at", order = "asc" }   # optional, see below
    params = { type = "complaint" }    # optional static query parameters
    created_since_param = "created_from"   # optional: lets a backfill filter by creation
    created_until_param = "created_to"
    time_format = "iso"                # how the items' times are written: iso | epoch | epoch_ms
    timezone = "Europe/Moscow"         # the zone of ISO times without an offset (default UTC)
    token_env = "CRM_TOKEN"            # Authorization: Bearer ...; or
    # api_key_header = "X-API-Key"  + api_key_env / api_key_file;  or
    # username = "slamon"           + password_env / password_file (HTTP Basic)
    closed_statuses = ["closed", "resolved"]          # optional, see "closure"
    excluded_statuses = { trash = "deleted", junk = "spam" }

    [sources.crm.fields]               # slamon's field = dotted path in an item
    id = "id"
    created_at = "created"
    updated_at = "meta.updated_at"
    closed_at = "resolved_at"          # optional from here on ("" = none)
    first_closed_at = ""
    status = "state.name"
    queue = "team"
    channel = "source"
    category = "topic.0.title"         # a number indexes into a list
    priority = "priority"
    subject = "title"
    url = "links.web"
    excluded = "deleted"

Paths are dotted keys; a number indexes into a list; a value that is an object gives its
``name``, a list gives its values joined with ", ". Errors in these settings name the key, e.g.
``slamon.toml: sources.crm.fields.created_at: is required``.

Times: ISO 8601 (``2026-03-02T10:15:00Z``, ``2026-03-02 13:15:00+03:00``; without an offset
the time is local to ``timezone``) or seconds / milliseconds since the epoch. slamon keeps whole
seconds in UTC. A missing or unreadable required time fails the page with a message naming the
URL, the item id and the field; the cursor then does not move.

Sorted or not
-------------
With ``sort`` (parameters that make the listing ascending by the items' last-change time)
slamon reads keyset-style: after each page it asks again from the newest change time it has
read, so items that change while it pages cannot shift others past it, and a run that stops
resumes right after its last page. Every page is checked: a listing that turns out not to be
in ascending order stops the sync with an error naming ``sources.NAME.sort``.

Without ``sort`` slamon assumes nothing about the order: it pages through the whole listing
from the stored watermark, keeping its place (page, offset, cursor or next URL) in the cursor
after each page so that an interrupted run resumes there, and moves the watermark only once
the listing is complete: to the newest change time read, but never past the moment the run
started (items changed during the run are read again next time).

Every run starts ``overlap_minutes`` before the stored watermark (late commits, clock skew).

Backfill
--------
``slamon backfill`` asks for the items changed since the window's start (and created within it
when ``created_since_param`` / ``created_until_param`` are set) and keeps those whose creation
time falls in the window. It is resumable from its checkpoint like the incremental sync.

Closure
-------
``closed_at`` must be the time the complaint was closed or resolved, whichever your contact
center means by "closed", and empty while it is open. If your API keeps the old time when a
complaint is reopened, set ``closed_statuses``: a complaint then counts as closed only while its
status is one of them (with ``updated_at`` as the closing time when ``closed_at`` is empty).
``first_closed_at``, when the API has it, is the first closure ever (``service_level.closure =
"first"`` reports on it).

Deleted, spam, merged
---------------------
Such complaints are kept and excluded from every metric. ``excluded_statuses`` maps status
values to a reason (deleted, spam or merged); ``fields.excluded`` names a field that is empty,
false or 0 for a normal complaint, and otherwise "deleted", "spam" or "merged" (that reason) or
anything else (a soft-delete flag or time: "deleted").

Credentials are read from the environment or a file only, and masked wherever a URL is shown.
A next-page URL on another host than ``url`` is refused, so that credentials never leave it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

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

ExclusionReason = Literal["deleted", "spam", "merged"]
REASONS: frozenset[str] = frozenset({"deleted", "spam", "merged"})
NOT_EXCLUDED = frozenset({"", "0", "false", "no"})
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Keyset restarts ask from this much before the newest change read (``>`` filters, ties).
MARGIN = timedelta(seconds=1)
PATH = re.compile(r"[^.\s]+(\.[^.\s]+)*")


def pluck(data: Any, path: str) -> Any:
    """The value at a dotted path (numbers index lists); None where any step is missing."""
    if not path:
        return data
    value = data
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return str(value.get("name") or "")
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value if v is not None)
    return str(value)


def parse_time(raw: Any, time_format: str, zone: ZoneInfo) -> datetime | None:
    """An item's time as an aware UTC instant (whole seconds), or None if it cannot be read."""
    if time_format == "iso":
        if not isinstance(raw, str):
            return None
        try:
            parsed = datetime.fromisoformat(raw.strip())
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone)
        return parsed.astimezone(UTC).replace(microsecond=0)
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        number = float(raw)
    except ValueError:
        return None
    if time_format == "epoch_ms":
        number /= 1000
    try:
        return datetime.fromtimestamp(int(number), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _from_iso(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _slamon_error(key: str, message: str) -> PydanticCustomError:
    """An error the config loader shows as ``sources.NAME.<key>: <message>``."""
    return PydanticCustomError("slamon", "{key}: {message}", {"key": key, "message": message})


class JsonApiFields(BaseModel):
    """slamon's fields -> dotted paths in an item ("" = the API has none)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    created_at: str
    updated_at: str
    closed_at: str = ""
    first_closed_at: str = ""
    status: str = ""
    queue: str = ""
    channel: str = ""
    category: str = ""
    priority: str = ""
    subject: str = ""
    url: str = ""
    excluded: str = ""

    @model_validator(mode="after")
    def _paths(self) -> JsonApiFields:
        for key, path in self.model_dump().items():
            if key in ("id", "created_at", "updated_at") and not path:
                raise _slamon_error(key, "must name a path in an item")
            if path and not PATH.fullmatch(path):
                raise _slamon_error(key, f"{path!r} is not a dotted path like 'meta.updated_at'")
        return self


class JsonApiSettings(SourceSettings):
    kind: Literal["jsonapi"] = "jsonapi"
    #: The listing's URL.
    url: str
    items_path: str = ""
    total_path: str = ""
    paging: Literal["page", "offset", "cursor", "link"] = "page"
    page_param: str = "page"
    per_page_param: str = "per_page"
    first_page: int = Field(default=1, ge=0)
    offset_param: str = "offset"
    limit_param: str = "limit"
    cursor_param: str = "cursor"
    next_cursor_path: str = ""
    next_url_path: str = ""
    page_size: int = Field(default=100, ge=1, le=10_000)
    since_param: str
    since_format: Literal["iso", "iso_naive", "epoch", "epoch_ms"] | None = None
    created_since_param: str = ""
    created_until_param: str = ""
    params: dict[str, str | int] = Field(default_factory=dict)
    sort: dict[str, str | int] = Field(default_factory=dict)
    time_format: Literal["iso", "epoch", "epoch_ms"] = "iso"
    timezone: str = "UTC"
    token_env: str | None = None
    token_file: Path | None = None
    api_key_header: str = "X-API-Key"
    api_key_env: str | None = None
    api_key_file: Path | None = None
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    closed_statuses: tuple[str, ...] | None = None
    excluded_statuses: dict[str, ExclusionReason] = Field(default_factory=dict)
    fields: JsonApiFields

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/Moscow)"
            ) from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> JsonApiSettings:
        if not self.since_param:
            raise _slamon_error("since_param", "must name the filter by last-change time")
        needed = {
            "page": ("page_param",),
            "offset": ("offset_param",),
            "cursor": ("cursor_param", "next_cursor_path"),
        }.get(self.paging, ())
        for key in needed:
            if not getattr(self, key):
                raise _slamon_error(key, f'is required with paging = "{self.paging}"')
        for path_key in ("items_path", "total_path", "next_cursor_path", "next_url_path"):
            path = getattr(self, path_key)
            if path and not PATH.fullmatch(path):
                raise _slamon_error(path_key, f"{path!r} is not a dotted path like 'data.items'")
        for secret in ("token", "api_key", "password"):
            if getattr(self, f"{secret}_env") and getattr(self, f"{secret}_file"):
                raise _slamon_error(
                    f"{secret}_file", f"give only one of {secret}_env, {secret}_file"
                )
        given = [s for s in ("token", "api_key", "password") if self._has(s)]
        if len(given) > 1:
            raise _slamon_error(
                f"{given[1]}_env", f"give one way to log in, not {' and '.join(given)}"
            )
        if self._has("api_key") and not self.api_key_header:
            raise _slamon_error("api_key_header", "names the header that carries the key")
        if self._has("password") != (self.username is not None):
            key = "password_env" if self.username is not None else "username"
            raise _slamon_error(key, "HTTP Basic needs both username and password_env/_file")
        return self

    def _has(self, secret: str) -> bool:
        return bool(getattr(self, f"{secret}_env") or getattr(self, f"{secret}_file"))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class _Fetched:
    items: list[Any]
    url: str
    #: How to ask for the next page of the same listing; None when this was the last.
    next: dict[str, Any] | None
    total: int | None


@registry.register
class JsonApiConnector:
    kind: ClassVar[str] = "jsonapi"
    Settings: ClassVar[type[JsonApiSettings]] = JsonApiSettings

    def __init__(self, name: str, settings: JsonApiSettings, http: HttpClient, now: datetime):
        self.name = name
        self.settings = settings
        self.http = http
        self.now = (now if now.tzinfo else now.replace(tzinfo=UTC)).replace(microsecond=0)
        self.zone = settings.zone

    @classmethod
    def http_options(cls, settings: JsonApiSettings, secret: SecretReader) -> dict[str, Any]:
        token, key, password = secret("token"), secret("api_key"), secret("password")
        headers: dict[str, str] = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif key:
            headers[settings.api_key_header] = key
        elif password is not None and settings.username is not None:
            pair = f"{settings.username}:{password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return {
            "base_url": settings.url,
            "headers": headers,
            "secrets": [s for s in (token, key, password) if s],
        }

    # --- reading items ----------------------------------------------------------------------

    def _malformed(self, url: str, message: str) -> MalformedResponse:
        return MalformedResponse(f"{self.name}: {url}: {message}", url=url)

    def _time(
        self, item: Mapping[str, Any], ident: str, name: str, url: str, required: bool
    ) -> datetime | None:
        path = getattr(self.settings.fields, name)
        raw = pluck(item, path) if path else None
        if raw is None or raw == "":
            if required:
                raise self._malformed(url, f"item {ident}: fields.{name} ({path}) is missing")
            return None
        parsed = parse_time(raw, self.settings.time_format, self.zone)
        if parsed is None:
            raise self._malformed(
                url,
                f"item {ident}: fields.{name} ({path}): cannot read {str(raw)[:40]!r} as a"
                f" time (time_format = {self.settings.time_format!r})",
            )
        return parsed

    def _excluded(self, item: Mapping[str, Any], status: str) -> str | None:
        reason = self.settings.excluded_statuses.get(status)
        if reason is not None or not self.settings.fields.excluded:
            return reason
        value = pluck(item, self.settings.fields.excluded)
        if value is None or value is False or value == 0:
            return None
        text = str(value).strip().lower()
        if text in NOT_EXCLUDED:
            return None
        return text if text in REASONS else "deleted"

    def record(self, item: Any, url: str) -> ComplaintRecord:
        f = self.settings.fields
        if not isinstance(item, Mapping):
            raise self._malformed(url, f"an item is not an object: {str(item)[:40]!r}")
        raw_id = pluck(item, f.id)
        if raw_id is None or raw_id == "" or isinstance(raw_id, Mapping | list):
            raise self._malformed(url, f"an item without an id at fields.id ({f.id})")
        ident = str(raw_id)
        created = self._time(item, ident, "created_at", url, required=True)
        updated = self._time(item, ident, "updated_at", url, required=True)
        closed = self._time(item, ident, "closed_at", url, required=False)
        first = self._time(item, ident, "first_closed_at", url, required=False)
        status = _text(pluck(item, f.status)) if f.status else ""
        if self.settings.closed_statuses is not None:
            closed = (closed or updated) if status in self.settings.closed_statuses else None

        def text(path: str) -> str:
            return _text(pluck(item, path)) if path else ""

        assert created is not None and updated is not None
        return ComplaintRecord(
            external_id=ident,
            created_at=created,
            closed_at=closed,
            first_closed_at=first,
            status=status,
            queue=text(f.queue),
            channel=text(f.channel),
            category=text(f.category),
            priority=text(f.priority),
            subject=text(f.subject),
            url=text(f.url),
            source_updated_at=updated,
            excluded_reason=self._excluded(item, status),
        )

    # --- one page ---------------------------------------------------------------------------

    def _format(self, value: datetime) -> str:
        fmt = self.settings.since_format or self.settings.time_format
        value = value.replace(microsecond=0)
        if fmt == "epoch":
            return str(int(value.timestamp()))
        if fmt == "epoch_ms":
            return str(int(value.timestamp()) * 1000)
        if fmt == "iso_naive":
            return value.astimezone(self.zone).strftime("%Y-%m-%dT%H:%M:%S")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _same_origin(self, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self.settings.url)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    def _fetch(
        self, since: datetime, extra: Mapping[str, str], cont: Mapping[str, Any] | None
    ) -> _Fetched:
        s = self.settings
        # httpx replaces a URL's query with ``params``: keep the one written in ``url``.
        own = dict(parse_qsl(urlsplit(s.url).query, keep_blank_values=True))
        params: dict[str, Any] = {
            **own,
            **s.params,
            **s.sort,
            **extra,
            s.since_param: self._format(since),
        }
        target = s.url
        if s.paging == "page":
            params[s.page_param] = int((cont or {}).get("page", s.first_page))
            if s.per_page_param:
                params[s.per_page_param] = s.page_size
        elif s.paging == "offset":
            params[s.offset_param] = int((cont or {}).get("offset", 0))
            if s.limit_param:
                params[s.limit_param] = s.page_size
        else:
            if s.limit_param:
                params[s.limit_param] = s.page_size
            if cont and s.paging == "cursor" and cont.get("cursor"):
                params[s.cursor_param] = cont["cursor"]
        if cont and s.paging == "link" and cont.get("url"):
            target, query = str(cont["url"]), None  # the next URL carries its own query
        else:
            query = params
        data, url = self.http.get_json(target, params=query)
        items = pluck(data, s.items_path)
        if not isinstance(items, list):
            where = f"items_path {s.items_path!r}" if s.items_path else "the response"
            raise self._malformed(url, f"{where} is not a list of items")
        total = pluck(data, s.total_path) if s.total_path else None
        total = total if isinstance(total, int) and not isinstance(total, bool) else None
        return _Fetched(items, url, self._next(data, items, cont, url), total)

    def _next(
        self, data: Any, items: list[Any], cont: Mapping[str, Any] | None, url: str
    ) -> dict[str, Any] | None:
        s = self.settings
        if not items:
            return None
        if s.paging == "page":
            return {"page": int((cont or {}).get("page", s.first_page)) + 1}
        if s.paging == "offset":
            return {"offset": int((cont or {}).get("offset", 0)) + len(items)}
        if s.paging == "cursor":
            token = pluck(data, s.next_cursor_path)
            if token is None or token == "" or token is False:
                return None
            if cont is not None and str(token) == str(cont.get("cursor")):
                raise ConnectorError(
                    f"{self.name}: {url}: the API returned the cursor it was given: does it read"
                    f" sources.{self.name}.cursor_param ({s.cursor_param!r})?",
                    permanent=True,
                    url=url,
                )
            return {"cursor": str(token)}
        if s.next_url_path:
            link = pluck(data, s.next_url_path)
        else:
            last = self.http.last_response
            link = last.links.get("next", {}).get("url") if last is not None else None
        if not isinstance(link, str) or not link:
            return None
        link = urljoin(s.url, link)
        if not self._same_origin(link):
            raise ConnectorError(
                f"{self.name}: {url}: the next page is on another host"
                f" ({self.http.shown(link)}); refusing to send credentials there",
                permanent=True,
                url=url,
            )
        if cont is not None and link == cont.get("url"):
            raise ConnectorError(
                f"{self.name}: {url}: the next-page URL is the page itself", permanent=True, url=url
            )
        return {"url": link}

    def _records(self, fetched: _Fetched, previous: list[str] | None) -> list[ComplaintRecord]:
        records = [self.record(item, fetched.url) for item in fetched.items]
        ids = [r.external_id for r in records]
        if previous is not None and ids and ids == previous:
            key = {"page": "page_param", "offset": "offset_param"}.get(self.settings.paging)
            hint = f": does it read sources.{self.name}.{key}?" if key else ""
            raise ConnectorError(
                f"{self.name}: {fetched.url}: the API returned the same page twice{hint}",
                permanent=True,
                url=fetched.url,
            )
        return records

    # --- sorted listings: keyset ------------------------------------------------------------

    def _keyset(
        self,
        since: datetime,
        extra: Mapping[str, str],
        floor: datetime,
        keep: Callable[[ComplaintRecord], bool],
    ) -> Iterator[Page]:
        """Pages of a listing sorted ascending by change time, re-asked from the newest change
        read after every page; a page's cursor is ``{"since": ...}``."""
        cont: dict[str, Any] | None = None
        seen: dict[str, datetime | None] = {}  # id -> change time, of what was yielded
        previous: list[str] | None = None
        while True:
            fetched = self._fetch(since, extra, cont)
            records = self._records(fetched, previous)
            previous = [r.external_id for r in records]
            stamps = [r.source_updated_at for r in records if r.source_updated_at is not None]
            if any(b < a for a, b in pairwise(stamps)):
                raise ConnectorError(
                    f"{self.name}: {fetched.url}: the items are not in ascending order of"
                    f" fields.updated_at; check sources.{self.name}.sort",
                    permanent=True,
                    url=fetched.url,
                )
            fresh = [r for r in records if seen.get(r.external_id) != r.source_updated_at]
            seen.update((r.external_id, r.source_updated_at) for r in fresh)
            kept = [r for r in fresh if keep(r)]
            mark = since
            if stamps and stamps[-1] - MARGIN > since:
                mark = stamps[-1] - MARGIN
            if fetched.items:
                yield Page(
                    kept,
                    {"since": _iso(max(mark, floor))},
                    url=fetched.url,
                    skipped=len(fresh) - len(kept),
                    total=fetched.total,
                )
            if fetched.next is None:
                return
            if mark > since:  # ask again from the newest change read: nothing can shift past it
                since, cont, previous = mark, None, None
                seen = {k: v for k, v in seen.items() if v is not None and v >= since}
            else:  # a page full of one second's changes: page on
                cont = fetched.next

    # --- unsorted listings: walk to the end -------------------------------------------------

    def _listing(
        self,
        state: Mapping[str, Any],
        extra: Mapping[str, str],
        keep: Callable[[ComplaintRecord], bool],
        cursor_for: Callable[[dict[str, Any] | None, datetime | None], Cursor],
    ) -> Iterator[Page]:
        """Pages of one listing in whatever order it comes, from ``state``: ``since`` (the
        filter), ``started`` (when the run that began the listing started), ``max_seen`` (the
        newest change read so far) and ``next`` (where the following page is).
        ``cursor_for(following state, newest change)`` makes each page's cursor; the following
        state is None after the last page."""
        since = _from_iso(state.get("since")) or EPOCH
        started = state.get("started") or _iso(self.now)
        cont = state.get("next")
        newest = _from_iso(state.get("max_seen"))
        previous: list[str] | None = None
        while True:
            fetched = self._fetch(since, extra, cont)
            records = self._records(fetched, previous)
            previous = [r.external_id for r in records]
            for r in records:
                if r.source_updated_at is not None and (
                    newest is None or r.source_updated_at > newest
                ):
                    newest = r.source_updated_at
            kept = [r for r in records if keep(r)]
            cont = fetched.next
            following = None
            if cont is not None:
                following = {
                    "since": _iso(since),
                    "started": started,
                    "max_seen": None if newest is None else _iso(newest),
                    "next": cont,
                }
            yield Page(
                kept,
                cursor_for(following, newest),
                url=fetched.url,
                skipped=len(records) - len(kept),
                total=fetched.total,
            )
            if cont is None:
                return

    # --- the protocol -----------------------------------------------------------------------

    def changes(self, cursor: Cursor | None) -> Iterator[Page]:
        stored = _from_iso((cursor or {}).get("since"))
        if stored is not None:
            start = stored - timedelta(minutes=self.settings.overlap_minutes)
        elif self.settings.initial_since is not None:
            start = self.settings.initial_since
            if start.tzinfo is None:
                start = start.replace(tzinfo=UTC)
        else:
            start = EPOCH
        floor = stored or start
        if self.settings.sort:
            yield from self._keyset(start, {}, floor, lambda r: True)
            return
        listing = (cursor or {}).get("listing")
        state: Mapping[str, Any] = (
            listing
            if isinstance(listing, Mapping)
            else {"since": _iso(start), "started": _iso(self.now)}
        )

        def cursor_for(following: dict[str, Any] | None, newest: datetime | None) -> Cursor:
            if following is not None:
                return {"since": _iso(floor), "listing": following}
            # Complete: up to the newest change read, but not past the run's start (what
            # changed during the run may have moved behind the pages already read).
            started = _from_iso(state.get("started")) or self.now
            mark = floor if newest is None else max(floor, min(started, newest))
            return {"since": _iso(mark)}

        yield from self._listing(state, {}, lambda r: True, cursor_for)

    def history(self, window: SyncWindow, checkpoint: Cursor | None) -> Iterator[Page]:
        s = self.settings
        extra: dict[str, str] = {}
        if s.created_since_param:
            extra[s.created_since_param] = self._format(window.since)
        if s.created_until_param:
            extra[s.created_until_param] = self._format(window.until)

        def keep(r: ComplaintRecord) -> bool:
            return window.since <= r.created_at <= window.until

        if s.sort:
            since = _from_iso((checkpoint or {}).get("since")) or window.since
            yield from self._keyset(since, extra, window.since, keep)
            return
        listing = (checkpoint or {}).get("listing")
        state: Mapping[str, Any] = (
            listing
            if isinstance(listing, Mapping)
            else {"since": _iso(window.since), "started": _iso(self.now)}
        )
        yield from self._listing(
            state, extra, keep, lambda following, newest: {"listing": following}
        )

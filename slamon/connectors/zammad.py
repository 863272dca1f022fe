"""Zammad: GET /api/v1/tickets/search (Elasticsearch) with a user access token.

Auth: ``Authorization: Token token=...`` (a user access token with ``ticket.agent``; the search
returns only tickets of the groups that user may read).

Listing. ``query=updated_at:[A TO B]``, ``sort_by=updated_at``, ``order_by=asc``, ``expand=true``
(ticket attributes plus the names of their relations: ``state``, ``group``, ``priority``,
``create_article_type``), ``per_page`` 200 (the search endpoint's cap: Zammad silently lowers any
larger value). Backfill walks ``created_at:[since TO until]`` the same way. Pitfalls handled:

- The search runs in Elasticsearch and is eventually consistent: a change shows up in the index
  a moment after it is committed. Every run starts ``overlap_minutes`` before the stored cursor.
- The hits come in index order but are rendered from the database, so a ticket changed after it
  was last indexed sits at its old place with its new ``updated_at``. Taken as a watermark, such
  a value would jump over every ticket between its old and new place. The walk therefore only
  advances to ``updated_at`` values older than ``now - overlap_minutes`` (settled in the index);
  fresher ones are paged past and are read again on the next run anyway.
- Deep paging is capped by Elasticsearch (``from + size`` at most 10 000 by default) and past it
  Zammad answers an empty list, not an error. The walk is keyset-style: after each page it asks
  again from the newest settled ``updated_at`` with page 1, skipping the ids already read at
  exactly that instant; it pages on (page 2, 3 ...) only through tickets sharing one instant.
- Zammad strips every ``*`` from a search query, so an open range ``[A TO *]`` would break; the
  upper bound is spelled out.
- Without Elasticsearch Zammad falls back to a database LIKE search that ignores the range
  syntax: this connector needs Zammad's search index (Zammad's own production requirement).
- Deleted tickets are removed from Zammad for good: they vanish from the listing and keep the
  state slamon last saw. Merged tickets (state type ``merged``) are kept and excluded as
  ``merged``, tickets in a ``removed``-type state as ``deleted``; ``excluded_states`` maps further
  state names (say a custom "spam" state) to a reason.

Closure. Zammad sets ``close_at`` when a ticket first enters a state of type ``closed`` and never
changes it; ``last_close_at`` is set on every later transition into such a state and is kept
when the ticket is reopened. So ``closed_at`` is ``last_close_at`` (else ``close_at``, else
``updated_at`` for tickets imported without close times) while the ticket's state type is
``closed`` (or ``merged`` / ``removed``), and None otherwise: a reopened ticket is open.
``first_closed_at`` is ``close_at``, which ``service_level.closure = "first"`` reports on.
"pending close" is not closed until Zammad's scheduler moves the ticket to "closed".

The state types come from ``GET /api/v1/ticket_states?expand=true``, read once per run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from slamon.connectors.base import (
    ConnectorError,
    Cursor,
    MalformedResponse,
    Page,
    SecretReader,
    SourceSettings,
    SyncWindow,
    lookup,
    registry,
)
from slamon.connectors.http import HttpClient
from slamon.domain import ComplaintRecord

ExclusionReason = Literal["deleted", "spam", "merged"]

#: Elasticsearch's default ``index.max_result_window``: ``from + size`` may not exceed it.
MAX_RESULT_WINDOW = 10_000
#: The upper bound of every range query (Zammad removes ``*`` from queries).
FAR_FUTURE = "9999-12-31T23:59:59.999Z"
#: State types whose tickets count as closed now.
CLOSED_TYPES = frozenset({"closed", "merged", "removed"})
TYPE_EXCLUSIONS: dict[str, ExclusionReason] = {"merged": "merged", "removed": "deleted"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ZammadMap(BaseModel):
    """Which ticket attribute fills each of slamon's segments: a name from the expanded ticket
    (``group``, ``priority``, ``create_article_type``, ``type``, ``organization``, ``owner``, a
    custom attribute such as ``category``) or a dotted path; empty for none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: str = "group"
    channel: str = "create_article_type"
    category: str = ""
    priority: str = "priority"


class ZammadSettings(SourceSettings):
    kind: Literal["zammad"] = "zammad"
    #: The Zammad base URL, e.g. https://helpdesk.example.com
    url: str
    token_env: str | None = None
    token_file: Path | None = None
    #: Extra search condition ANDed to every query, e.g. ``group.name:Complaints``.
    filter: str = ""
    #: State names that mark a ticket deleted / spam / merged, beyond the state types
    #: ``merged`` and ``removed`` Zammad itself has.
    excluded_states: dict[str, ExclusionReason] = Field(default_factory=dict)
    map: ZammadMap = ZammadMap()
    page_size: int = Field(default=200, ge=1, le=200)
    #: Zammad has no general API rate limit; stay gentle with its search index.
    rate_limit: float = Field(default=120.0, gt=0, le=100_000)

    @model_validator(mode="after")
    def _token(self) -> ZammadSettings:
        if self.token_env is None and self.token_file is None:
            raise PydanticCustomError(
                "slamon", "token_env: give token_env or token_file (a Zammad access token)"
            )
        if self.token_env is not None and self.token_file is not None:
            raise PydanticCustomError(
                "slamon", "token_file: give only one of token_env, token_file"
            )
        return self


def _parse_time(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Zammad's API times are UTC
    return parsed.astimezone(UTC)


def _stamp(value: datetime) -> str:
    """An instant as Zammad writes it: UTC, milliseconds, Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return str(value.get("name") or "")
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value if v is not None)
    return str(value)


@registry.register
class ZammadConnector:
    kind: ClassVar[str] = "zammad"
    Settings: ClassVar[type[ZammadSettings]] = ZammadSettings

    def __init__(self, name: str, settings: ZammadSettings, http: HttpClient, now: datetime):
        self.name = name
        self.settings = settings
        self.http = http
        self.now = now if now.tzinfo else now.replace(tzinfo=UTC)
        self.base = settings.url.rstrip("/")
        self._state_types: dict[str, str] | None = None

    @classmethod
    def http_options(cls, settings: ZammadSettings, secret: SecretReader) -> dict[str, Any]:
        token = secret("token")
        return {
            "base_url": settings.url,
            "headers": {"Authorization": f"Token token={token}"} if token else {},
            "secrets": [token] if token else [],
        }

    # --- reading tickets --------------------------------------------------------------------

    def state_types(self) -> dict[str, str]:
        """State name -> state type name, from the instance itself (states are configurable)."""
        if self._state_types is None:
            data, url = self.http.get_json(
                f"{self.base}/api/v1/ticket_states", params={"expand": "true"}
            )
            if not isinstance(data, list):
                raise MalformedResponse(
                    f"{self.name}: {url}: expected a list of ticket states", url=url
                )
            types: dict[str, str] = {}
            for state in data:
                if not isinstance(state, Mapping) or not isinstance(state.get("name"), str):
                    raise MalformedResponse(
                        f"{self.name}: {url}: a ticket state without a name", url=url
                    )
                kind = state.get("state_type")
                if not isinstance(kind, str):
                    raise MalformedResponse(
                        f"{self.name}: {url}: state {state['name']!r}: state_type is missing"
                        " (expand=true not honoured?)",
                        url=url,
                    )
                types[state["name"]] = kind
            self._state_types = types
        return self._state_types

    def _instant(
        self, ticket: Mapping[str, Any], key: str, url: str, required: bool
    ) -> datetime | None:
        raw = ticket.get(key)
        if raw is None or raw == "":
            if required:
                raise MalformedResponse(
                    f"{self.name}: {url}: ticket {ticket.get('id')}: {key} is missing", url=url
                )
            return None
        parsed = _parse_time(raw)
        if parsed is None:
            raise MalformedResponse(
                f"{self.name}: {url}: ticket {ticket.get('id')}: {key}: cannot read"
                f" {str(raw)[:40]!r} as a time",
                url=url,
            )
        return parsed

    def record(self, ticket: Mapping[str, Any], url: str) -> ComplaintRecord:
        if not isinstance(ticket, Mapping) or ticket.get("id") is None:
            raise MalformedResponse(f"{self.name}: {url}: a ticket without an id", url=url)
        state = ticket.get("state")
        if not isinstance(state, str) or not state:
            raise MalformedResponse(
                f"{self.name}: {url}: ticket {ticket['id']}: state is missing", url=url
            )
        state_type = self.state_types().get(state)
        if state_type is None:
            raise MalformedResponse(
                f"{self.name}: {url}: ticket {ticket['id']}: state {state!r} is not among"
                " /api/v1/ticket_states",
                url=url,
            )
        created = self._instant(ticket, "created_at", url, required=True)
        updated = self._instant(ticket, "updated_at", url, required=True)
        first = self._instant(ticket, "close_at", url, required=False)
        last = self._instant(ticket, "last_close_at", url, required=False)
        closed = (last or first or updated) if state_type in CLOSED_TYPES else None
        excluded = self.settings.excluded_states.get(state) or TYPE_EXCLUSIONS.get(state_type)
        m = self.settings.map

        def seconds(value: datetime | None) -> datetime | None:
            return None if value is None else value.replace(microsecond=0)

        return ComplaintRecord(
            external_id=str(ticket["id"]),
            created_at=seconds(created),  # type: ignore[arg-type]
            closed_at=seconds(closed),
            first_closed_at=seconds(first),
            status=state,
            queue=_text(lookup(ticket, m.queue)) if m.queue else "",
            channel=_text(lookup(ticket, m.channel)) if m.channel else "",
            category=_text(lookup(ticket, m.category)) if m.category else "",
            priority=_text(lookup(ticket, m.priority)) if m.priority else "",
            subject=_text(ticket.get("title")),
            url=f"{self.base}/#ticket/zoom/{ticket['id']}",
            source_updated_at=seconds(updated),
            excluded_reason=excluded,
        )

    def _search(self, query: str, sort_by: str, page: int) -> tuple[list[Any], str]:
        params = {
            "query": f"({self.settings.filter}) AND {query}" if self.settings.filter else query,
            "sort_by": sort_by,
            "order_by": "asc",
            "expand": "true",
            "page": page,
            "per_page": self.settings.page_size,
        }
        data, url = self.http.get_json(f"{self.base}/api/v1/tickets/search", params=params)
        if not isinstance(data, list):
            raise MalformedResponse(
                f"{self.name}: {url}: expected a list of tickets (expand=true)", url=url
            )
        return data, url

    # --- the walk ---------------------------------------------------------------------------

    def _walk(
        self,
        key: str,
        since: datetime,
        until: str,
        settled: datetime | None = None,
        floor: datetime = EPOCH,
    ) -> Iterator[Page]:
        """Tickets with ``key`` in [since, until], oldest first, keyset-style.

        ``settled``: values newer than this may be stale in the index and never become the
        watermark (None: the key never changes, as created_at). ``floor``: the cursor never
        goes below it (the stored cursor, which a run reads from minus the overlap)."""
        self.state_types()  # read first: a ticket's state type decides its closure
        size = self.settings.page_size
        page = 1
        seen: set[str] = set()  # ids already yielded whose key equals ``since``
        while True:
            if page * size > MAX_RESULT_WINDOW:
                raise ConnectorError(
                    f"{self.name}: more than {MAX_RESULT_WINDOW} tickets share {key} ="
                    f" {_stamp(since)}: Zammad's search cannot page through them",
                    permanent=False,
                )
            tickets, url = self._search(f"{key}:[{_stamp(since)} TO {until}]", key, page)
            pairs = []
            for ticket in tickets:
                rec = self.record(ticket, url)
                value = self._instant(ticket, key, url, required=True)
                assert value is not None
                pairs.append((rec, value))
            fresh = [r for r, v in pairs if not (v == since and r.external_id in seen)]
            trusted = [v for _, v in pairs if settled is None or v <= settled]
            newest = max(trusted, default=since)
            if newest > since:
                since, page = newest, 1
                seen = {r.external_id for r, v in pairs if v == newest}
            else:
                page += 1
                seen |= {r.external_id for r, v in pairs if v == since}
            yield Page(fresh, {"since": _stamp(max(since, floor))}, url=url)
            if len(tickets) < size:
                return

    # --- the protocol -----------------------------------------------------------------------

    def changes(self, cursor: Cursor | None) -> Iterator[Page]:
        overlap = timedelta(minutes=self.settings.overlap_minutes)
        stored = _parse_time((cursor or {}).get("since"))
        if stored is not None:
            since = stored - overlap
        elif self.settings.initial_since is not None:
            since = self.settings.initial_since
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
        else:
            since = EPOCH
        yield from self._walk(
            "updated_at", since, FAR_FUTURE, settled=self.now - overlap, floor=stored or since
        )

    def history(self, window: SyncWindow, checkpoint: Cursor | None) -> Iterator[Page]:
        since = _parse_time((checkpoint or {}).get("since")) or window.since
        if since > window.until:
            return
        yield from self._walk("created_at", since, _stamp(window.until))

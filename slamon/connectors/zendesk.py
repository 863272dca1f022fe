"""Zendesk Support: the cursor-based Incremental Ticket Export.

Listing: ``GET /api/v2/incremental/tickets/cursor.json`` with ``start_time`` (Unix seconds) on the
first request and ``cursor`` (the previous page's ``after_cursor``, never both) afterwards; up to
1000 tickets per page (``per_page``); the export is read until ``end_of_stream`` is true. The
stored cursor is Zendesk's own ``after_cursor``: the next poll continues right after the last
ticket read, so no ``overlap_minutes`` is applied (the cursor is opaque, and Zendesk itself holds
back every change of the last minute to avoid late commits). Tickets come ordered by
``generated_timestamp`` (and id), which moves on every change, system updates included: a ticket
changed during a run shows up again further on, which the upsert absorbs.

Pitfalls handled here:

- ``start_time`` must be at least one minute in the past (Zendesk answers 400 otherwise, a
  permanent error): it is clamped to five minutes before now, which tolerates clock skew; seeing
  a few minutes twice is harmless.
- The export is limited to 10 requests a minute for the whole account (shared with any other
  integration reading it): ``rate_limit`` defaults to 8 and Retry-After is honoured by the client.
- Deleted tickets stay in the export with status ``deleted`` (and no metric set): they are kept
  and marked ``excluded_reason = "deleted"``, so ``exclude_deleted`` is never sent. Zendesk's
  "mark as spam" deletes the ticket, so spam arrives as ``deleted`` too. A merged-away ticket is
  closed and tagged ``closed_by_merge``: ``excluded_tags`` maps such tags (or a team's own
  ``spam`` tag) to a reason.
- The ticket carries no solved or closed time. ``include=metric_sets`` sideloads the ticket's
  metric set, which the export returns on each ticket as ``metric_set`` (the plain ticket lists put
  a top-level ``metric_sets`` array instead; both shapes are read). ``solved_at`` is kept when a
  solved ticket is reopened, so a ticket counts as closed only while its status says so.
- ``updated_at`` does not move on system updates while ``generated_timestamp`` does: the newer of
  the two is the record's ``source_updated_at``.
- There is no end bound on the export: a backfill starts at the window's start and reads to the
  end of the stream, keeping the tickets created within the window. Stopping once
  ``generated_timestamp`` passes the window's end would lose every ticket created in the window
  and changed after it, since each ticket appears once, at its latest change.

Closure (``closed_at_from``): ``"solved"`` (default) is what a contact centre means by "resolved":
statuses solved and closed count as closed, at ``metric_set.solved_at``. ``"closed"`` counts only
status closed (Zendesk closes solved tickets automatically days later; a closed ticket can no
longer change), at the metric set's ``status_updated_at``. For a ticket solved, reopened and
solved again, ``first_closed_at`` is ``created_at`` plus ``first_resolution_time_in_minutes``
(whole minutes: within a minute of the first solve).

Queues: the export's tickets carry ``group_id`` only; ``group_names`` (id -> name) in the settings
turns it into a name, and an unknown id is kept as the id.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from slamon.connectors.base import (
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

EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
#: How far before now a start_time is moved when it is too recent (Zendesk wants one minute).
START_TIME_MARGIN = timedelta(minutes=5)
CLOSED_STATUSES = {"solved": frozenset({"solved", "closed"}), "closed": frozenset({"closed"})}
Reason = Literal["deleted", "spam", "merged"]


def _merged_tags() -> dict[str, Reason]:
    return {"closed_by_merge": "merged"}


class ZendeskMap(BaseModel):
    """Which ticket field fills each of slamon's segments: ``group`` (the group's name from
    ``group_names``), a ticket attribute or dotted path (``type``, ``priority``,
    ``via.channel``, ``brand_id``, ``ticket_form_id`` ...), or a custom field as ``cf:ID``;
    empty for none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: str = "group"
    channel: str = "via.channel"
    category: str = "type"
    priority: str = "priority"


class ZendeskSettings(SourceSettings):
    kind: Literal["zendesk"] = "zendesk"
    #: https://{subdomain}.zendesk.com
    url: str
    #: The agent's (admin's) email for API-token auth: Basic "{email}/token:{token}".
    email: str | None = None
    token_env: str | None = None
    token_file: Path | None = None
    #: An OAuth access token instead (Bearer).
    oauth_token_env: str | None = None
    oauth_token_file: Path | None = None
    closed_at_from: Literal["solved", "closed"] = "solved"
    #: Tags that mark a ticket merged / spam / deleted: kept, excluded from metrics.
    excluded_tags: dict[str, Reason] = Field(default_factory=_merged_tags)
    #: Group id -> name, for the queue segment.
    group_names: dict[str, str] = Field(default_factory=dict)
    #: Only tickets whose field (map syntax, or ``tags``) has one of the values are complaints.
    filter: dict[str, str | list[str]] = Field(default_factory=dict)
    map: ZendeskMap = ZendeskMap()
    page_size: int = Field(default=1000, ge=1, le=1000)
    #: The export allows 10 requests a minute per account.
    rate_limit: float = Field(default=8.0, gt=0, le=100_000)

    @model_validator(mode="after")
    def _one_credential(self) -> ZendeskSettings:
        token = self.token_env is not None or self.token_file is not None
        oauth = self.oauth_token_env is not None or self.oauth_token_file is not None
        if token == oauth:
            raise ValueError(
                "set either token_env / token_file (with email) or oauth_token_env /"
                " oauth_token_file"
            )
        if token and not self.email:
            raise ValueError("email is required with an API token")
        return self


@dataclass(frozen=True, slots=True)
class _ExportPage:
    tickets: list[Mapping[str, Any]]
    #: Ticket id -> its metric set (on the ticket as ``metric_set``, or sideloaded at the top).
    metrics: dict[str, Mapping[str, Any] | None]
    after: str | None
    end: bool
    url: str


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


@registry.register
class ZendeskConnector:
    kind: ClassVar[str] = "zendesk"
    Settings: ClassVar[type[ZendeskSettings]] = ZendeskSettings

    def __init__(self, name: str, settings: ZendeskSettings, http: HttpClient, now: datetime):
        self.name = name
        self.settings = settings
        self.http = http
        self.now = now
        self.base = settings.url.rstrip("/")

    @classmethod
    def http_options(cls, settings: ZendeskSettings, secret: SecretReader) -> dict[str, Any]:
        options: dict[str, Any] = {"base_url": settings.url}
        token = secret("token")
        if token:
            options["auth"] = (f"{settings.email}/token", token)
            options["secrets"] = [token]
        oauth = secret("oauth_token")
        if oauth:
            options["headers"] = {"Authorization": f"Bearer {oauth}"}
            options["secrets"] = [oauth]
        return options

    # --- reading tickets --------------------------------------------------------------------

    def _bad(self, url: str, ticket: Mapping[str, Any], what: str) -> MalformedResponse:
        return MalformedResponse(f"{self.name}: {url}: ticket {ticket.get('id')}: {what}", url=url)

    def _instant(
        self, ticket: Mapping[str, Any], data: Mapping[str, Any], key: str, url: str
    ) -> datetime | None:
        raw = data.get(key)
        if raw is None or raw == "":
            return None
        try:
            parsed = datetime.fromisoformat(str(raw))
        except ValueError:
            raise self._bad(
                url, ticket, f"{key}: cannot read {str(raw)[:40]!r} as a time"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).replace(microsecond=0)

    def _values(self, ticket: Mapping[str, Any], spec: str) -> list[str]:
        """The values of a field spec (map syntax, or ``tags``) on a ticket, as text."""
        if not spec:
            return []
        if spec == "tags":
            return [str(t) for t in ticket.get("tags") or ()]
        if spec == "group":
            group = ticket.get("group_id")
            if group is None:
                return []
            return [self.settings.group_names.get(str(group), str(group)), str(group)]
        if spec.startswith("cf:"):
            for cf in ticket.get("custom_fields") or ():
                if isinstance(cf, Mapping) and str(cf.get("id")) == spec[3:]:
                    value = cf.get("value")
                    items = value if isinstance(value, list) else [value]
                    return [str(v) for v in items if v is not None and v != ""]
            return []
        value = lookup(ticket, spec)
        return [] if value is None or value == "" else [str(value)]

    def _field(self, ticket: Mapping[str, Any], spec: str) -> str:
        values = self._values(ticket, spec)
        if spec == "group":
            return values[0] if values else ""
        return ", ".join(values)

    def wanted(self, ticket: Mapping[str, Any]) -> bool:
        for spec, accepted in self.settings.filter.items():
            allowed = {accepted} if isinstance(accepted, str) else set(accepted)
            if not allowed.intersection(self._values(ticket, spec)):
                return False
        return True

    def record(
        self, ticket: Mapping[str, Any], metrics: Mapping[str, Any] | None, url: str
    ) -> ComplaintRecord:
        status = str(ticket.get("status") or "")
        updated = self._instant(ticket, ticket, "updated_at", url)
        generated = ticket.get("generated_timestamp")
        if generated is not None:
            if not isinstance(generated, int) or isinstance(generated, bool):
                raise self._bad(url, ticket, f"generated_timestamp: {generated!r} is not a number")
            stamped = datetime.fromtimestamp(generated, UTC)
            updated = stamped if updated is None else max(updated, stamped)
        if updated is None:
            raise self._bad(url, ticket, "updated_at is missing")
        created = self._instant(ticket, ticket, "created_at", url)
        if created is None:
            if status != "deleted":
                raise self._bad(url, ticket, "created_at is missing")
            created = updated  # a tombstone: excluded from every metric anyway
        reason: str | None = "deleted" if status == "deleted" else None
        if reason is None:
            for tag in ticket.get("tags") or ():
                if tag in self.settings.excluded_tags:
                    reason = self.settings.excluded_tags[tag]
                    break
        closed = first = None
        metrics = metrics or {}
        if status in CLOSED_STATUSES[self.settings.closed_at_from]:
            if self.settings.closed_at_from == "solved":
                closed = self._instant(ticket, metrics, "solved_at", url)
                first = self._first_solve(ticket, metrics, created, url)
            else:
                closed = self._instant(ticket, metrics, "status_updated_at", url)
            closed = closed or updated
            if first is not None and first > closed:
                first = closed
        m = self.settings.map
        return ComplaintRecord(
            external_id=str(ticket["id"]),
            created_at=created,
            closed_at=closed,
            first_closed_at=first,
            status=status,
            queue=self._field(ticket, m.queue),
            channel=self._field(ticket, m.channel),
            category=self._field(ticket, m.category),
            priority=self._field(ticket, m.priority),
            subject=str(ticket.get("subject") or ticket.get("raw_subject") or ""),
            url=f"{self.base}/agent/tickets/{ticket['id']}",
            source_updated_at=updated,
            excluded_reason=reason,
        )

    def _first_solve(
        self,
        ticket: Mapping[str, Any],
        metrics: Mapping[str, Any],
        created: datetime,
        url: str,
    ) -> datetime | None:
        """The first solve of a ticket solved more than once, else None (closed_at is it)."""
        reopens = metrics.get("reopens")
        if not isinstance(reopens, int) or reopens < 1:
            return None
        minutes = lookup(metrics, "first_resolution_time_in_minutes.calendar")
        if minutes is None:
            return None
        if not isinstance(minutes, int | float) or isinstance(minutes, bool):
            raise self._bad(url, ticket, f"first_resolution_time_in_minutes: {minutes!r}")
        return created + timedelta(minutes=minutes)

    def _page(self, params: Mapping[str, Any]) -> _ExportPage:
        query = {"per_page": self.settings.page_size, "include": "metric_sets", **params}
        data, url = self.http.get_json(f"{self.base}{EXPORT_PATH}", params=query)
        if not isinstance(data, Mapping) or not isinstance(data.get("tickets"), list):
            raise MalformedResponse(
                f"{self.name}: {url}: no 'tickets' list in the response", url=url
            )
        end, after = data.get("end_of_stream"), data.get("after_cursor")
        if not isinstance(end, bool):
            raise MalformedResponse(f"{self.name}: {url}: no end_of_stream flag", url=url)
        if after is not None and not isinstance(after, str):
            raise MalformedResponse(f"{self.name}: {url}: after_cursor is not text", url=url)
        tickets: list[Mapping[str, Any]] = data["tickets"]
        if any(not isinstance(t, Mapping) or "id" not in t for t in tickets):
            raise MalformedResponse(f"{self.name}: {url}: a ticket without an id", url=url)
        if tickets and not after:
            raise MalformedResponse(f"{self.name}: {url}: tickets but no after_cursor", url=url)
        sideloaded = {
            str(m.get("ticket_id")): m
            for m in data.get("metric_sets") or ()
            if isinstance(m, Mapping)
        }
        metrics = {}
        for t in tickets:
            own = t.get("metric_set")
            metrics[str(t["id"])] = (
                own if isinstance(own, Mapping) else sideloaded.get(str(t["id"]))
            )
        return _ExportPage(tickets, metrics, after or None, end, url)

    def _export(self, start: datetime, cursor: Cursor | None) -> Iterator[Page]:
        """Pages of the export from ``cursor`` (else from ``start``) to the end of the stream;
        their records are the complaints among the tickets, as ``filter`` says."""
        after = (cursor or {}).get("after_cursor")
        if after:
            params: dict[str, Any] = {"cursor": after}
        else:
            latest = self.now - START_TIME_MARGIN
            params = {"start_time": max(0, int(min(_aware(start), latest).timestamp()))}
        while True:
            page = self._page(params)
            wanted = [t for t in page.tickets if self.wanted(t)]
            records = [self.record(t, page.metrics[str(t["id"])], page.url) for t in wanted]
            moved = page.after is not None and page.after != after
            if moved:
                skipped = len(page.tickets) - len(wanted)
                cursor_out = {"after_cursor": page.after}
                yield Page(records, cursor_out, url=page.url, skipped=skipped)
            if page.end or not moved:
                return  # the end, or no progress possible: the next run goes on from here
            after = page.after
            params = {"cursor": after}

    # --- the protocol -----------------------------------------------------------------------

    def changes(self, cursor: Cursor | None) -> Iterator[Page]:
        start = self.settings.initial_since or datetime(1970, 1, 1, tzinfo=UTC)
        yield from self._export(start, cursor)

    def history(self, window: SyncWindow, checkpoint: Cursor | None) -> Iterator[Page]:
        lo, hi = window.since.astimezone(UTC), window.until.astimezone(UTC)
        for page in self._export(lo, checkpoint):
            inside = [r for r in page.records if lo <= r.created_at < hi]
            yield Page(inside, page.cursor, url=page.url, skipped=page.skipped)
